"""Label smoothing: the loss compares the network's output with softened targets.

Keras's ``BinaryCrossentropy(label_smoothing=s)`` uses ``y * (1 - s) + 0.5 * s``, and
``CategoricalCrossentropy(label_smoothing=s)`` ``y * (1 - s) + s / n_classes``, in training and
in evaluation alike (``loss`` and ``val_loss`` include it); metrics see the true labels. A model
can then no longer drive its logits to infinity on the training data: a classic regularizer of
overconfident classifiers. Classification only. Members without it keep their targets exactly
(``y * 1 + 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..lazy import torch
from ..pieces import Piece, member_column, member_view
from ..registry import register
from ..technique import KerasCounterpart, Technique, setting


@register
@dataclass(frozen=True)
class LabelSmoothing(Technique):
    """``label_smoothing``: the share of each target moved to the uniform distribution, in [0, 1]."""

    label_smoothing: float = setting(0.1, checks.number_rule(lo=0.0, hi=1.0), "share of each target moved to the uniform distribution, in the loss", off=0.0, search=(0.05, 0.1))
    name = "label_smoothing"
    tasks = ("binary", "multiclass")
    keras = KerasCounterpart("loss", ("BinaryCrossentropy", "CategoricalCrossentropy"), {"label_smoothing": "label_smoothing"})
    reference = "Szegedy et al. 2016 (Inception v3); keras.losses.BinaryCrossentropy(label_smoothing)"
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        n = 2 if arch.task == "binary" else arch.n_outputs
        program.smooth_keep[k] = 1.0 - self.label_smoothing
        program.smooth_add[k] = self.label_smoothing / n

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        n = 2 if arch.task == "binary" else arch.n_outputs  # Keras: 0.5 * s for binary, s / n_classes
        shares = [s.label_smoothing if s else 0.0 for s in settings]
        # The factors in float64 and then float32, as Keras's Python-float arithmetic on float32 tensors.
        return LabelSmoothingPiece(member_column([1.0 - s for s in shares], device), member_column([s / n for s in shares], device))


class LabelSmoothingPiece(Piece):
    def __init__(self, keep: torch.Tensor, add: torch.Tensor):
        self.keep, self.add = keep, add  # (K,) each

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return y * member_view(self.keep, y) + member_view(self.add, y)

    def select(self, index: torch.Tensor) -> LabelSmoothingPiece:
        return LabelSmoothingPiece(self.keep[index], self.add[index])
