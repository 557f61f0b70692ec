"""Read the code a chapter shows its readers, so tests can hold it to the library.

``algorithm_cells(notebook)`` returns the source of the code cells tagged ``algorithm`` (the
short functions a chapter writes out for its readers); ``algorithm_namespace(notebook)``
executes them, in order, in a fresh namespace with numpy (and anything in ``extra``), and
returns that namespace: the very functions the reader sees and edits.
"""
import ast
from pathlib import Path

import nbformat
import numpy as np

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"


def algorithm_cells(notebook, tag="algorithm"):
    nb = nbformat.read(CHAPTERS / notebook, as_version=4)
    cells = ["".join(c.source) for c in nb.cells
             if c.cell_type == "code" and tag in c.metadata.get("tags", [])]
    if not cells:
        raise LookupError(f"{notebook} has no code cell tagged {tag!r}")
    return cells


def function_lengths(source):
    """``{name: lines}`` for every top-level function defined in ``source``."""
    tree = ast.parse(source)
    return {node.name: node.end_lineno - node.lineno + 1 for node in tree.body
            if isinstance(node, ast.FunctionDef)}


def cell_function_lengths(notebook, tag="algorithm"):
    """``{name: lines}`` for every top-level function the notebook's ``tag`` cells define."""
    lengths = {}
    for source in algorithm_cells(notebook, tag):
        lengths.update(function_lengths(source))
    return lengths


def algorithm_namespace(notebook, tag="algorithm", extra=None):
    namespace = {"np": np, **(extra or {})}
    for source in algorithm_cells(notebook, tag):
        exec(compile(source, f"{notebook}:{tag}", "exec"), namespace)
    return namespace
