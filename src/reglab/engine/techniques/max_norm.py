"""Max-norm: Keras's ``constraints.MaxNorm(max_value, axis=0)`` on hidden kernels, after every
update: ``w * clip(norm, 0, max_value) / (1e-7 + norm)`` with the norm of each unit's incoming
weights. Like Keras, units under the bound are also multiplied by ``norm / (1e-7 + norm)``.
Members without it are left exactly as they are (``torch.where``).
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

KERAS_EPSILON = 1e-7


@register
@dataclass(frozen=True)
class MaxNorm(Technique):
    """``max_norm``: the bound on each hidden unit's incoming weight norm, one number or one per
    hidden layer; 0 leaves a layer unbounded (Keras: a layer without ``kernel_constraint``)."""

    max_norm: float | tuple[float, ...] = setting(2.0, checks.NON_NEGATIVE, "bound on each hidden unit's incoming weight norm, enforced after every update (0: no bound)", off=0.0, per_layer="hidden", search=(1.0, 3.0))
    name = "max_norm"
    keras = KerasCounterpart("kernel_constraint", ("MaxNorm",), {"max_value": "max_norm"}, note="axis=0")
    reference = "Srivastava et al. 2014, section 5.1; keras.constraints.MaxNorm"
    report = frozenset({"weights"})
    summary = (weight_columns,)
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        program.max_norm[k] = self.per_layer("max_norm", arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.per_layer("max_norm", arch) if s else cls.neutral_per_layer("max_norm", arch) for s in settings]
        return MaxNormPiece(member_column(rows, device))


class MaxNormPiece(Piece):
    def __init__(self, bounds: torch.Tensor):
        self.bounds = bounds  # (K, n_hidden); 0: no constraint
        self.active = bounds > 0
        self.layers = torch.nonzero(self.active.any(0)).flatten().tolist()

    def after_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        kernels = [layer.kernel for layer in layers(params)]
        for layer in self.layers:
            w = kernels[layer]
            bound = member_view(torch.where(self.active[:, layer], self.bounds[:, layer], 0.0), w)
            norms = torch.sqrt(torch.sum(torch.square(w), dim=1, keepdim=True))  # over fan-in: Keras's axis=0
            desired = torch.minimum(norms, bound)  # Keras: clip(norms, 0, max_value); norms are >= 0
            constrained = w * (desired / (KERAS_EPSILON + norms))
            w.copy_(torch.where(member_view(self.active[:, layer], w), constrained, w))

    def select(self, index: torch.Tensor) -> MaxNormPiece:
        return MaxNormPiece(self.bounds[index])
