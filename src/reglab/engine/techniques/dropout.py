"""Dropout (Keras ``layers.Dropout`` semantics) on the hidden layers.

At training time each hidden unit is kept with probability ``1 - rate`` (the rate rounded to a
multiple of 2**-16) and kept units are divided by ``1 - rate`` (inverted dropout, as Keras does),
so nothing changes at inference. The mask of member k
in layer l at (epoch, step) is drawn from the key ``(seed_k, epoch, step, layer)``: it is the same
whichever members share the population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import checks, rng
from ..lazy import torch
from ..pieces import Piece, StepContext, active_rows, member_column, on_rows
from ..registry import register
from ..technique import KerasCounterpart, Technique, setting


@register
@dataclass(frozen=True)
class Dropout(Technique):
    """``rate``: one rate for every hidden layer, or a list with one rate per hidden layer, each in [0, 1)."""

    rate: float | tuple[float, ...] = setting(0.5, checks.RATE, "share of hidden units dropped at training time", off=0.0, per_layer="hidden", search=(0.1, 0.3, 0.5))
    name = "dropout"
    keras = KerasCounterpart("layer", ("Dropout",), {"rate": "rate"})
    reference = "Srivastava et al. 2014; keras.layers.Dropout"
    mc_sample = True
    rng_stream = 1
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        program.streams[0] = self.rng_stream  # the mask's key
        rates = self.per_layer("rate", arch)
        program.drop_threshold[k] = [round(float(np.float32(r)) * 65536) for r in rates]  # as rng.keep_mask rounds it
        program.drop_keep[k] = [1 - np.float32(r) for r in rates]  # float32, as the eager piece's 1.0 - rates

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.per_layer("rate", arch) if s is not None else cls.neutral_per_layer("rate", arch) for s in settings]
        return DropoutPiece(member_column(rows, device))


class DropoutPiece(Piece):
    def __init__(self, rates: torch.Tensor):
        self.rates = rates  # (K, n_hidden)
        self.keep = 1.0 - rates
        # Per layer, the members that drop anything (None: all of them); layers where nobody
        # does are skipped, and members with a zero rate (the identity) are left out.
        self.rows = {layer: active_rows(rates[:, layer]) for layer in torch.nonzero(rates.amax(0) > 0).flatten().tolist()}

    def hidden(self, h: torch.Tensor, layer: int, ctx: StepContext) -> torch.Tensor:
        if layer not in self.rows:
            return h

        def drop(h, rows):
            keys = ctx.noise_keys(Dropout.rng_stream, layer, rows)
            mask = rng.keep_mask(keys, tuple(h.shape[1:]), self.rates[rows, layer])
            # Keras: where(kept, x / keep, 0). Multiplying by the 0/1 mask first gives the same values.
            return (h * mask) / self.keep[rows, layer].view(-1, 1, 1)

        return on_rows(h, self.rows[layer], drop)

    def select(self, index: torch.Tensor) -> DropoutPiece:
        return DropoutPiece(self.rates[index])
