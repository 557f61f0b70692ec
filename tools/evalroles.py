"""Find the MyST ``{eval}`...` `` inline expressions of a Markdown cell, as jupyterlab-myst does.

jupyterlab-myst evaluates every ``inlineExpression`` node of a Markdown cell's MyST tree, in
document order, and stores the results in the cell's ``metadata.user_expressions`` as a list
of ``{"expression": <text of the role>, "result": <execute_reply user_expressions entry>}``
(``src/actions.ts``, ``src/userExpressions.ts``). This module gives the same list of
expressions from Python: roles in paragraphs, lists, tables and the bodies of directives
(``{admonition}`` fences included), not in code spans, code blocks or math.

Used by ``tools/run_notebooks.py`` (which fills the metadata), ``tools/curvlib_book.py``
(which renders it) and ``tools/glue_to_eval.py``.
"""
from __future__ import annotations

import re

from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.colon_fence import colon_fence_plugin
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.myst_blocks import myst_block_plugin
from mdit_py_plugins.myst_role import myst_role_plugin

METADATA_KEY = "user_expressions"  # jupyterlab-myst's metadata section

# Directives whose body is not Markdown (code, math, reStructuredText, raw output)
LITERAL_DIRECTIVES = {"code", "code-block", "sourcecode", "code-cell", "math", "eval-rst",
                      "raw", "literalinclude", "mermaid", "glue:md"}
_DIRECTIVE = re.compile(r"^\{([^}\s]+)\}")
_OPTION = re.compile(r"^:[\w-]+:")


def _parser():
    md = MarkdownIt("commonmark", {"html": True})
    md.enable("table")
    for plugin in (myst_role_plugin, myst_block_plugin, dollarmath_plugin, amsmath_plugin,
                   colon_fence_plugin, deflist_plugin):
        md.use(plugin)
    return md


_MD = _parser()


def _directive_body(content):
    """The Markdown body of a directive: its content without the option block."""
    lines = content.splitlines()
    if lines and lines[0].strip() == "---":  # YAML options
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
        lines = lines[end + 1:] if end is not None else lines
    else:
        while lines and _OPTION.match(lines[0].strip()):
            lines = lines[1:]
    return "\n".join(lines)


def _walk(tokens, out):
    for tok in tokens:
        if tok.type == "myst_role" and tok.meta.get("name") == "eval":
            out.append(tok.content)
        elif tok.type in ("fence", "colon_fence"):
            m = _DIRECTIVE.match(tok.info.strip())
            if m and m.group(1) not in LITERAL_DIRECTIVES:
                out.extend(expressions(_directive_body(tok.content)))
        if tok.children:
            _walk(tok.children, out)


def expressions(markdown):
    """The texts of the ``{eval}`` roles in ``markdown``, in order, repeats kept."""
    out = []
    _walk(_MD.parse(markdown), out)
    return out
