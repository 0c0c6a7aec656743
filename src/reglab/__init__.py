"""reglab: see and measure what regularization does to a neural network.

>>> import reglab
>>> arch = reglab.Architecture(n_inputs=2, hidden=(16,), task="binary")
>>> members = [reglab.Member(seed=s, learning_rate=0.01, techniques=[reglab.Dropout(0.2)]) for s in range(4)]
>>> result = reglab.train(arch, members, [[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0], epochs=3)
>>> result.history["loss"].shape
(4, 3)

The names below are imported on first use (PEP 562), so that ``import reglab`` and
``reglab --version`` do not import torch; ``from reglab import train`` works as always.
"""

from __future__ import annotations

import importlib

__all__ = [
    "SGD",
    "Adam",
    "Architecture",
    "KerasCounterpart",
    "Member",
    "Technique",
    "TrainResult",
    "__version__",
    "register",
    "setting",
    "train",
    "tune",
]

# name -> the module that defines it. Every registered technique class (``reglab.Dropout``) comes
# from the engine as well, by its class name: the registry knows them, no list here does.
_LAZY = {name: ".engine" for name in __all__ if name not in ("__version__", "tune")} | {"tune": ".tuner"}
# Submodules reachable as attributes of the package (``reglab.engine.Dropout`` after ``import reglab``).
_SUBMODULES = frozenset(
    ("chunks", "cli", "commands", "data", "demo", "engine", "errors", "examples", "executors", "keras", "notebook", "plan", "pytorch", "report", "runner", "sklearn", "spec", "store", "testing", "tuner", "variants")
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reglab")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # the import binds it as an attribute
    elif name[:1].isupper() and not name.startswith("__"):
        try:  # a technique class
            value = getattr(importlib.import_module(".engine", __name__), name)
        except AttributeError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        return value  # not cached: a technique registered later under this name replaces it
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
