"""curvbook: the book's own code, one module per chapter, so a notebook cell reads like the idea it shows.

curvbook imports curvlib; curvlib never imports curvbook. What a reader would import into their
own notebook lives in curvlib; sweeps, tables, figures, explorers and claim records live here.

Each module holds the experiment functions, figures and widget factories of one chapter (or a
pair of chapters), and imports no other chapter's module; tests in
``tests/test_curvbook_<module>.py`` hold them to what the text says. :func:`explorers` lists
every widget of the book.
Modules: ``newton`` (ch. 1), ``hessian_cost`` (ch. 2), ``quasi_newton_adam`` (ch. 3),
``momentum`` (ch. 4), ``regularization`` (ch. 5), ``kronecker`` (ch. 6), ``conditioning`` (ch. 7),
``evidence`` (ch. 8), ``diagnose`` (ch. 9), ``summary`` (ch. 10), ``claims`` (appendix).
"""

import json
import os
from pathlib import Path

__all__ = ["save_results", "load_results", "results_dir", "chapter_dir", "explorers",
           "LECTURE_TABLE", "Quote", "Quotes", "power_of_ten", "significant"]

#: The lecture's comparison table, verbatim in content, as method -> (memory, convergence, use
#: case). Chapter 3 measures it and chapter 10 sets the book's findings beside it.
LECTURE_TABLE = {
    "Newton": ("O(n^2)", "Quadratic", "Theoretical"),
    "L-BFGS": ("O(mn)", "Superlinear", "Small batches"),
    "Adam": ("O(n)", "Fast", "Default choice"),
    "SGD+Momentum": ("O(n)", "Linear", "Computer Vision"),
    "SGD": ("O(n)", "Slow", "Simple models"),
}


def chapter_dir():
    """The folder holding the chapter notebooks: the working directory when a notebook runs
    there (as they do, also when a chapter is copied alone into an empty folder), else
    ``chapters/`` below it (the repository root, where the tests run)."""
    cwd = Path.cwd()
    if any(cwd.glob("[0-9][0-9]_*.ipynb")) or not (cwd / "chapters").is_dir():
        return cwd
    return cwd / "chapters"


def results_dir():
    """Where chapters store the numbers other pages (the claims audit, chapter 10) read back.

    ``$CURVBOOK_RESULTS`` if set, else ``results/`` beside the chapter notebooks
    (:func:`chapter_dir`). Never derived from where the package is installed.
    """
    env = os.environ.get("CURVBOOK_RESULTS")
    return Path(env) if env else chapter_dir() / "results"


def save_results(chapter, results, directory=None):
    """Store a chapter's key measured numbers in ``chapters/results/<chapter>.json``.

    ``chapter`` is the notebook's stem (e.g. ``"04_momentum"``); ``results`` a flat or nested
    dict of numbers and strings. Round numbers to what the text quotes before saving, so the
    file is the same on every machine and ``OMP_NUM_THREADS`` setting.
    """
    if not isinstance(chapter, str) or not chapter:
        raise ValueError(f"chapter must be a non-empty string, got {chapter!r}")
    if not isinstance(results, dict):
        raise TypeError(f"results must be a dict, got {type(results).__name__}")
    directory = Path(directory) if directory is not None else results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{chapter}.json"
    write_atomic(path, json.dumps(_plain(results, finite=True), indent=1, sort_keys=True) + "\n")
    return path


def load_results(chapter, directory=None):
    """Read back what :func:`save_results` stored for ``chapter``."""
    directory = Path(directory) if directory is not None else results_dir()
    path = directory / f"{chapter}.json"
    if not path.exists():
        raise FileNotFoundError(f"no results for chapter {chapter!r}: run its notebook first ({path})")
    return json.loads(path.read_text())


def explorers():
    """Every widget of the book, in chapter order: ``{"module.function": factory}``, each a
    function of no argument returning a :class:`curvlib.widgets.Explorer`. The tests and
    ``benchmarks/widgets.py`` drive them all from this one list."""
    from . import (conditioning, diagnose, evidence, hessian_cost, kronecker, momentum, newton,
                   quasi_newton_adam, regularization, summary)
    factories = [newton.newton_explorer, hessian_cost.memory_explorer,
                 quasi_newton_adam.adam_explorer, quasi_newton_adam.lbfgs_history_explorer,
                 momentum.momentum_explorer, regularization.schedule_designer,
                 kronecker.cost_explorer, conditioning.conditioning_explorer,
                 evidence.sensitivity_explorer, evidence.bands_explorer, diagnose.run_doctor,
                 summary.convergence_explorer]
    return {f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}": f for f in factories}
from .quotes import Quote, Quotes, _plain, power_of_ten, significant, write_atomic  # noqa: E402  (the numbers the text quotes)
