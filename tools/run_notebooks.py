"""Execute chapter notebooks in place and store their outputs (``make notebooks``).

For each notebook: make sure the Colab install cell comes first (``tools/colab_cell.py``),
execute every cell with nbclient in a fresh kernel started in ``chapters/``, store the outputs
and the ipywidgets state (so the saved notebook shows its widgets), and record the wall time in
``chapters/runtimes.json``, which the performance appendix reads.

The kernel gets the pinned numeric settings of ``tools/numerics.py`` (also written into the
venv's kernel spec, which Jupyter applies over the launch environment) and no ``MPLBACKEND``
(so figures use the inline backend). Seeds for numpy and torch are set by the notebooks
themselves, not here: nbval re-executes them without this script, and must get the same numbers.
The inline backend stores figures at twice their pixel size ("retina"): the site shows them at
the same size, sharper, and the PDF (``make pdf``) prints them at about 200 dpi; the text output
``<Figure size ...>`` does not change, and nbval does not compare pixels.

Each notebook's time is written to ``runtimes.json`` as soon as it has run, so the performance
appendix, executed last, shows the times of this run (``tests/test_runtimes.py`` holds the two
equal).

Usage: ``python tools/run_notebooks.py [--timeout S] chapters/01_x.ipynb ...``; a notebook
that raises stops this script with a non-zero exit status and is not written.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_cell import ensure_colab_cell  # noqa: E402
from numerics import pinned_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ROOT / "chapters" / "runtimes.json"
RETINA = "--InlineBackend.figure_formats=retina"  # figures at print resolution


def kernel_env():
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # ipykernel then selects the inline backend
    env.update(pinned_env())
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def execute(path, timeout, out=None, env=None, km=None):
    """Run one notebook in its folder and write it to ``out`` (default: in place); returns its
    wall time in seconds.

    ``env`` is the kernel's environment (default :func:`kernel_env`), ``km`` an optional
    ``jupyter_client`` kernel manager (for a kernel spec other than the venv's ``python3``).
    """
    nb = nbformat.read(path, as_version=4)
    ensure_colab_cell(nb)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            record_timing=False, store_widget_state=True,
                            extra_arguments=[RETINA])
    start = time.perf_counter()
    client.execute(env=kernel_env() if env is None else env)
    seconds = time.perf_counter() - start
    nbformat.validate(nb)
    nbformat.write(nb, path if out is None else out)
    return seconds


def record(times):
    data = json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}
    data["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "omp_num_threads": kernel_env()["OMP_NUM_THREADS"]}
    chapters = data.setdefault("notebooks", {})
    today = datetime.date.today().isoformat()
    for name, seconds in times.items():
        chapters[name] = {"seconds": round(seconds, 1), "date": today}
    data["notebooks"] = dict(sorted(chapters.items()))
    RUNTIMES.write_text(json.dumps(data, indent=2) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        default=sorted((ROOT / "chapters").glob("*.ipynb")))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    failed = []
    for path in args.notebooks:
        path = path.resolve()
        print(f"{path.relative_to(ROOT)} ...", end=" ", flush=True)
        try:
            seconds = execute(path, args.timeout)
        except CellExecutionError as exc:
            print("FAILED")
            print(str(exc)[-3000:], file=sys.stderr)
            failed.append(path.name)
            continue
        print(f"{seconds:.1f} s")
        record({path.stem: seconds})  # now, so that a later notebook (appendix A3) reads it
    if failed:
        print(f"failed: {', '.join(failed)} (not written)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
