"""reglab: see and measure what regularization does to a neural network.

>>> import reglab
>>> arch = reglab.Architecture(n_inputs=2, hidden=(16,), task="binary")
>>> members = [reglab.Member(seed=s, learning_rate=0.01, techniques=[reglab.Dropout(0.2)]) for s in range(4)]
>>> result = reglab.train(arch, members, [[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0], epochs=3)
>>> result.history["loss"].shape
(4, 3)
"""

from importlib.metadata import PackageNotFoundError, version

from .engine import (
    L1,
    L2,
    SGD,
    Adam,
    Architecture,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    MaxNorm,
    Member,
    Prechelt,
    ProximalL1,
    TrainResult,
    WeightDecay,
    train,
)

try:
    __version__ = version("reglab")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = [
    "L1",
    "L2",
    "SGD",
    "Adam",
    "Architecture",
    "Dropout",
    "EarlyStopping",
    "GaussianDropout",
    "GaussianNoise",
    "MaxNorm",
    "Member",
    "Prechelt",
    "ProximalL1",
    "TrainResult",
    "WeightDecay",
    "__version__",
    "train",
]
