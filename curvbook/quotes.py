"""The numbers a chapter's text quotes, kept in one registry per notebook.

A chapter computes a value in a code cell and registers it with the text that the prose shows::

    q = Quotes("04_momentum")                        # once, in the set-up cell
    q.add("osc_flips_gd", flips, "{:.0f}")           # raw value, how the text shows it
    q.add("rate_gap", 100 * rel, "{:.1f}", tol=0.5)  # may move by 0.5 under other rounding
    q.add("verdict", "inside" if ok else "outside")  # a sentence fragment chosen by code
    q.add("steps", (mean, sd), "{:.0f} ± {:.0f}")    # several values, one text
    q.add("size", nbytes, memory.format_bytes)       # a formatting function
    q.add("table", markdown_text, markdown=True)     # a Markdown block (a table)
    q.save()                                         # last cell: results/04_momentum.quotes.json

The Markdown cells then quote it with MyST's inline-expression role ``eval``::

    The steep coordinate changes sign {eval}`q.osc_flips_gd` times.

so that

* in JupyterLab with ``jupyterlab-myst``, running the Markdown cell evaluates ``q.osc_flips_gd``
  in the kernel and shows its text, without quotes (a :class:`Quote` displays as its text);
* ``tools/run_notebooks.py`` stores the same result in the cell's ``metadata.user_expressions``
  (exactly what JupyterLab stores), so a notebook opened before it has run shows the committed
  numbers, and the book's build (``tools/curvlib_book.py``) renders those committed values: the
  site is never executed. A quote missing from the metadata fails the build.

A number quoted *above* the cell that computes it (a forward reference) is not there yet when
JupyterLab's "Run All" reaches its Markdown cell. Until it is added, ``q.<key>`` gives the
committed quote from ``results/<chapter>.quotes.json`` (what the site shows), marked
``committed=True``; running the Markdown cell again later shows the live value.
``tools/run_notebooks.py`` sets ``CURVBOOK_QUOTES_STRICT=1`` for its kernels, so the committed
file is never read there: every quote it stores is computed by that run.

Tolerances: ``tol=None`` (the default) means the text must come out exactly the same under a
different rounding regime: verdicts, chosen hyperparameters, rankings, counts, sentences chosen
by code. ``tol`` (absolute) or ``rtol`` (relative) allow a numeric value to move by that much;
the robustness check (``tools/robustness.py``, notebooks re-run under ``tools/numerics.py
--perturbed``) compares values, not texts, for those.
"""
from __future__ import annotations

import json
import keyword
import math
import numbers
import os
import string
from pathlib import Path

__all__ = ["Quote", "Quotes", "power_of_ten", "significant"]

#: Environment variable: if set to 1, a missing quote is an error, never read from the file.
STRICT_ENV = "CURVBOOK_QUOTES_STRICT"


class Quote:
    """One quoted value: the raw ``value``, the ``text`` the prose shows, its tolerances.

    Displays as its text (no quotation marks) wherever IPython shows it, so an inline
    ``{eval}`` expression renders the text; a ``markdown=True`` quote displays as Markdown.
    """

    __slots__ = ("key", "value", "text", "tol", "rtol", "markdown", "committed")

    def __init__(self, key, value, text, tol=None, rtol=None, markdown=False, committed=False):
        self.key, self.value, self.text = key, value, text
        self.tol, self.rtol, self.markdown = tol, rtol, markdown
        self.committed = committed  # read from the committed file, not computed in this kernel

    def __str__(self):
        return self.text

    def __repr__(self):
        return self.text

    def __format__(self, spec):
        return format(self.text, spec)

    def _repr_pretty_(self, p, cycle):
        p.text(self.text)

    def _repr_markdown_(self):
        return self.text if self.markdown else None

    def as_dict(self):
        out = {"value": _plain(self.value), "text": self.text}
        if self.tol is not None:
            out["tol"] = self.tol
        if self.rtol is not None:
            out["rtol"] = self.rtol
        if self.markdown:
            out["markdown"] = True
        return out


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(exponent):
    """``"10⁻¹⁵"`` for ``exponent=-15``: a power of ten in plain Unicode, for prose, tables and
    figure labels (no LaTeX, no mathtext). Round a value's ``log10`` to choose the exponent."""
    if isinstance(exponent, bool) or not isinstance(exponent, numbers.Integral):
        raise TypeError(f"exponent must be an integer, got {exponent!r}")
    return "10" + str(int(exponent)).translate(_SUPERSCRIPT)


def significant(x, digits=2):
    """``x`` rounded to ``digits`` significant figures, written without trailing zeros or an
    exponent while it fits: ``significant(251.3)`` is ``"250"``, ``significant(0.2349)`` is
    ``"0.23"`` (``"{:.2g}"`` would give ``"2.5e+02"`` for the first)."""
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) or digits < 1:
        raise ValueError(f"digits must be a positive integer, got {digits!r}")
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise ValueError(f"x must be a finite real number, got {x!r}")
    return f"{float(f'{x:.{digits}g}'):g}"


def write_atomic(path, text):
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename, so a notebook
    that reads it while another one writes it (nbval runs notebooks side by side) sees the
    old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _plain(value, finite=False):
    """A JSON-safe copy of a raw value: numpy/torch scalars and arrays to numbers and lists,
    non-finite floats to the strings ``"nan"``, ``"inf"``, ``"-inf"`` (or, with ``finite=True``,
    refused: a chapter's saved results must be numbers)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v, finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, finite) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isfinite(value):
            return value
        if finite:
            raise ValueError(f"results must be finite numbers, got {value}")
        return str(value)
    return str(value)


def _numeric(value):
    """True for a real number or a (nested) sequence or array of real numbers."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(_numeric(v) for v in value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fields(fmt):
    return sum(1 for _, name, _, _ in string.Formatter().parse(fmt) if name is not None)


def _check_tol(name, tol):
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"{name} must be a non-negative number or None, got {tol!r}")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"{name} must be a non-negative finite number, got {tol!r}")
    return float(tol)


class Quotes:
    """The registry of one chapter's quoted numbers (see the module docstring).

    ``chapter`` is the notebook's stem, e.g. ``"04_momentum"``. Each quote is read back as an
    attribute (``q.osc_flips_gd``) or an item (``q["osc_flips_gd"]``); both give a
    :class:`Quote`. Registering a key again replaces it (a cell run twice).
    """

    def __init__(self, chapter):
        if not isinstance(chapter, str) or not chapter.strip():
            raise ValueError(f"chapter must be a non-empty string, got {chapter!r}")
        self._chapter = chapter
        self._quotes = {}
        self._committed = None  # the committed file's quotes, read on first need

    @property
    def chapter(self):
        return self._chapter

    def add(self, key, value, fmt=None, *, tol=None, rtol=None, markdown=False):
        """Register ``value`` under ``key``; the text is ``fmt`` applied to it.

        ``fmt`` is a ``str.format`` template (``"{:.2f}"``, ``"{:.0f} ± {:.0f}"`` for a
        tuple of values), a function of the value returning the text, or ``None`` for
        ``str(value)``. ``tol``/``rtol``: allowed absolute/relative change of a numeric value
        under a different rounding regime (``None``: the text must not change).
        ``markdown=True``: the text is MyST Markdown (a table, say), shown as a block.
        Returns nothing, so a cell ending in ``q.add(...)`` shows no output.
        """
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise ValueError(f"key must be a Python identifier (it is read as q.<key>), "
                             f"got {key!r}")
        if key.startswith("_") or hasattr(type(self), key):
            raise ValueError(f"key {key!r} is reserved: it is a name of Quotes itself")
        text = self._format(key, value, fmt)
        tol, rtol = _check_tol("tol", tol), _check_tol("rtol", rtol)
        if (tol is not None or rtol is not None) and not _numeric(value):
            raise ValueError(f"tol/rtol of {key!r} need a numeric value, got {value!r}: "
                             "a text, verdict or choice must come out exactly the same")
        if not isinstance(markdown, bool):
            raise TypeError(f"markdown must be True or False, got {markdown!r}")
        self._quotes[key] = Quote(key, value, text, tol, rtol, markdown)

    @staticmethod
    def _format(key, value, fmt):
        if fmt is None:
            text = str(value)
        elif isinstance(fmt, str):
            n = _fields(fmt)
            if isinstance(value, tuple) and n == len(value) and n != 1:
                text = fmt.format(*value)
            elif n == 1:
                text = fmt.format(value)
            else:
                raise ValueError(f"fmt of {key!r} has {n} fields for "
                                 f"{len(value) if isinstance(value, tuple) else 1} value(s): "
                                 f"{fmt!r}")
        elif callable(fmt):
            text = fmt(value)
        else:
            raise TypeError(f"fmt must be a format string, a function or None, got {fmt!r}")
        if not isinstance(text, str):
            raise TypeError(f"fmt of {key!r} must give a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"quote {key!r} formats to an empty text")
        return text

    def _get(self, key):
        if key in self._quotes:
            return self._quotes[key]
        if os.environ.get(STRICT_ENV) != "1":
            if self._committed is None:
                try:
                    data = json.loads(self.path().read_text(encoding="utf-8"))
                    self._committed = data.get("quotes", {}) \
                        if data.get("chapter") == self._chapter else {}
                except (OSError, ValueError):
                    self._committed = {}
            saved = self._committed.get(key)
            if isinstance(saved, dict) and isinstance(saved.get("text"), str):
                return Quote(key, saved.get("value"), saved["text"], saved.get("tol"),
                             saved.get("rtol"), bool(saved.get("markdown")), committed=True)
        return None

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        quote = self._get(key)
        if quote is None:
            raise AttributeError(self._missing(key))
        return quote

    def __getitem__(self, key):
        quote = self._get(key) if isinstance(key, str) else None
        if quote is None:
            raise KeyError(self._missing(key))
        return quote

    def _missing(self, key):
        return (f"no quote {key!r} in {self._chapter}: run the cell that adds it "
                f"(known: {', '.join(self._quotes) or 'none yet'})")

    def __contains__(self, key):
        return key in self._quotes

    def __iter__(self):
        return iter(self._quotes)

    def __len__(self):
        return len(self._quotes)

    def __dir__(self):
        return [*super().__dir__(), *self._quotes]

    def keys(self):
        return list(self._quotes)

    def __repr__(self):
        return f"Quotes({self._chapter!r}, {len(self._quotes)} quotes)"

    def as_dict(self):
        """``{"chapter": ..., "quotes": {key: {"value", "text", ["tol"], ["rtol"], ...}}}``."""
        return {"chapter": self._chapter,
                "quotes": {k: q.as_dict() for k, q in self._quotes.items()}}

    def path(self, directory=None):
        """Where :meth:`save` writes: ``<directory>/<chapter>.quotes.json``."""
        from . import results_dir

        directory = Path(directory) if directory is not None else results_dir()
        return directory / f"{self._chapter}.quotes.json"

    def save(self, directory=None):
        """Write every quote to :meth:`path` (returns nothing: no output in a notebook).

        ``directory`` defaults to :func:`curvbook.results_dir` (``results/`` in the working
        directory: ``chapters/results`` for a notebook), like :func:`curvbook.save_results`.
        """
        if not self._quotes:
            raise ValueError(f"no quotes to save for {self._chapter}")
        path = self.path(directory)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.as_dict(), indent=1, ensure_ascii=False,
                                      allow_nan=False) + "\n")
