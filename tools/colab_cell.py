"""The first cell of every chapter notebook: on Google Colab, install the book's code.

Run ``python tools/colab_cell.py chapters/NN_name.ipynb`` to insert (or refresh) it;
``tools/run_notebooks.py`` does so for every notebook it executes. The cell is tagged
``remove-cell`` (the website does not show it) and ``colab-install`` (how this tool finds
it again). Off Colab it does nothing and prints nothing, so nbval sees no output.

On Colab it pip-installs the repository named by ``repository.url`` and ``repository.branch``
in ``_config.yml`` -- the one setting the launch buttons derive from too -- with the
``notebooks`` extra (empty now: the chapters need nothing beyond the library). That installs curvlib and
curvbook the way ``tests/test_install.py`` installs the built wheel into a fresh environment.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAG = "colab-install"


def repository():
    """``(url, branch)`` of the book's repository: ``repository`` in ``_config.yml``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return config["url"].rstrip("/"), config.get("branch", "main")


REPOSITORY, BRANCH = repository()
#: what the cell installs: the distribution with its extra, from the repository's branch
REQUIREMENT = f"curvlib[notebooks] @ git+{REPOSITORY}@{BRANCH}"

SOURCE = f"""\
# On Google Colab, install curvlib and the book's code first (locally, `make book` has done it).
try:
    import google.colab  # noqa: F401  (importable only on Colab)
except ImportError:
    pass
else:
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "{REQUIREMENT}"],
                   check=True)"""


def colab_cell():
    cell = nbformat.v4.new_code_cell(SOURCE)
    cell.metadata["tags"] = ["remove-cell", TAG]
    return cell


def ensure_colab_cell(nb):
    """Make the Colab cell the first cell of ``nb``; returns True if ``nb`` changed."""
    for i, cell in enumerate(nb.cells):
        if TAG in cell.get("metadata", {}).get("tags", []):
            if i == 0 and cell.source == SOURCE:
                return False
            del nb.cells[i]
            break
    nb.cells.insert(0, colab_cell())
    return True


def main(paths):
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if ensure_colab_cell(nb):
            nbformat.write(nb, path)
            print(f"{path}: Colab cell inserted (re-run `make notebooks` to execute it)")


if __name__ == "__main__":
    main(sys.argv[1:])
