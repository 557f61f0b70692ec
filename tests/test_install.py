"""The book installs: the wheel, in a fresh venv, runs chapters copied alone into an empty folder.

Builds the wheel of this repository (``pip wheel . --no-deps``), creates a new virtual
environment (not ``--system-site-packages``), installs the wheel with the pinned numeric
requirements of ``requirements.txt`` (torch from the machine's wheel cache) and nothing else,
registers that environment's kernel, and executes two chapters in a folder that holds nothing
else. Skipped only where ``python3.11 -m venv`` is unavailable.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = ("04_momentum", "06_modern_innovations")
#: requirements.txt lines the chapters need at run time (the rest build the site or test it)
RUNTIME = ("torch", "numpy", "scipy", "scikit-learn", "matplotlib", "ipywidgets", "ipykernel",
           "nbclient", "nbformat")
PYTHON = shutil.which("python3.11")


def _venv_available():
    if PYTHON is None:
        return False
    return subprocess.run([PYTHON, "-m", "venv", "--help"], capture_output=True).returncode == 0


def _run(*args, cwd=None, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, args))} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _requirements(path):
    """{package: its requirement line} of a requirements file (``"torch": "torch==2.13.0"``)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        name = re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower()
        if name and not line.startswith("-"):
            found[name] = line
    return found


def _pins():
    root = _requirements(REPO / "requirements.txt")
    missing = [n for n in RUNTIME if n not in root]
    assert not missing, f"requirements.txt lacks {missing}"
    return [root[n] for n in RUNTIME]


@pytest.mark.skipif(not _venv_available(), reason="python3.11 -m venv is not available")
def test_wheel_runs_chapters_from_an_empty_folder(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    src, wheels, venv, work = (tmp_path / d for d in ("src", "wheels", "venv", "empty"))
    src.mkdir()  # a copy, so the build leaves nothing behind in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src)
    for name in ("curvlib", "curvbook"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "-q", "-w", wheels, cwd=src)
    wheel = next(wheels.glob("curvlib-*.whl"))
    _run(PYTHON, "-m", "venv", venv)
    py = venv / "bin" / "python"
    _run(py, "-m", "pip", "install", "-q", "--no-compile", *_pins(), wheel, timeout=900)
    _run(py, "-m", "ipykernel", "install", "--prefix", venv, "--name", "python3")

    work.mkdir()
    where = _run(py, "-c", "import curvlib, curvbook; print(curvlib.__file__); "
                           "print(curvbook.__file__)", cwd=work).split()
    assert all(Path(w).is_relative_to(venv) for w in where), where   # not this checkout

    monkeypatch.setenv("JUPYTER_PATH", str(venv / "share" / "jupyter"))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("CURVBOOK_RESULTS", raising=False)
    for name in CHAPTERS:
        shutil.copy(REPO / "chapters" / f"{name}.ipynb", work)
        nb = nbformat.read(work / f"{name}.ipynb", as_version=4)
        NotebookClient(nb, kernel_name="python3", timeout=600,
                       resources={"metadata": {"path": str(work)}}).execute()
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
        saved = json.loads((work / "results" / f"{name}.json").read_text())
        assert saved, f"{name} saved no results"
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [f"{n}.ipynb" for n in CHAPTERS] + ["results"])


def test_binder_installs_the_pinned_versions_and_cpu_torch():
    """Binder's environment pins what requirements.txt pins (torch as its +cpu build from
    PyTorch's CPU index, so a launch downloads no CUDA), JupyterLab with MyST included."""
    binder, root = (_requirements(REPO / p)
                    for p in ("binder/requirements.txt", "requirements.txt"))
    text = (REPO / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert binder.pop("torch") == root["torch"] + "+cpu"
    assert {"jupyterlab", "jupyterlab-myst"} <= set(binder)
    assert set(RUNTIME) - {"torch", "nbclient", "nbformat"} <= set(binder)
    different = {k: (v, root.get(k)) for k, v in binder.items() if root.get(k) != v}
    assert not different, f"binder/requirements.txt differs from requirements.txt: {different}"
