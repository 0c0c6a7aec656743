"""The shape shared by every member of a population, without torch: experiment files are
checked against it before anything trains (see :mod:`reglab.engine.lazy`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from . import checks

if TYPE_CHECKING:  # pragma: no cover
    import torch

# The hidden layers' activations, as Keras names them; :data:`reglab.engine.model.ACTIVATIONS`
# computes them.
ACTIVATION_NAMES = ("relu", "tanh", "sigmoid", "elu", "gelu", "linear")

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Architecture:
    """The shape shared by every member of a population.

    ``task`` picks the head: ``binary`` (one sigmoid unit on a logit), ``multiclass`` (softmax over
    ``n_outputs`` classes) or ``regression`` (``n_outputs`` linear units).
    """

    n_inputs: int
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    task: str = "binary"
    n_outputs: int = 1

    def __post_init__(self) -> None:
        checks.integer("n_inputs", self.n_inputs, lo=1)
        if not isinstance(self.hidden, (tuple, list)) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in self.hidden
        ):
            checks.fail("hidden", self.hidden, "a list of positive layer widths, e.g. [128, 128]")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        checks.choice("activation", self.activation, ACTIVATION_NAMES)
        checks.choice("task", self.task, TASKS)
        checks.integer("n_outputs", self.n_outputs, lo=1)
        if self.task == "binary" and self.n_outputs != 1:
            checks.fail("n_outputs", self.n_outputs, "1 for a binary task (one sigmoid unit)")
        if self.task == "multiclass" and self.n_outputs < 2:
            checks.fail("n_outputs", self.n_outputs, "the number of classes (>= 2) for a multiclass task")

    @property
    def widths(self) -> tuple[int, ...]:
        """Units of every layer from the input to the output."""
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def n_params(self) -> int:
        """Weights and biases of one member."""
        widths = self.widths
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

    @property
    def n_layers(self) -> int:
        """Number of Dense layers, the output layer included."""
        return len(self.hidden) + 1


T = TypeVar("T")


class Layer(NamedTuple, Generic[T]):
    """One Dense layer's parameters, by name: its kernel ``(K, fan_in, units)`` and bias ``(K, units)``."""

    kernel: T
    bias: T


def layers(params: list[T]) -> list[Layer[T]]:
    """The flat parameter list ``[W0, b0, W1, b1, ...]`` (what the engine stacks and the optimizer
    updates) as one :class:`Layer` per Dense layer, input side first: the same tensors, no copy.
    Anything that means a layer's kernel or bias asks for it by name here, never by position."""
    return [Layer(params[i], params[i + 1]) for i in range(0, len(params), 2)]
