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

Markdown cells are evaluated too, as JupyterLab with jupyterlab-myst evaluates them: the kernel
gets the cell's ``{eval}`...` `` expressions (an ``execute_request`` with empty code and
``user_expressions``, the request JupyterLab sends) and the results are stored in the cell's
``metadata.user_expressions`` in jupyterlab-myst's format. The site renders those committed
results (``tools/curvlib_book.py``) and JupyterLab shows them before the notebook has run.
Results are stored from the state at the end of the run (as glue was), so a number may be quoted
above the cell that computes it; each cell is also evaluated when the run reaches it, as
"Run All" does in JupyterLab, and such forward references are listed (JupyterLab shows the
committed value there until the cell is run again; see ``curvbook.quotes``). An expression
that fails at the end stops the run like a failing cell. The kernel gets
``CURVBOOK_QUOTES_STRICT=1``: every stored quote is computed by this run.

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
import math
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
from evalroles import METADATA_KEY, expressions  # noqa: E402
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


class BookClient(NotebookClient):
    """nbclient that also evaluates the Markdown cells' ``{eval}`` expressions: when the run
    reaches each cell (to find forward references) and once more at the end (stored)."""

    forward = ()

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if cell_index == 0:
            self.forward = []
        if cell.cell_type == "markdown":
            for expr, result in await self.async_evaluate(cell, cell_index):
                if result.get("status") != "ok":
                    self.forward.append((cell_index, expr))
        else:
            cell = await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        if cell_index == len(self.nb.cells) - 1:
            await self.async_store_expressions()
        return cell

    async def async_evaluate(self, cell, cell_index):
        """``[(expression, result), ...]`` of one Markdown cell, in the kernel's state now."""
        exprs = expressions(cell.source)
        if not exprs:
            return []
        # silent: evaluated as JupyterLab's request is, without taking an execution count
        msg_id = self.kc.execute("", silent=True, store_history=False,
                                 user_expressions={str(i): e for i, e in enumerate(exprs)})
        reply = await self.async_wait_for_reply(msg_id, cell)
        content = reply["content"] if reply else {}
        if content.get("status") != "ok":
            raise CellExecutionError(f"markdown cell {cell_index}: no reply to its "
                                     f"{{eval}} expressions", "KernelError", str(content))
        return [(e, content["user_expressions"][str(i)]) for i, e in enumerate(exprs)]

    async def async_store_expressions(self):
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "markdown":
                continue
            stored = []
            for expr, result in await self.async_evaluate(cell, index):
                if result.get("status") != "ok":
                    raise CellExecutionError(
                        f"markdown cell {index}: {{eval}}`{expr}` raised "
                        f"{result.get('ename')}: {result.get('evalue')}\n"
                        + "\n".join(result.get("traceback", [])),
                        result.get("ename", "Error"), result.get("evalue", ""))
                stored.append({"expression": expr, "result": result})
            if stored:
                cell.metadata[METADATA_KEY] = stored
            else:
                cell.metadata.pop(METADATA_KEY, None)


def execute(path, timeout, out=None, env=None, km=None, notes=None):
    """Run one notebook in its folder and write it to ``out`` (default: in place); returns its
    wall time in seconds.

    ``env`` is the kernel's environment (default :func:`kernel_env`), ``km`` an optional
    ``jupyter_client`` kernel manager (for a kernel spec other than the venv's ``python3``).
    Forward references (see above) are appended to ``notes`` (printed when it is None).
    """
    nb = nbformat.read(path, as_version=4)
    ensure_colab_cell(nb)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    client = BookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                        resources={"metadata": {"path": str(path.parent)}},
                        record_timing=False, store_widget_state=True,
                        extra_arguments=[RETINA])
    env = dict(kernel_env() if env is None else env)
    env["CURVBOOK_QUOTES_STRICT"] = "1"  # every stored quote is computed by this run
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    found = [f"markdown cell {index} quotes {{eval}}`{expr}` before the cell that computes it "
             "(JupyterLab shows the committed value there)" for index, expr in client.forward]
    if notes is not None:
        notes.extend(found)
    elif found:
        print("\n".join(found))
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


def longest_first(stems):
    """``stems`` ordered by their last recorded run time, longest first (a notebook with no
    recorded time first of all): run side by side, the long ones then do not finish last."""
    known = json.loads(RUNTIMES.read_text()).get("notebooks", {}) if RUNTIMES.exists() else {}
    return sorted(stems, key=lambda s: -known.get(s, {}).get("seconds", math.inf))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        default=sorted((ROOT / "chapters").glob("*.ipynb")))
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cell")
    parser.add_argument("--order", action="store_true",
                        help="only print the notebooks' paths, longest recorded run first "
                             "(the order `make test-notebooks` hands them to its workers)")
    args = parser.parse_args(argv)
    if args.order:
        paths = {p.resolve().stem: p for p in args.notebooks}
        print(" ".join(str(paths[s]) for s in longest_first(paths)))
        return 0
    failed = []
    for path in args.notebooks:
        path = path.resolve()
        print(f"{path.relative_to(ROOT)} ...", end=" ", flush=True)
        notes = []
        try:
            seconds = execute(path, args.timeout, notes=notes)
        except CellExecutionError as exc:
            print("FAILED")
            print(str(exc)[-3000:], file=sys.stderr)
            failed.append(path.name)
            continue
        print(f"{seconds:.1f} s" + "".join(f"\n  note: {n}" for n in notes))
        record({path.stem: seconds})  # now, so that a later notebook (appendix A3) reads it
    if failed:
        print(f"failed: {', '.join(failed)} (not written)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
