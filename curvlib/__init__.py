"""curvlib: the library behind *From Second-Order Methods to Practical Tricks*.

Submodules are imported on first use (``curvlib.optim`` pulls in torch, ``curvlib.rules``
does not), so ``import curvlib`` stays cheap.
"""
import importlib
from importlib.metadata import PackageNotFoundError, version as _version

try:  # the one version number lives in pyproject.toml; an install records it
    __version__ = _version("curvlib")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

_SUBMODULES = {"rules", "methods", "runs", "optim", "spectrum", "landscapes", "schedules",
               "memory", "curvature", "data", "models", "train", "plots", "widgets",
               "minimizer", "quasi_newton", "second_order", "compare"}


def __getattr__(name):
    if name == "minimize":
        return importlib.import_module(".minimizer", __name__).minimize
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'curvlib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | {"minimize"})
