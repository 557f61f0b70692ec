"""Rewrite chapter notebooks from myst-nb glue to quoted values read with ``{eval}`` roles.

Before (glue: resolved only when the book is built, so a live notebook shows key names)::

    def g(name, text):                              # set-up cell
        glue(name, text, display=False)
    g("ch04_rate_gap", f"{100 * rel:.1f}")          # code cell
    ... within {glue:text}`ch04_rate_gap`% ...      # Markdown cell

After (``curvbook.quotes``; evaluated by JupyterLab, committed for the site)::

    q = Quotes("04_momentum")
    q.add("rate_gap", 100 * rel, "{:.1f}")
    ... within {eval}`q.rate_gap`% ...

What it does to each notebook:

* code: ``from myst_nb import glue`` becomes ``from curvbook import Quotes``; the ``def g``
  helper becomes ``q = Quotes("<stem>")``; every ``g(key, text)`` and
  ``glue(key, text, display=False)`` becomes ``q.add(key, value[, fmt])``. An f-string made
  of replacement fields and literal text is split into the raw value(s) and a format template
  (``f"{x:.2f} million"`` -> ``x, "{:.2f} million"``; several fields -> a tuple); a call of one
  argument (``memory.format_bytes(n)``) into the value and the formatting function;
  ``Markdown(text)`` into ``text, markdown=True``; anything else is kept as the text itself.
  Keys lose the chapter prefix (``ch04_``, ``ch8_``, ``a1_``) when what is left is a name
  ``q.<key>`` can read; otherwise they keep it. Tolerances are left at ``None`` (exact).
* the glue outputs (``application/papermill.record`` display data) are removed;
* Markdown: ``{glue:text}`key` `` (and ``{glue}``, ``{glue:md}``) becomes ``{eval}`q.key` ``;
  a ``{glue:md}`` directive becomes a paragraph holding only ``{eval}`q.key` ``. The committed
  glue values fill each cell's ``metadata.user_expressions`` (what ``tools/run_notebooks.py``
  would store), so the notebook builds and reads the same before it is run again;
* a last, hidden code cell ``q.save()`` is added (the quotes file for the robustness check).

Running it again changes nothing (idempotent). Usage:
``python tools/glue_to_eval.py [--check] [chapters/04_momentum.ipynb ...]`` (default: every
chapter notebook); ``--check`` only reports which notebooks would change (exit status 1).
"""
from __future__ import annotations

import argparse
import ast
import copy
import io
import keyword
import re
import sys
import tokenize
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evalroles import METADATA_KEY, expressions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME = "q"                                    # the registry's name in every chapter
PREFIX = re.compile(r"^(ch\d+|a\d+)_")        # the chapter prefix of glue keys
RESERVED = {"add", "save", "path", "keys", "as_dict", "chapter"}  # names of Quotes itself
SAVE_ID = "quotes-save"
RECORD = "application/papermill.record/"
MAX_LINE = 99
_ROLE = re.compile(r"\{glue(?::(?:text|md|any))?\}`([^`]+)`")
_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{glue(?::md|:any)?\}[ \t]+(\S+)[ \t]*\n"
                        r"(?:[ \t]*:[\w-]+:.*\n)*\1[ \t]*$", re.M)


class ConversionError(ValueError):
    pass


def new_key(key):
    """The registry key of a glue key: without its chapter prefix when that leaves a name."""
    rest = PREFIX.sub("", key, count=1)
    if rest != key and rest.isidentifier() and not keyword.iskeyword(rest) \
            and not rest.startswith("_") and rest not in RESERVED:
        return rest
    return key


def pystr(text):
    """A double-quoted Python literal of ``text``."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def _double_quotes(src):
    """Turn the simple single-quoted string literals of ``src`` into double-quoted ones."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError):
        return src
    out, last = [], 0
    lines = src.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for tok in toks:
        if tok.type != tokenize.STRING:
            continue
        m = re.match(r"^([rRbBfFuU]{0,2})'([^'\"\\]*)'$", tok.string)
        if not m:
            continue
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1]
        out.append(src[last:start] + f'{m.group(1)}"{m.group(2)}"')
        last = end
    return "".join(out) + src[last:]


def _same(a, b):
    return ast.dump(a, include_attributes=False) == ast.dump(b, include_attributes=False)


def _expr(node, src):
    """Source text of an expression as written (checked by parsing it again; positions inside
    f-strings can be off before Python 3.12), else regenerated; simple strings double-quoted."""
    text = ast.get_source_segment(src, node)
    try:
        ok = text is not None and _same(ast.parse(text.strip(), mode="eval").body, node)
    except SyntaxError:
        ok = False
    return _double_quotes(text.strip() if ok else ast.unparse(node))


def _is_dotted_name(node):
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _split_fstring(node, src):
    """``(values, template)`` of an f-string made of literals and simple fields, else None."""
    values, template = [], []
    for part in node.values:
        if isinstance(part, ast.Constant):
            template.append(part.value.replace("{", "{{").replace("}", "}}"))
        elif isinstance(part, ast.FormattedValue):
            if part.conversion != -1:
                return None
            spec = ""
            if part.format_spec is not None:
                if not all(isinstance(p, ast.Constant) for p in part.format_spec.values):
                    return None
                spec = ":" + "".join(p.value for p in part.format_spec.values)
            values.append(_expr(part.value, src))
            template.append("{" + spec + "}")
        else:
            return None
    if not values:
        return None
    return values, "".join(template)


def _key_source(node, src):
    """Source of the key argument with the chapter prefix handled (see :func:`new_key`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return pystr(new_key(node.value))
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        m = PREFIX.match(node.values[0].value)
        if m:  # f"ch04_speedup_{k}": keys made at run time lose the prefix
            text = ast.get_source_segment(src, node)
            quote = re.match(r"^[fF]([\"'])", text)
            if quote:
                return text[:2] + text[2:].replace(m.group(0), "", 1)
        return ast.get_source_segment(src, node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) \
            and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
        m = PREFIX.match(node.left.value)
        if m:  # "a1_" + name
            rest = node.left.value[len(m.group(0)):]
            right = ast.get_source_segment(src, node.right)
            return right if not rest else f"{pystr(rest)} + {right}"
    return ast.get_source_segment(src, node)


def _value_args(node, src):
    """The arguments after the key in ``q.add``: value, and a format or ``markdown=True``."""
    if isinstance(node, ast.JoinedStr):
        split = _split_fstring(node, src)
        if split:
            values, template = split
            if len(values) == 1:
                return [values[0]] if template == "{}" else [values[0], pystr(template)]
            return ["(" + ", ".join(values) + ")", pystr(template)]
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords \
            and _is_dotted_name(node.func) \
            and not isinstance(node.args[0], (ast.Starred, ast.GeneratorExp, ast.Lambda)):
        func, arg = _expr(node.func, src), _expr(node.args[0], src)
        if func == "str":
            return [arg]
        if func in ("Markdown", "IPython.display.Markdown"):
            return [arg, "markdown=True"]
        return [arg, func]
    return [ast.get_source_segment(src, node)]


def _glue_call(node):
    """True for ``g(key, text)`` and ``glue(key, text[, display=False])``."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return False
    if node.func.id == "g":
        return len(node.args) == 2 and not node.keywords
    if node.func.id == "glue":
        return len(node.args) == 2 and all(
            k.arg == "display" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords)
    return False


def _offset(src, lines, lineno, col):
    """Character offset of an ast (line, UTF-8 byte column) position."""
    line = lines[lineno - 1]
    return sum(len(x) for x in lines[:lineno - 1]) + len(line.encode()[:col].decode())


def _call_text(key, args, indent):
    one = f"{NAME}.add({key}, {', '.join(args)})"
    if indent + len(one) <= MAX_LINE:
        return one
    pad = " " * (indent + len(NAME) + 5)
    return f"{NAME}.add({key},\n{pad}{', '.join(args)})"


def convert_code(src):
    """``src`` with every glue call rewritten; the number of calls rewritten."""
    try:
        tree = ast.parse(src)
    except SyntaxError as exc:
        raise ConversionError(f"cannot parse code cell: {exc}") from None
    lines = src.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        if not _glue_call(node):
            continue
        start = _offset(src, lines, node.lineno, node.col_offset)
        end = _offset(src, lines, node.end_lineno, node.end_col_offset)
        indent = start - src.rfind("\n", 0, start) - 1
        key = _key_source(node.args[0], src)
        edits.append((start, end, _call_text(key, _value_args(node.args[1], src), indent)))
    for start, end, text in sorted(edits, reverse=True):
        src = src[:start] + text + src[end:]
    try:
        ast.parse(src)
    except SyntaxError as exc:  # pragma: no cover - a bug of this script
        raise ConversionError(f"rewritten cell does not parse: {exc}\n{src}") from None
    return src, len(edits)


def convert_setup(src, stem):
    """Replace the glue import and the ``def g`` helper; returns (src, changed).

    ``def g`` becomes ``q = Quotes(...)``; without one (glue called directly), that line goes
    after the cell's last import."""
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    registry = f'{NAME} = Quotes("{stem}")  # the numbers the text quotes: {{eval}}`{NAME}.key`\n'
    has_g = any(isinstance(n, ast.FunctionDef) and n.name == "g" for n in tree.body)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    changed = False
    for node in sorted(tree.body, key=lambda n: n.lineno, reverse=True):
        if isinstance(node, ast.FunctionDef) and node.name == "g":
            lines[node.lineno - 1:node.end_lineno] = [registry]
            changed = True
        elif isinstance(node, ast.ImportFrom) and node.module == "myst_nb" \
                and [a.name for a in node.names] == ["glue"]:
            new = ["from curvbook import Quotes\n"]
            if not has_g and node is imports[-1]:
                new.append(registry)
            lines[node.lineno - 1:node.end_lineno] = new
            if not has_g and node is not imports[-1]:
                last = imports[-1]
                shift = len(new) - (node.end_lineno - node.lineno + 1)
                lines.insert(last.end_lineno + shift, registry)
            changed = True
    new = "".join(lines)
    if not src.endswith("\n"):
        new = new[:-1]
    return new, changed


def _assigns_registry(src):
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == NAME
                                                 for t in n.targets)
               and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
               and n.value.func.id == "Quotes" for n in tree.body)


def _rebinds_registry(src):
    """True if module-level code binds ``q`` to something else (a loop, an assignment)."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return False
    for node in tree.body:
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, (ast.For, ast.With)):
            targets = [node.target] if isinstance(node, ast.For) else \
                [i.optional_vars for i in node.items if i.optional_vars is not None]
        for t in targets:
            if any(isinstance(n, ast.Name) and n.id == NAME for n in ast.walk(t)):
                if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                        and isinstance(node.value.func, ast.Name)
                        and node.value.func.id == "Quotes"):
                    return True
    return False


def convert_markdown(src):
    """Glue roles and directives -> ``{eval}`q.key` ``; returns (src, old keys used)."""
    used = []

    def directive(m):
        used.append(m.group(2))
        return f"{{eval}}`{NAME}.{new_key(m.group(2))}`"

    def role(m):
        key = m.group(1).strip()
        if "::" in key or ":" in key:
            raise ConversionError(f"glue role with a format or another page's key: {m.group(0)}")
        used.append(key)
        return f"{{eval}}`{NAME}.{new_key(key)}`"

    src = _DIRECTIVE.sub(directive, src)
    src = _ROLE.sub(role, src)
    return src, used


def _glue_result(output):
    """What the kernel would return for ``q.key`` of this glue record (see Quote)."""
    data = output["data"]
    if RECORD + "text/markdown" in data:
        text = data[RECORD + "text/markdown"]
        return {"data": {"text/markdown": text, "text/plain": text}, "metadata": {},
                "status": "ok"}
    plain = data.get(RECORD + "text/plain")
    if plain is None:
        return None
    try:
        text = ast.literal_eval(plain)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(text, str):
        text = str(text)
    return {"data": {"text/plain": text}, "metadata": {}, "status": "ok"}


def _is_glue_output(output):
    return output.get("output_type") == "display_data" and "scrapbook" in output.get("metadata", {})


def convert(nb, stem):
    """Convert one notebook in place; returns a list of notes (what could not be filled)."""
    notes = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        if _rebinds_registry(cell.source):
            raise ConversionError(f"{stem}: a code cell binds {NAME!r} itself; "
                                  "rename that variable first")
    # committed glue values, by old key
    glued = {}
    for cell in code:
        for out in cell.get("outputs", []):
            if _is_glue_output(out):
                glued[out["metadata"]["scrapbook"]["name"]] = _glue_result(out)
    # code cells
    calls = 0
    for cell in code:
        src, changed = convert_setup(cell.source, stem) if (
            "def g(" in cell.source or "myst_nb import glue" in cell.source) else (cell.source, False)
        src, n = convert_code(src)
        calls += n
        if changed or n:
            cell.source = src
        if any(_is_glue_output(o) for o in cell.get("outputs", [])):
            cell.outputs = [o for o in cell.outputs if not _is_glue_output(o)]
    sources = "\n".join(c.source for c in code)
    if re.search(r"\bglue\(", sources) or re.search(r"(?m)^\s*g\(", sources):
        notes.append("glue calls left that this script does not rewrite")
    if f"{NAME}.add(" in sources and not any(_assigns_registry(c.source) for c in code):
        first = next(c for c in code if "colab-install" not in c.metadata.get("tags", []))
        first.source = (f'from curvbook import Quotes\n{NAME} = Quotes("{stem}")\n'
                        + first.source)
    # markdown cells
    reverse = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        src, used = convert_markdown(cell.source)
        for key in used:
            reverse[f"{NAME}.{new_key(key)}"] = key
        if src != cell.source:
            cell.source = src
    for old in glued:
        reverse.setdefault(f"{NAME}.{new_key(old)}", old)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        exprs = expressions(cell.source)
        if not exprs:
            continue
        have = {e["expression"]: e for e in cell.metadata.get(METADATA_KEY, [])}
        stored = []
        for expr in exprs:
            if expr in have:
                stored.append(have[expr])
            elif glued.get(reverse.get(expr)) is not None:
                stored.append({"expression": expr, "result": glued[reverse[expr]]})
            else:
                notes.append(f"no committed value for {{eval}}`{expr}` (run the notebook)")
        if stored and stored != cell.metadata.get(METADATA_KEY):
            cell.metadata[METADATA_KEY] = stored
    # the quotes file
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if f"{NAME}.add(" in sources and f"{NAME}.save(" not in sources:
        counts = [c.get("execution_count") for c in nb.cells if c.cell_type == "code"]
        save = nbformat.v4.new_code_cell(
            f"{NAME}.save()  # results/{stem}.quotes.json: each quoted value, its text, "
            "its tolerance", metadata={"tags": ["remove-cell"]})
        save.id = SAVE_ID
        # what running it would record: the next count, and no output
        save.execution_count = (max(counts) + 1 if counts and None not in counts else None)
        nb.cells.append(save)
    return notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        default=sorted((ROOT / "chapters").glob("*.ipynb")))
    parser.add_argument("--check", action="store_true",
                        help="report the notebooks that would change; write nothing")
    args = parser.parse_args(argv)
    changed = []
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        before = copy.deepcopy(nb)
        try:
            notes = convert(nb, path.stem)
        except ConversionError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
        if nb != before:
            changed.append(path)
            if not args.check:
                nbformat.validate(nb)
                nbformat.write(nb, path)
        status = "would change" if args.check and nb != before else \
            "converted" if nb != before else "unchanged"
        print(f"{path.name}: {status}" + "".join(f"\n  note: {n}" for n in notes))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
