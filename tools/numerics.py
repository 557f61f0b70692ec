"""The numeric settings every process of this project runs with (kernels, nbval, the tests).

torch, numpy and the BLAS libraries under them choose vector kernels by CPU at run time.
Different kernels sum in a different order, so a notebook run on an AVX-512 machine rounds
differently from one run on an AVX2 machine, and strict nbval (which compares printed numbers)
fails. Every kernel the project starts therefore gets the settings of :func:`pinned_env`:

* on x86-64 with AVX2, every library held at the AVX2 level: torch's ``ATEN_CPU_CAPABILITY=avx2``,
  numpy's dispatch above X86_V3 switched off (``NPY_DISABLE_CPU_FEATURES``), OpenBLAS's kernels
  fixed to Haswell (``OPENBLAS_CORETYPE``), MKL and oneDNN capped at AVX2;
* on x86-64 without AVX2, or on other architectures (arm64), nothing is pinned: there is no
  AVX2 level to hold, and such machines may print different last digits (nbval then reports
  it; the book's conclusions are checked against rounding separately, see below).

:func:`perturbed_env` is a *different* rounding regime (scalar torch kernels, numpy's baseline
dispatch, OpenBLAS's SSE3 kernels). ``tools/robustness.py`` re-runs every notebook under it and
checks that every conclusion of the book survives.

Usage: ``python tools/numerics.py [--perturbed] [--] command ...`` runs ``command`` with the
settings; with no command it prints them as ``NAME=value`` lines;
``python tools/numerics.py --pin-kernel .venv`` writes them into the venv's Jupyter kernel.
"""
from __future__ import annotations

import os
import platform
import sys

#: numpy's dispatch targets above AVX2 (numpy 2.x names); unknown names are ignored by numpy.
_NUMPY_ABOVE_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR AVX512_SKX"
_NUMPY_ABOVE_BASELINE = "X86_V3 " + _NUMPY_ABOVE_AVX2


def _cpu_flags():
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


def pinned_env():
    """The settings that make every x86-64 CPU with AVX2 compute the same numbers."""
    env = {"PYTHONHASHSEED": "0"}
    if is_x86() and "avx2" in _cpu_flags():
        env.update({
            "ATEN_CPU_CAPABILITY": "avx2",
            "NPY_DISABLE_CPU_FEATURES": _NUMPY_ABOVE_AVX2,
            "OPENBLAS_CORETYPE": "Haswell",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2",
        })
    return env


def perturbed_env():
    """A different rounding regime, to check conclusions rather than digits."""
    env = {"PYTHONHASHSEED": "0", "ATEN_CPU_CAPABILITY": "default"}
    if is_x86():
        env.update({
            "NPY_DISABLE_CPU_FEATURES": _NUMPY_ABOVE_BASELINE,
            "OPENBLAS_CORETYPE": "Prescott",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
        })
    return env


def pin_kernelspec(prefix):
    """Add the pinned settings to the ``python3`` kernel installed under ``prefix`` (a venv).

    JupyterLab and nbclient start kernels from this spec, so a student's kernel computes
    what the committed notebooks show.
    """
    import json
    from pathlib import Path

    spec = Path(prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    data = json.loads(spec.read_text())
    data["env"] = {**data.get("env", {}), **pinned_env()}
    spec.write_text(json.dumps(data, indent=1) + "\n")
    return spec


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--pin-kernel"]:
        print(f"pinned numeric settings written to {pin_kernelspec(argv[1])}")
        return 0
    perturbed = "--perturbed" in argv
    if perturbed:
        argv.remove("--perturbed")
    if argv[:1] == ["--"]:
        argv = argv[1:]
    env = perturbed_env() if perturbed else pinned_env()
    if not argv:
        for key, value in env.items():
            print(f"{key}={value}")
        return 0
    os.execvpe(argv[0], argv, {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main())
