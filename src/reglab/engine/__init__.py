"""The population engine: K small networks trained at once, parameters stacked on a member axis."""

from .dropout import Dropout
from .early_stopping import EarlyStopping
from .members import Member
from .model import Architecture, init_params
from .optimizers import SGD, Adam
from .penalties import L1, L2
from .pieces import STOP_REASONS, Piece, Technique
from .results import TrainResult
from .trainer import train

__all__ = [
    "SGD",
    "STOP_REASONS",
    "Adam",
    "Architecture",
    "Dropout",
    "EarlyStopping",
    "L1",
    "L2",
    "Member",
    "Piece",
    "Technique",
    "TrainResult",
    "init_params",
    "train",
]
