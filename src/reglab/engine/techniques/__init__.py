"""Every built-in technique, one module each; importing this package registers them all.

A module here that does not start with ``_`` is a technique: it is found and imported without
being listed anywhere, so adding a technique is adding its file.
"""

import importlib
import pkgutil

from ..registry import techniques as _registered

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def __getattr__(name: str):
    """Every registered technique class by its class name: ``techniques.Dropout``."""
    for cls in _registered():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *(cls.__name__ for cls in _registered())})
