"""A member: one network's own settings within a population."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import checks
from .technique import Technique

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Member:
    """One network of a population: its seed, its learning rate and its techniques.

    Two members with the same seed start from the same weights and see the same row order, which
    is what makes paired comparisons between techniques meaningful.

    >>> from reglab.engine import Dropout, EarlyStopping
    >>> m = Member(seed=3, learning_rate=0.01, techniques=[Dropout(0.5), EarlyStopping(patience=20)])
    >>> m.techniques[0]
    Dropout(rate=0.5)
    """

    seed: int
    learning_rate: float = 0.001
    techniques: tuple[Technique, ...] = field(default=())
    label: str = ""

    def __post_init__(self) -> None:
        checks.integer("seed", self.seed, lo=0, hi=MAX_SEED)
        checks.number("learning_rate", self.learning_rate, lo=0.0, lo_open=True)
        if not isinstance(self.techniques, (tuple, list)) or not all(isinstance(t, Technique) for t in self.techniques):
            checks.fail("techniques", self.techniques, "a list of techniques such as Dropout(0.5) or L2(1e-4)")
        object.__setattr__(self, "techniques", tuple(self.techniques))
