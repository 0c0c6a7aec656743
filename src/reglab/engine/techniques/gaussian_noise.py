"""Gaussian noise (Keras's ``layers.GaussianNoise(stddev)``): ``x + N(0, stddev)`` at training time
only, on the hidden layers' activations (``stddev``) and/or on the inputs (``input_stddev``).

A member's noise in layer l at (epoch, step) is drawn from the key ``(seed, noise kind, epoch,
step, layer)``, so it does not depend on which members share the population. Where several
techniques act on one layer the order is fixed by name: dropout, then Gaussian dropout, then
Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import checks, rng
from ..lazy import torch
from ..pieces import Piece, StepContext, active_rows, member_column, on_rows
from ..registry import register
from ..technique import KerasCounterpart, Technique, setting


def draw(ctx: StepContext, stream: int, layer: int, h: torch.Tensor, rows) -> torch.Tensor:
    """Standard normal noise shaped like ``h`` for the members at ``rows``, keyed by their seeds."""
    keys = ctx.noise_keys(stream, layer + 1, rows)
    return rng.normal(keys, tuple(h.shape[1:]))


@register
@dataclass(frozen=True)
class GaussianNoise(Technique):
    """``stddev``: additive noise on hidden activations (one number, or one per hidden layer);
    ``input_stddev``: additive noise on the inputs. Both >= 0."""

    stddev: float | tuple[float, ...] = setting(0.1, checks.NON_NEGATIVE, "stddev of noise added to hidden activations at training time", off=0.0, per_layer="hidden", search=(0.05, 0.2))
    input_stddev: float = setting(0.0, checks.NON_NEGATIVE, "stddev of noise added to the inputs at training time", key="input_noise")
    name = "gaussian_noise"
    keras = KerasCounterpart("layer", ("GaussianNoise",), {"stddev": "stddev"}, input_args={"stddev": "input_stddev"})
    reference = "Bishop 1995 (training with noise); keras.layers.GaussianNoise"
    rng_stream = 2
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        program.streams[2] = self.rng_stream  # the additive noise's key
        program.gn_std[k] = (float(self.input_stddev), *self.per_layer("stddev", arch))

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [(float(s.input_stddev), *s.per_layer("stddev", arch)) if s else (0.0,) * (len(arch.hidden) + 1) for s in settings]
        return GaussianNoisePiece(member_column(rows, device))


class GaussianNoisePiece(Piece):
    def __init__(self, stddevs: torch.Tensor):
        self.stddevs = stddevs  # (K, 1 + n_hidden): column 0 is the input
        # Per layer (-1: the input), the members with noise there (None: all of them).
        self.rows = {column - 1: active_rows(stddevs[:, column]) for column in torch.nonzero(stddevs.amax(0) > 0).flatten().tolist()}

    def hidden(self, h: torch.Tensor, layer: int, ctx: StepContext) -> torch.Tensor:
        if layer not in self.rows:
            return h

        def add_noise(h, rows):
            return h + draw(ctx, GaussianNoise.rng_stream, layer, h, rows) * self.stddevs[rows, layer + 1].view(-1, 1, 1)

        return on_rows(h, self.rows[layer], add_noise)

    def select(self, index: torch.Tensor) -> GaussianNoisePiece:
        return GaussianNoisePiece(self.stddevs[index])
