"""The population engine: K small networks trained at once, parameters stacked on a member axis.

The techniques live one module each in :mod:`reglab.engine.techniques` and are found there by
the registry (:mod:`reglab.engine.registry`); every registered technique class is importable
from here by its class name (``from reglab.engine import Dropout``).
"""

from . import techniques
from .members import Member
from .model import Architecture, init_params
from .optimizers import SGD, Adam
from .pieces import STOP_REASONS, Piece
from .registry import register
from .results import TrainResult
from .technique import KerasCounterpart, Technique, setting
from .trainer import Trainer, train

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
    return getattr(techniques, name)


def __dir__():
    return sorted({*globals(), *dir(techniques)})
