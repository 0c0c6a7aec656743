"""Gaussian dropout (Keras's ``layers.GaussianDropout(rate)``) on the hidden layers:
``h * N(1, sqrt(rate / (1 - rate)))`` at training time, the identity at inference."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import checks
from ..lazy import torch
from ..pieces import Piece, StepContext, active_rows, member_column, on_rows
from ..registry import register
from ..technique import KerasCounterpart, Technique, setting
from .gaussian_noise import draw


@register
@dataclass(frozen=True)
class GaussianDropout(Technique):
    """``rate``: one rate for every hidden layer, or one per hidden layer, each in [0, 1)."""

    rate: float | tuple[float, ...] = setting(0.5, checks.RATE, "multiplies hidden activations by N(1, sqrt(rate / (1 - rate))) at training time", off=0.0, per_layer="hidden", search=(0.1, 0.3))
    name = "gaussian_dropout"
    keras = KerasCounterpart("layer", ("GaussianDropout",), {"rate": "rate"})
    reference = "Srivastava et al. 2014, section 10; keras.layers.GaussianDropout"
    mc_sample = True
    rng_stream = 3
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        program.streams[1] = self.rng_stream  # the multiplicative noise's key
        program.gd_std[k] = [math.sqrt(r / (1.0 - r)) for r in self.per_layer("rate", arch)]  # Keras: math.sqrt in float64

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.per_layer("rate", arch) if s else cls.neutral_per_layer("rate", arch) for s in settings]
        stddevs = [[math.sqrt(r / (1.0 - r)) for r in row] for row in rows]  # Keras: math.sqrt in float64
        return GaussianDropoutPiece(member_column(stddevs, device))


class GaussianDropoutPiece(Piece):
    def __init__(self, stddevs: torch.Tensor):
        self.stddevs = stddevs  # (K, n_hidden)
        self.rows = {layer: active_rows(stddevs[:, layer]) for layer in torch.nonzero(stddevs.amax(0) > 0).flatten().tolist()}

    def hidden(self, h: torch.Tensor, layer: int, ctx: StepContext) -> torch.Tensor:
        if layer not in self.rows:
            return h

        def multiply(h, rows):
            # N(1, s) as Keras draws it (mean + stddev * z).
            return h * (1.0 + draw(ctx, GaussianDropout.rng_stream, layer, h, rows) * self.stddevs[rows, layer].view(-1, 1, 1))

        return on_rows(h, self.rows[layer], multiply)

    def select(self, index: torch.Tensor) -> GaussianDropoutPiece:
        return GaussianDropoutPiece(self.stddevs[index])
