"""Do the book's conclusions survive a different rounding regime? (``make test-robustness``)

Pinned numeric settings (``tools/numerics.py``) make every x86-64 machine print the same digits.
They do not make a conclusion true: a verdict that flips when the sums are rounded differently
rests on noise. This script re-executes every chapter notebook into a temporary folder (never
in place) under :func:`numerics.perturbed_env` -- torch's portable kernels, numpy's baseline
code, OpenBLAS's SSE3 and MKL's SSE2 paths, one thread -- and compares the result with the
committed run:

* **quotes** (``chapters/results/<stem>.quotes.json``, written by ``curvbook.quotes.Quotes``):
  a number with a tolerance ``tol`` (absolute) or ``rtol`` (relative), declared by its
  experiment from its own seed spread, must move by at most that; one without must print the
  same text;
* **glue** values of notebooks not yet converted to quotes (myst-nb ``glue`` outputs): the words
  of a value (a verdict, a chosen sentence, a name) must match exactly, and so must a value
  whose name marks a decision (a tuned ``lr``, a ``best`` setting, a ``rank``, an ``edge``, a
  count ``n_...``, a number of ``fail``-ures or ``diverg``-ences) and a number that follows a
  decision word in the text ("lr 0.1"); any other number has no declared tolerance, so its
  relative change is reported, not judged;
* **outputs** of code cells (Markdown tables, printed text; not images, which the kernels here
  leave out of Explorer frames (``curvlib.widgets.PICTURES_ENV``), not cells tagged
  ``nbval-ignore-output``): the words and their order must match (so a ranking, a chosen
  method, a "yes"/"no" cannot flip), and so must the numbers in a table column whose header
  names a decision (``tuned lr``); other numbers are reported;
* **results** each chapter saves (``chapters/results/<stem>.json``): strings and decision
  keys exact, other numbers reported;
* **verdicts**: every claim's verdict, computed by ``curvbook.claims`` from the committed and
  from the perturbed measurements, must be the same.

It prints one table of every difference and exits with status 1 if anything that must match
does not. ``--compare-only DIR`` compares a folder from an earlier ``--keep`` run again.

``--regime native`` runs with nothing pinned (this CPU's own kernels) instead, to see what an
unpinned machine would conclude.

Usage: ``python tools/robustness.py [--jobs N] [--regime R] [--keep DIR | --compare-only DIR]
[notebook ...]``
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numerics  # noqa: E402
from curvlib.widgets import PICTURES_ENV  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
#: notebooks that read what other notebooks saved: executed after all the others (appendix A3
#: reads only the committed runtimes.json, copied into the work folder, so it runs with the rest)
LAST = ("10_conclusion", "a1_claims_audit")
KERNEL = "curvbook-robustness"


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------

_CHECK = """\
import json as _json, os as _os
_expected = _json.loads({expected!r})
_wrong = {{k: _os.environ.get(k) for k, v in _expected.items() if _os.environ.get(k) != v}}
assert not _wrong, f"the numeric settings of the run were not applied: {{_wrong}}"
del _json, _os, _expected, _wrong
"""


#: the rounding regimes a run can use: ``perturbed`` (the check), ``native`` (nothing pinned:
#: this CPU's own kernels, e.g. AVX-512; shows what an unpinned machine would conclude)
REGIMES = ("perturbed", "native")
_PINNED_KEYS = ("ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE",
                "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")


def regime_env(regime):
    """The numeric settings of ``regime`` (None for a setting that must be absent)."""
    if regime == "perturbed":
        return {k: None for k in _PINNED_KEYS} | numerics.perturbed_env()
    if regime == "native":
        return {k: None for k in _PINNED_KEYS} | {"PYTHONHASHSEED": "0"}
    raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")


def kernel_env(workdir, regime="perturbed"):
    """The kernel's environment: ``regime``'s settings, one thread, results in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if k not in _PINNED_KEYS and k != "MPLBACKEND"}
    env.update({k: v for k, v in regime_env(regime).items() if v is not None})
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "CURVBOOK_RESULTS": str(Path(workdir) / "chapters" / "results"),
                # the comparison reads text, never pictures: Explorer frames skip their drawing
                # (the book's 492 frames: 21 s instead of 55 s; render functions still run)
                PICTURES_ENV: "0"})
    return env


def prepare(workdir, regime="perturbed"):
    """Copy the chapters (notebooks, saved results, runtimes) to ``workdir``; link benchmarks."""
    workdir = Path(workdir)
    shutil.copytree(CHAPTERS, workdir / "chapters", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_build"))
    link = workdir / "benchmarks"
    if not link.exists():
        link.symlink_to(ROOT / "benchmarks")  # appendix A3 loads the scripts from ../benchmarks
    spec = workdir / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    # Jupyter applies a kernel spec's env over the launch environment, and the venv's python3
    # spec carries the *pinned* settings: the perturbed run needs a spec of its own.
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"curvbook ({regime} rounding)", "language": "python",
        "env": kernel_env(workdir, regime)}, indent=1))
    return workdir


def execute_one(stem, workdir, timeout, regime="perturbed"):
    """Execute ``workdir/chapters/<stem>.ipynb`` in place in ``regime``'s kernel; seconds."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from run_notebooks import execute

    workdir = Path(workdir)
    path = workdir / "chapters" / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    expected = regime_env(regime)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_CHECK.format(expected=json.dumps(expected))))
    nbformat.write(nb, path)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(workdir / "kernels")]))
    seconds = execute(path, timeout, km=km, env=kernel_env(workdir, regime))
    nb = nbformat.read(path, as_version=4)
    del nb.cells[0]
    nbformat.write(nb, path)
    return seconds


def execute_all(stems, workdir, jobs=1, timeout=1800, regime="perturbed"):
    """Execute the notebooks (those in :data:`LAST` after the rest, the others longest first);
    {stem: seconds}."""
    from run_notebooks import longest_first

    first = longest_first([s for s in stems if s not in LAST])
    last = [s for s in LAST if s in stems]
    times = {}

    def report(stem, seconds):
        times[stem] = seconds
        print(f"  {stem}: {seconds:.0f} s", flush=True)

    if jobs > 1 and len(first) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(execute_one, s, workdir, timeout, regime): s for s in first}
            for future in concurrent.futures.as_completed(futures):
                report(futures[future], future.result())
    else:
        for stem in first:
            report(stem, execute_one(stem, workdir, timeout, regime))
    for stem in last:
        report(stem, execute_one(stem, workdir, timeout, regime))
    return times


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------

#: a number as the chapters print it: sign (also U+2212), thousands separators, exponent
NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
#: name tokens that mark a decision rather than a measurement: tuned or best settings, ranks,
#: grid edges, counts (n_...), numbers of failures
DECISION = re.compile(r"(^|[_\s])(lr|best|tuned|rank|ranking|edge|edges|n|fail\w*|diverg\w*|winner)($|[_\s])",
                      re.I)
#: words that are units, not claims ("2.61 PB", "0.003 to 0.03", "0.33 decades")
UNITS = {"to", "b", "kb", "mb", "gb", "tb", "pb", "eb", "zb", "x", "decades", "e"}


@dataclass
class Difference:
    notebook: str
    kind: str       # quote, glue, output, result, verdict, notebook
    name: str
    old: str
    new: str
    fails: bool     # True: must match and does not
    note: str       # why it fails, or the relative change / tolerance

    def row(self):
        return {"notebook": self.notebook, "kind": self.kind, "name": self.name,
                "committed": self.old, "perturbed": self.new,
                "result": ("MISMATCH: " if self.fails else "") + self.note}


def to_float(text):
    return float(text.replace(",", "").replace("\u2212", "-"))


def split_numbers(text):
    """``("# ± #", ["97.2", "0.5"])`` for ``"97.2 ± 0.5"``: the words, and the numbers in order."""
    numbers = NUMBER.findall(text)
    return NUMBER.sub("#", text), numbers


def is_sentence(text):
    """True if ``text`` has words beyond units: a verdict, a name, a chosen sentence."""
    skeleton, _ = split_numbers(text)
    words = re.findall(r"[^\W\d_]+", skeleton)
    return any(w.lower() not in UNITS for w in words)


def is_decision(name):
    return bool(DECISION.search(name))


def relative_change(old, new):
    """Largest relative change over paired numbers (None if they cannot be paired)."""
    if len(old) != len(new):
        return None
    worst = 0.0
    for a, b in zip(old, new):
        a, b = to_float(a), to_float(b)
        if a == b:
            continue
        worst = max(worst, math.inf if a == 0 else abs(b - a) / abs(a))
    return worst


def _fmt_change(change):
    return "changed (numbers not paired)" if change is None else f"changed by {100 * change:.3g}%"


def decision_numbers(skeleton):
    """Indices of the numbers (``#``) in ``skeleton`` right after a decision word (``lr #``,
    ``λ = #``)."""
    out = []
    for k, m in enumerate(re.finditer("#", skeleton)):
        word = re.search(r"([^\W\d_]+)[\s=:]*$", skeleton[:m.start()])
        if word and (is_decision(word.group(1)) or word.group(1) in ("λ", "η")):
            out.append(k)
    return out


def compare_value(notebook, kind, name, old, new, decision=False):
    """A :class:`Difference` for one undeclared value (glue, result, table cell), or None.

    A decision (by its name), a change of words (a verdict, a chosen sentence, a name) or of a
    number that follows a decision word ("lr 0.1") must not happen; for other numbers the
    relative change is reported (no tolerance was declared, so it cannot be judged).
    """
    if old == new:
        return None
    if decision:
        return Difference(notebook, kind, name, old, new, True, "decision value")
    (s_old, n_old), (s_new, n_new) = split_numbers(old), split_numbers(new)
    if s_old != s_new:
        why = "words differ" if is_sentence(old) or is_sentence(new) else "form differs"
        return Difference(notebook, kind, name, old, new, True, why)
    if any(n_old[i] != n_new[i] for i in decision_numbers(s_old)):
        return Difference(notebook, kind, name, old, new, True, "decision value in the text")
    return Difference(notebook, kind, name, old, new, False,
                      _fmt_change(relative_change(n_old, n_new)) + ", no tolerance declared")


def compare_quotes(notebook, old, new):
    """Quotes (``curvbook.quotes`` files): within ``tol``/``rtol`` if declared, else the same text."""
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            out.append(Difference(notebook, "quote", name, _text(old.get(name)), _text(new.get(name)),
                                  True, "quote missing in one run"))
            continue
        a, b = old[name], new[name]
        tol, rtol = a.get("tol"), a.get("rtol")
        if tol is None and rtol is None:
            if a.get("text") != b.get("text"):
                out.append(Difference(notebook, "quote", name, a.get("text"), b.get("text"), True,
                                      "no tolerance declared: must print the same"))
            continue
        declared = " and ".join(f"{k} {v:g}" for k, v in (("tol", tol), ("rtol", rtol)) if v is not None)
        pairs = _number_pairs(a.get("value"), b.get("value"))
        if pairs is None:
            out.append(Difference(notebook, "quote", name, a.get("text"), b.get("text"), True,
                                  "values not comparable"))
            continue
        moved = max((abs(y - x) for x, y in pairs), default=0.0)
        outside = [(x, y) for x, y in pairs if abs(y - x) > max(tol or 0.0, (rtol or 0.0) * abs(x))]
        if outside:
            x, y = outside[0]
            out.append(Difference(notebook, "quote", name, a.get("text"), b.get("text"), True,
                                  f"{x:g} moved to {y:g}, beyond the declared {declared}"))
        elif a.get("text") != b.get("text"):
            out.append(Difference(notebook, "quote", name, a.get("text"), b.get("text"), False,
                                  f"within the declared {declared} (moved {moved:.3g})"))
    return out


def _text(entry):
    return "-" if entry is None else str(entry.get("text", entry.get("value")))


def _number_pairs(a, b):
    """Paired numbers of two equal-shaped (nested) values; None if they are not such numbers."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return None
        a, b = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return None
        out = []
        for x, y in zip(a, b):
            pairs = _number_pairs(x, y)
            if pairs is None:
                return None
            out += pairs
        return out
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return [(float(a), float(b))]
    return [] if a == b else None  # equal non-numbers ("nan", a label) pair with nothing


def glue_values(nb):
    """``{name: text}`` of every myst-nb glue output (its text/markdown, else text/plain)."""
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            data = o.get("data", {})
            prefix = meta.get("mime_prefix", "application/papermill.record/")
            text = data.get(prefix + "text/markdown", data.get(prefix + "text/plain", ""))
            text = "".join(text) if isinstance(text, list) else text
            if prefix + "text/markdown" not in data:
                text = _unrepr(text)
            out[meta["name"]] = text
    return out


def _unrepr(text):
    """glue stores repr(value): "'0.61'" for the string 0.61."""
    import ast
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text


def _tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def text_outputs(cell):
    """The comparable text of a code cell's outputs: Markdown, stdout, text/plain of results."""
    out = []
    for o in cell.get("outputs", []):
        kind = o["output_type"]
        if kind == "stream":
            if o.get("name") == "stdout":
                out.append(("stdout", "".join(o["text"])))
        elif kind in ("display_data", "execute_result"):
            if o.get("metadata", {}).get("scrapbook"):
                continue
            data = o.get("data", {})
            for mime in ("text/markdown", "text/plain"):
                if mime in data:
                    text = data[mime]
                    out.append((mime, "".join(text) if isinstance(text, list) else text))
                    break
        elif kind == "error":
            out.append(("error", f"{o.get('ename')}: {o.get('evalue')}"))
    return out


def markdown_table(text):
    """(header, rows) of a GitHub-style Markdown table, or None if ``text`` is not one."""
    lines = [l.strip() for l in text.strip().splitlines()]
    if len(lines) < 2 or not lines[0].startswith("|") or not re.match(r"^\|[\s:|-]+\|$", lines[1]):
        return None
    cells = lambda l: [c.strip() for c in re.split(r"(?<!\\)\|", l.strip().strip("|"))]  # noqa: E731
    return cells(lines[0]), [cells(l) for l in lines[2:]]


def compare_text(notebook, where, old, new):
    """Differences between two outputs of one cell (a Markdown table cell by cell, else as text)."""
    if old == new:
        return []
    t_old, t_new = markdown_table(old), markdown_table(new)
    if t_old and t_new and t_old[0] == t_new[0] and len(t_old[1]) == len(t_new[1]):
        header, out = t_old[0], []
        for r, (row_old, row_new) in enumerate(zip(t_old[1], t_new[1])):
            label = row_old[0] if row_old else str(r)
            for c, (a, b) in enumerate(zip(row_old, row_new)):
                column = header[c] if c < len(header) else str(c)
                d = compare_value(notebook, "output", f"{where} [{label} | {column}]", a, b,
                                  decision=is_decision(column) or c == 0)
                if d:
                    out.append(d)
            if len(row_old) != len(row_new):
                out.append(Difference(notebook, "output", f"{where} [{label}]", " | ".join(row_old),
                                      " | ".join(row_new), True, "row shape differs"))
        return out
    (s_old, n_old), (s_new, n_new) = split_numbers(old), split_numbers(new)
    if s_old != s_new:
        return [Difference(notebook, "output", where, _short(old, new), _short(new, old), True,
                           "words differ")]
    return [Difference(notebook, "output", where, f"{len(n_old)} numbers", f"{len(n_new)} numbers",
                       False, _fmt_change(relative_change(n_old, n_new)) + ", no tolerance declared")]


def _short(text, other, width=70):
    """The part of ``text`` around its first difference from ``other``."""
    i = next((k for k, (a, b) in enumerate(zip(text, other)) if a != b), min(len(text), len(other)))
    start = max(0, i - 20)
    piece = text[start:start + width].replace("\n", " ")
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def compare_notebook(stem, old_nb, new_nb, quoted=()):
    """Glue values (except those in ``quoted``) and cell outputs of one notebook."""
    out = []
    g_old, g_new = glue_values(old_nb), glue_values(new_nb)
    for name in sorted(set(g_old) | set(g_new)):
        if name in quoted:
            continue
        if name not in g_old or name not in g_new:
            out.append(Difference(stem, "glue", name, g_old.get(name, "-"), g_new.get(name, "-"),
                                  True, "glue value missing in one run"))
            continue
        d = compare_value(stem, "glue", name, g_old[name], g_new[name], decision=is_decision(name))
        if d:
            out.append(d)
    cells_old, cells_new = old_nb["cells"], new_nb["cells"]
    if len(cells_old) != len(cells_new):
        return out + [Difference(stem, "notebook", "cells", str(len(cells_old)), str(len(cells_new)),
                                 True, "different number of cells")]
    for i, (a, b) in enumerate(zip(cells_old, cells_new)):
        if a["cell_type"] != "code" or _tags(a) & {"nbval-ignore-output", "nbval-skip"}:
            continue
        o_old, o_new = text_outputs(a), text_outputs(b)
        if [m for m, _ in o_old] != [m for m, _ in o_new]:
            out.append(Difference(stem, "output", f"cell {i}", ", ".join(m for m, _ in o_old) or "-",
                                  ", ".join(m for m, _ in o_new) or "-", True, "different outputs"))
            continue
        for k, ((_, x), (_, y)) in enumerate(zip(o_old, o_new)):
            out += compare_text(stem, f"cell {i}" + (f".{k}" if len(o_old) > 1 else ""), x, y)
    return out


def flatten(data, prefix=""):
    """``{"a.b.0": value}`` for nested dicts and lists."""
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: data}
    out = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def compare_results(stem, old, new):
    """A chapter's saved results: strings and decision keys exact, numbers reported."""
    f_old, f_new = flatten(old), flatten(new)
    out = []
    for key in sorted(set(f_old) | set(f_new)):
        a, b = f_old.get(key, "-"), f_new.get(key, "-")
        if a == b:
            continue
        if key not in f_old or key not in f_new:
            out.append(Difference(stem, "result", key, str(a), str(b), True, "key missing in one run"))
            continue
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        if numeric and not is_decision(key.replace(".", "_")):
            out.append(Difference(stem, "result", key, f"{a:g}", f"{b:g}", False,
                                  _fmt_change(relative_change([repr(a)], [repr(b)]))
                                  + ", no tolerance declared"))
        else:
            out.append(Difference(stem, "result", key, str(a), str(b), True,
                                  "decision value" if numeric else "words differ"))
    return out


def compare_verdicts(old_dir, new_dir):
    """Every claim's verdict computed from each run's measurements (``curvbook.claims``)."""
    from curvbook import claims
    old, new = claims.verdicts(directory=old_dir), claims.verdicts(directory=new_dir)
    out = []
    for cid in old:
        if old[cid]["verdict"] != new[cid]["verdict"]:
            out.append(Difference(old[cid]["notebook"], "verdict", cid, old[cid]["verdict"],
                                  new[cid]["verdict"], True, "verdict flips"))
    return out


def compare(old_dir, new_dir, stems, verdicts=True):
    """All differences between the committed chapters in ``old_dir`` and a run in ``new_dir``
    (and, if ``verdicts``, between the claim verdicts computed from each one's results)."""
    import nbformat
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    out = []
    for stem in stems:
        quoted = set()
        q_old, q_new = (d / "results" / f"{stem}.quotes.json" for d in (old_dir, new_dir))
        if q_old.exists() or q_new.exists():
            a = json.loads(q_old.read_text()) if q_old.exists() else {}
            b = json.loads(q_new.read_text()) if q_new.exists() else {}
            a, b = _quote_entries(a), _quote_entries(b)
            quoted = set(a) | set(b)
            out += compare_quotes(stem, a, b)
        out += compare_notebook(stem, nbformat.read(old_dir / f"{stem}.ipynb", as_version=4),
                                nbformat.read(new_dir / f"{stem}.ipynb", as_version=4), quoted)
        r_old, r_new = (d / "results" / f"{stem}.json" for d in (old_dir, new_dir))
        if r_old.exists() and r_new.exists():
            out += compare_results(stem, json.loads(r_old.read_text()), json.loads(r_new.read_text()))
    if verdicts:
        out += compare_verdicts(old_dir / "results", new_dir / "results")
    return out


def _quote_entries(data):
    """``{name: {"value", "text", "tol"}}`` from a quotes file (entries may sit under "quotes")."""
    return data.get("quotes", data) if isinstance(data, dict) else {}


def render(differences, width=44):
    """The differences as a plain-text table, failures first."""
    if not differences:
        return "no differences"
    rows = [d.row() for d in sorted(differences, key=lambda d: (not d.fails, d.notebook, d.kind, d.name))]
    cols = ["notebook", "kind", "name", "committed", "perturbed", "result"]
    clip = lambda s: s if len(s) <= width else s[:width - 1] + "…"  # noqa: E731
    table = [[clip(str(r[c]).replace("\n", " ")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line("-" * w for w in widths), *map(line, table)])


def summary(differences):
    fails = sum(d.fails for d in differences)
    return (f"{fails} must-match value(s) differ; {len(differences) - fails} number(s) moved "
            "without a declared tolerance or within it")


def notebook_stems(names):
    if not names:
        return sorted(p.stem for p in CHAPTERS.glob("*.ipynb"))
    return [Path(n).stem for n in names]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: every notebook in chapters/")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    parser.add_argument("--keep", type=Path, help="execute into this folder and keep it")
    parser.add_argument("--compare-only", type=Path, metavar="DIR",
                        help="compare a folder from an earlier --keep run, execute nothing")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per cell")
    parser.add_argument("--regime", choices=REGIMES, default="perturbed",
                        help="perturbed (default): the check; native: nothing pinned, this CPU's "
                             "own kernels (what an unpinned machine concludes)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    stems = notebook_stems(args.notebooks)
    start = time.perf_counter()
    if args.compare_only:
        workdir = args.compare_only
    else:
        workdir = args.keep or Path(tempfile.mkdtemp(prefix="curvbook-robustness-"))
        prepare(workdir, args.regime)
        print(f"executing {len(stems)} notebook(s) under the {args.regime} settings in {workdir}:",
              " ".join(f"{k}={v}" for k, v in regime_env(args.regime).items() if v), flush=True)
        try:
            execute_all(stems, workdir, jobs=args.jobs, timeout=args.timeout, regime=args.regime)
        except Exception:
            print(f"execution failed; the notebooks are in {workdir}", file=sys.stderr)
            raise
    differences = compare(CHAPTERS, Path(workdir) / "chapters", stems)
    print(render(differences))
    print(summary(differences))
    print(f"robustness check: {time.perf_counter() - start:.0f} s")
    if not args.keep and not args.compare_only:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(d.fails for d in differences) else 0


if __name__ == "__main__":
    sys.exit(main())
