"""The population engine: K small networks trained at once, parameters stacked on a member axis."""

from .dropout import Dropout
from .early_stopping import EarlyStopping
from .members import Member
from .noise import GaussianDropout, GaussianNoise
from .model import Architecture, init_params
from .optimizers import SGD, Adam
from .penalties import L1, L2
from .prechelt import Prechelt
from .pieces import STOP_REASONS, Piece, Technique
from .results import TrainResult
from .trainer import Trainer, train
from .weights import MaxNorm, ProximalL1, WeightDecay

__all__ = [
    "SGD",
    "STOP_REASONS",
    "Adam",
    "Architecture",
    "Dropout",
    "EarlyStopping",
    "GaussianDropout",
    "GaussianNoise",
    "L1",
    "L2",
    "MaxNorm",
    "Member",
    "Piece",
    "Prechelt",
    "ProximalL1",
    "Technique",
    "TrainResult",
    "Trainer",
    "WeightDecay",
    "init_params",
    "train",
]
