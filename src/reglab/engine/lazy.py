"""torch, imported on first use, so that the declarations that check an experiment file (the
techniques' settings, the optimizers', the architecture) import without it: ``reglab validate``
answers in a fraction of a second instead of waiting for torch (a second or two, far more on a
busy machine).

A module that is read by ``validate`` writes ``from .lazy import torch`` (``from ..lazy import
torch, no_grad`` in a technique) and uses ``torch.<name>`` only inside functions, never at import
time (no ``@torch.no_grad()`` on a method: :func:`no_grad` instead). The first attribute read
imports torch; each name is then kept on the stand-in, so later reads cost what a module's do.
``tests/test_cli_startup.py`` checks the fact: validating an example imports no torch.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any


class _Deferred:
    """A stand-in for a module, imported at the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy and pickle probe for these on a bare instance
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._name), attr)
        setattr(self, attr, value)
        return value

    def __reduce__(self):  # Ray ships functions by value, with the module globals they read
        return _Deferred, (self._name,)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn.functional as F
else:
    torch = _Deferred("torch")
    F = _Deferred("torch.nn.functional")


def no_grad(fn: Callable) -> Callable:
    """``@torch.no_grad()`` without importing torch when the method is defined."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper
