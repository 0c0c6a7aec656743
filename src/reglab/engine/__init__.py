"""The population engine: K small networks trained at once, parameters stacked on a member axis.

The techniques live one module each in :mod:`reglab.engine.techniques` and are found there by
the registry (:mod:`reglab.engine.registry`); every registered technique class is importable
from here by its class name (``from reglab.engine import Dropout``).
"""

from . import techniques
from .architecture import Architecture
from .members import Member
from .optimizers import SGD, Adam
from .pieces import STOP_REASONS, Piece
from .registry import register
from .technique import KerasCounterpart, Technique, setting

# The names that train need torch, imported with them on first use: the declarations above check
# an experiment file without it (``reglab validate``; see :mod:`reglab.engine.lazy`).
_TRAINING = {"init_params": "model", "TrainResult": "results", "Trainer": "trainer", "train": "trainer"}

__all__ = [
    "SGD",
    "STOP_REASONS",
    "Adam",
    "Architecture",
    "KerasCounterpart",
    "Member",
    "Piece",
    "Technique",
    "TrainResult",
    "Trainer",
    "init_params",
    "register",
    "setting",
    "train",
]


def __getattr__(name: str):
    if name in _TRAINING:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_TRAINING[name]}"), name)
    return getattr(techniques, name)


def __dir__():
    return sorted({*globals(), *dir(techniques)})
