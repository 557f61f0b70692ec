"""The numeric settings every process of this project runs with (kernels, nbval, the tests).

torch, numpy and the BLAS libraries under them choose vector kernels by CPU at run time.
Different kernels sum in a different order, so a notebook run on an AVX-512 machine rounds
differently from one run on an AVX2 machine, and strict nbval (which compares printed numbers)
fails. Every kernel the project starts therefore gets the settings of :func:`pinned_env`:

* on x86-64 with AVX2, every library held at the AVX2 level: torch's ``ATEN_CPU_CAPABILITY=avx2``,
  numpy's dispatch targets above AVX2 switched off (``NPY_DISABLE_CPU_FEATURES``, names asked
  from numpy itself), OpenBLAS's kernels fixed to Haswell (``OPENBLAS_CORETYPE``), MKL and
  oneDNN capped at AVX2;
* on x86-64 without AVX2, or on other architectures (arm64), nothing is pinned: there is no
  AVX2 level to hold, and such machines may print different last digits (nbval then reports
  it; the book's conclusions are checked against rounding separately, see below).

:func:`perturbed_env` is a *different* rounding regime: torch's portable kernels
(``ATEN_CPU_CAPABILITY=default``), numpy's baseline code only, OpenBLAS's SSE3 kernels and MKL's
SSE2 code path (``MKL_CBWR=SSE2``). ``tools/robustness.py`` re-runs every notebook under
it and checks that every conclusion of the book survives.

Usage: ``python tools/numerics.py [--perturbed] [--] command ...`` runs ``command`` with the
settings; with no command it prints them as ``NAME=value`` lines;
``python tools/numerics.py --pin-kernel .venv`` writes them into the venv's Jupyter kernel
(Jupyter applies a kernel's ``env`` over the environment it is started from).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from functools import lru_cache

_ASK_NUMPY = """
import json
try:
    from numpy._core import _multiarray_umath as m
except ImportError:
    from numpy.core import _multiarray_umath as m
print(json.dumps([list(m.__cpu_dispatch__), sorted(k for k, v in m.__cpu_features__.items() if v)]))
"""


@lru_cache(maxsize=1)
def numpy_simd():
    """numpy's dispatch targets and the CPU features it found, as two tuples.

    Asked in a child process started without ``NPY_DISABLE_CPU_FEATURES``, so the answer does not
    depend on the caller's settings, and so that numpy's own names are used (they changed in
    numpy 2.4: ``X86_V3``/``X86_V4`` instead of ``AVX2``/``AVX512F``...). ``((), ())`` when
    numpy cannot be imported by this interpreter.
    """
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    try:
        out = subprocess.run([sys.executable, "-c", _ASK_NUMPY], env=env, capture_output=True,
                             text=True, check=True, timeout=120).stdout
        dispatch, features = json.loads(out.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return (), ()
    return tuple(dispatch), tuple(features)


def _cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def is_x86():
    return platform.machine().lower() in {"x86_64", "amd64"}


def has_avx2():
    """True on a CPU with AVX2 (from /proc/cpuinfo, else from numpy's own CPU detection)."""
    flags = _cpuinfo_flags()
    if flags:
        return "avx2" in flags
    return "AVX2" in numpy_simd()[1]


def above_avx2(targets):
    """The numpy dispatch targets above the AVX2 level (numpy >= 2.4: X86_V4, AVX512_*)."""
    return [t for t in targets if t == "X86_V4" or t.startswith("AVX512")]


def pinned_env():
    """The settings that make every x86-64 CPU with AVX2 compute the same numbers."""
    env = {"PYTHONHASHSEED": "0"}
    if is_x86() and has_avx2():
        env.update({
            "ATEN_CPU_CAPABILITY": "avx2",
            "OPENBLAS_CORETYPE": "Haswell",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2",
        })
        disable = above_avx2(numpy_simd()[0])
        if disable:
            env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disable)
    return env


def perturbed_env():
    """A different rounding regime, to check conclusions rather than digits."""
    env = {"PYTHONHASHSEED": "0", "ATEN_CPU_CAPABILITY": "default"}
    dispatch = numpy_simd()[0]
    if dispatch:  # every target above numpy's baseline
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(dispatch)
    if is_x86():
        env.update({
            "OPENBLAS_CORETYPE": "Prescott",
            # MKL's SSE2 kernels ("COMPATIBLE", used before, ran the eigensolver behind
            # chapter 7's exact spectra twice as slowly)
            "MKL_CBWR": "SSE2",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
        })
    return env


def pin_kernelspec(prefix):
    """Add the pinned settings to the ``python3`` kernel installed under ``prefix`` (a venv).

    JupyterLab and nbclient start kernels from this spec, so a student's kernel computes
    what the committed notebooks show.
    """
    from pathlib import Path

    spec = Path(prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    data = json.loads(spec.read_text())
    data["env"] = {**data.get("env", {}), **pinned_env()}
    spec.write_text(json.dumps(data, indent=1) + "\n")
    return spec


def parse(argv):
    """``(perturbed, command)`` from ``[--perturbed] [--] command ...``.

    Options come before the command: a command's own ``--perturbed`` is left alone.
    """
    argv = list(argv)
    perturbed = argv[:1] == ["--perturbed"]
    if perturbed:
        argv = argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    return perturbed, argv


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--pin-kernel"]:
        if len(argv) != 2:
            print("usage: numerics.py --pin-kernel VENV", file=sys.stderr)
            return 2
        print(f"pinned numeric settings written to {pin_kernelspec(argv[1])}")
        return 0
    perturbed, argv = parse(argv)
    env = perturbed_env() if perturbed else pinned_env()
    if not argv:
        for key, value in env.items():
            print(f"{key}={value}")
        return 0
    os.execvpe(argv[0], argv, {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main())
