"""Proximal L1: after every update, soft-thresholding ``sign(w) * max(|w| - lr * l1, 0)``, the
proximal step of the L1 penalty, which sets weights to exactly zero (the subgradient L1 of Keras
only makes them small). Members without it are left exactly as they are (``torch.where``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import checks
from ..lazy import torch
from ..pieces import Piece, StepContext, member_column, member_view
from ..architecture import layers
from ..registry import register
from ..technique import Technique, setting
from ._weight_stats import weight_columns


@register
@dataclass(frozen=True)
class ProximalL1(Technique):
    """``proximal_l1``: the L1 strength; one number for every hidden kernel (as ``l1``), or a list
    with one per Dense layer, the output layer included."""

    proximal_l1: float | tuple[float, ...] = setting(0.001, checks.NON_NEGATIVE, "L1 strength of a soft-thresholding step after every update: exact zeros", off=0.0, per_layer="dense", search=(1e-4, 1e-3))
    name = "proximal_l1"
    reference = "proximal gradient (ISTA), Beck & Teboulle 2009; no Keras counterpart"
    report = frozenset({"weights"})
    summary = (weight_columns,)
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        program.prox[k] = self.per_layer("proximal_l1", arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.per_layer("proximal_l1", arch) if s else cls.neutral_per_layer("proximal_l1", arch) for s in settings]
        return ProximalL1Piece(member_column(rows, device))


class ProximalL1Piece(Piece):
    def __init__(self, strengths: torch.Tensor):
        self.strengths = strengths  # (K, n_layers)
        self.layers = torch.nonzero(strengths.amax(0) > 0).flatten().tolist()

    def after_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        kernels = [layer.kernel for layer in layers(params)]
        for layer in self.layers:
            w = kernels[layer]
            threshold = member_view(ctx.learning_rate * self.strengths[:, layer], w)
            shrunk = torch.sign(w) * torch.clamp_min(torch.abs(w) - threshold, 0.0)
            w.copy_(torch.where(threshold > 0, shrunk, w))

    def select(self, index: torch.Tensor) -> ProximalL1Piece:
        return ProximalL1Piece(self.strengths[index])
