"""The book installed the way a reader installs it, and the launch settings it derives from.

* The built wheel (``pip wheel . --no-deps``) holds curvlib and curvbook. Installed into a fresh
  virtual environment (no system site-packages, nothing from this checkout) the way the Colab
  cell asks for it -- the ``notebooks`` extra, the wheel's own dependencies, and torch==2.13.0
  (what Colab brings; here the CPU build from the local index) -- it runs a chapter notebook
  copied alone into an empty folder.
* Binder builds from ``binder/``: torch from PyTorch's CPU-only index, the same pins as the
  root ``requirements.txt``, then the book installed by ``postBuild``.
* One repository setting, ``repository`` in ``_config.yml``: the Colab cell is made from it,
  and the addresses written out in README.md, index.md and CITATION.cff are the same.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import colab_cell  # noqa: E402

CHAPTER = "01_fundamental_question"  # quick (about 20 s) and reads no other chapter's results
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(path):
    """``{name: version}`` of the ``name==version`` lines of a requirements file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def run(*cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}" \
                                   f"\n{result.stderr[-3000:]}"
    return result.stdout


# ------------------------------------------------------------------ the wheel
@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
        "--quiet", "-w", out)
    wheels = list(out.glob("curvlib-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_both_packages_and_the_notebooks_extra(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("curvlib", "curvbook"):
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        assert sources, package
        assert sources <= names, f"missing from the wheel: {sorted(sources - names)[:5]}"
    assert not any(n.startswith(("tests/", "chapters/", "tools/")) for n in names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert f"Version: {PYPROJECT['project']['version']}" in text
    assert re.search(r"Requires-Dist: myst-nb.*extra == \"notebooks\"", text)
    assert "Requires-Dist: torch" not in text  # pinned by the reader, never a range here


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory, wheel):
    """A new venv with the wheel installed as the Colab cell installs the repository."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    run(sys.executable, "-m", "venv", venv)  # no --system-site-packages: nothing leaks in
    python = venv / "bin" / "python"
    extra = re.search(r"curvlib\[(\w+)\] @ git\+", colab_cell.SOURCE).group(1)
    torch_pin = pins(ROOT / "requirements.txt")["torch"]
    # what Colab has before the cell runs: torch, a kernel and a notebook runner
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[{extra}]", f"torch=={torch_pin}",
        "ipykernel", "nbclient")
    run(python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "curvlib-fresh-env")
    return venv


def _clean_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MPLBACKEND", "VIRTUAL_ENV", "JUPYTER_PATH",
                         "CURVBOOK_RESULTS")}
    env["PYTHONHASHSEED"] = "0"
    return env


def test_fresh_env_imports_the_installed_packages(fresh_env, tmp_path):
    out = run(fresh_env / "bin" / "python", "-c",
              "import curvlib, curvbook, sys; print(curvlib.__file__); print(curvbook.__file__);"
              " print(curvlib.__version__)",
              cwd=tmp_path, env=_clean_env()).splitlines()
    for path in out[:2]:
        assert Path(path).is_relative_to(fresh_env), f"imported from outside the venv: {path}"
    assert out[2] == PYPROJECT["project"]["version"]


RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
path, kernel, folder = sys.argv[1:]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=900, kernel_name=kernel,
               resources={"metadata": {"path": folder}}).execute()
nbformat.write(nb, path)
"""


def test_a_chapter_runs_alone_in_an_empty_folder(fresh_env, tmp_path):
    folder = tmp_path / "alone"
    folder.mkdir()
    notebook = folder / f"{CHAPTER}.ipynb"
    shutil.copy(ROOT / "chapters" / f"{CHAPTER}.ipynb", notebook)
    spec = json.loads((fresh_env / "share" / "jupyter" / "kernels" / "curvlib-fresh-env" /
                       "kernel.json").read_text())
    assert Path(spec["argv"][0]).is_relative_to(fresh_env), spec["argv"]
    run(fresh_env / "bin" / "python", "-c", RUNNER, notebook, "curvlib-fresh-env", folder,
        cwd=folder, env=_clean_env())
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count for c in code), "a code cell was not executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # the chapter saved its results beside itself: it ran to its last cell, in this folder
    assert (folder / "results" / f"{CHAPTER}.json").is_file()
    assert sorted(p.name for p in folder.iterdir()) == [f"{CHAPTER}.ipynb", "results"]


# ------------------------------------------------------------------ Binder
def test_binder_installs_cpu_torch_and_the_root_pins():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert re.search(r"^--extra-index-url https://download\.pytorch\.org/whl/cpu$", text, re.M)
    binder, root = pins(ROOT / "binder" / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert binder["torch"] == root["torch"] + "+cpu"
    shared = set(binder) & set(root) - {"torch"}
    assert {"numpy", "scipy", "scikit-learn", "matplotlib", "ipywidgets"} <= shared
    assert {n: binder[n] for n in shared} == {n: root[n] for n in shared}
    assert binder["myst-nb"] == version("myst-nb")  # the version Jupyter Book brings here
    assert not {"jupyter-book", "pytest", "nbval", "playwright"} & set(binder)


def test_binder_post_build_installs_the_book():
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK)
    assert re.search(r"^pip install --no-deps \.$", post.read_text(), re.M)
    assert not (ROOT / "postBuild").exists(), "repo2docker reads binder/ only: one postBuild"


# ------------------------------------------------------------------ the one repository setting
def test_colab_cell_derives_from_the_repository_setting():
    url, branch = CONFIG["repository"]["url"], CONFIG["repository"]["branch"]
    assert colab_cell.REPOSITORY == url
    assert f"@ git+{url}@{branch}" in colab_cell.SOURCE
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0]
        assert colab_cell.TAG in first.metadata.get("tags", []), f"{path.name}: no Colab cell"
        assert f"git+{url}" in first.source, f"{path.name}: the Colab cell names another address"


def test_written_out_addresses_match_the_repository_setting():
    url = CONFIG["repository"]["url"]
    name = url.rstrip("/").rsplit("/", 1)[-1]
    for path in ("README.md", "index.md", "CITATION.cff"):
        text = (ROOT / path).read_text()
        assert url in text, f"{path} does not name {url}"
        other = set(re.findall(rf"https://github\.com/[\w.-]+/{re.escape(name)}\b", text)) - {url}
        assert not other, f"{path} names another address for the book: {other}"
