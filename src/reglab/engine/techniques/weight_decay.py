"""Decoupled weight decay (Loshchilov & Hutter's AdamW), applied as Keras 3's optimizers apply
``weight_decay``: before the update, ``w *= 1 - weight_decay * learning_rate`` (computed in
float32 as Keras's torch backend does). Kernels only unless ``biases=True`` (Keras decays every
variable not excluded with ``exclude_from_weight_decay``). Unlike an L2 penalty it does not pass
through Adam's scaling, so every weight shrinks at the same relative rate.

Members without it are left exactly as they are (a factor of 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..lazy import torch
from ..pieces import Piece, StepContext, member_column, member_view
from ..architecture import layers
from ..registry import register
from ..technique import KerasCounterpart, Technique, setting
from ._weight_stats import weight_columns


@register
@dataclass(frozen=True)
class WeightDecay(Technique):
    """``weight_decay``: the decay rate per unit learning rate, >= 0; ``biases``: decay biases too."""

    weight_decay: float = setting(0.004, checks.NON_NEGATIVE, "decoupled decay per unit learning rate: w *= 1 - weight_decay * lr before each update", off=0.0, search=(0.004, 0.04))
    biases: bool = setting(False, checks.BOOL, "decay the biases too (Keras decays every variable)", key="weight_decay_biases")
    name = "weight_decay"
    keras = KerasCounterpart("optimizer", ("weight_decay",), {"weight_decay": "weight_decay"}, fixed={"biases": True}, note="biases excluded with exclude_from_weight_decay")
    reference = "Loshchilov & Hutter 2019 (AdamW); the weight_decay argument of Keras 3's optimizers"
    report = frozenset({"weights"})
    summary = (weight_columns,)
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        program.decay[k] = self.weight_decay
        program.decay_bias[k] = self.biases

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rates = member_column([s.weight_decay if s else 0.0 for s in settings], device)
        biases = member_column([bool(s and s.biases) for s in settings], device, torch.bool)
        return WeightDecayPiece(rates, biases)


class WeightDecayPiece(Piece):
    def __init__(self, rates: torch.Tensor, biases: torch.Tensor):
        self.rates, self.biases = rates, biases

    def before_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        factor = 1 - self.rates * ctx.learning_rate  # float32, as Keras: 1 - wd * lr on float32 tensors
        bias_factor = torch.where(self.biases, factor, torch.ones_like(factor))
        for layer in layers(params):
            layer.kernel.mul_(member_view(factor, layer.kernel))
            layer.bias.mul_(member_view(bias_factor, layer.bias))

    def select(self, index: torch.Tensor) -> WeightDecayPiece:
        return WeightDecayPiece(self.rates[index], self.biases[index])
