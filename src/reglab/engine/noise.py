"""Gaussian noise on the inputs and hidden activations, at training time only.

- :class:`GaussianNoise`: Keras's ``layers.GaussianNoise(stddev)``: ``x + N(0, stddev)``, on the
  hidden layers' activations (``stddev``) and/or on the inputs (``input_stddev``).
- :class:`GaussianDropout`: Keras's ``layers.GaussianDropout(rate)`` on the hidden layers:
  ``h * N(1, sqrt(rate / (1 - rate)))``.

Like Keras's layers, both are the identity at inference. A member's noise in layer l at (epoch,
step) is drawn from the key ``(seed, noise kind, epoch, step, layer)``, so it does not depend on
which members share the population. Where several act on one layer the order is fixed by name:
dropout, then Gaussian dropout, then Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import checks, rng
from .model import Architecture
from .pieces import Piece, StepContext, Technique, active_rows, member_column, on_rows

_GAUSSIAN_NOISE_STREAM = 2
_GAUSSIAN_DROPOUT_STREAM = 3


def _draw(ctx: StepContext, stream: int, layer: int, h: torch.Tensor, rows) -> torch.Tensor:
    keys = rng.derive_keys(ctx.seeds[rows], rng.STREAM_NOISE, stream, ctx.epoch, ctx.step, layer + 1)
    return rng.normal(keys, tuple(h.shape[1:]))


@dataclass(frozen=True)
class GaussianNoise(Technique):
    """``stddev``: additive noise on hidden activations (one number, or one per hidden layer);
    ``input_stddev``: additive noise on the inputs. Both >= 0."""

    stddev: float | tuple[float, ...] = 0.1
    input_stddev: float = 0.0
    name = "gaussian_noise"

    def __post_init__(self) -> None:
        # Messages name the experiment-file keys: gaussian_noise (hidden layers) and input_noise.
        checks.each(self, "stddev", lambda n, v: checks.non_negative(n.replace("stddev", "gaussian_noise"), v))
        checks.non_negative("input_noise", self.input_stddev)

    def stddevs(self, arch: Architecture) -> tuple[float, ...]:
        """(input, hidden 1, ..., hidden n)."""
        hidden = checks.per_layer("gaussian_noise", self.stddev, len(arch.hidden), checks.non_negative)
        return (float(self.input_stddev), *hidden)

    def validate(self, arch: Architecture) -> None:
        self.stddevs(arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.stddevs(arch) if s else (0.0,) * (len(arch.hidden) + 1) for s in settings]
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
            return h + _draw(ctx, _GAUSSIAN_NOISE_STREAM, layer, h, rows) * self.stddevs[rows, layer + 1].view(-1, 1, 1)

        return on_rows(h, self.rows[layer], add_noise)

    def select(self, index: torch.Tensor) -> GaussianNoisePiece:
        return GaussianNoisePiece(self.stddevs[index])


@dataclass(frozen=True)
class GaussianDropout(Technique):
    """``rate``: one rate for every hidden layer, or one per hidden layer, each in [0, 1)."""

    rate: float | tuple[float, ...] = 0.5
    name = "gaussian_dropout"

    def __post_init__(self) -> None:
        checks.each(self, "rate", lambda n, v: checks.rate("gaussian_dropout" + n.removeprefix("rate"), v))

    def rates(self, arch: Architecture) -> tuple[float, ...]:
        return checks.per_layer("gaussian_dropout", self.rate, len(arch.hidden), checks.rate)

    def validate(self, arch: Architecture) -> None:
        self.rates(arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.rates(arch) if s else (0.0,) * len(arch.hidden) for s in settings]
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
            return h * (1.0 + _draw(ctx, _GAUSSIAN_DROPOUT_STREAM, layer, h, rows) * self.stddevs[rows, layer].view(-1, 1, 1))

        return on_rows(h, self.rows[layer], multiply)

    def select(self, index: torch.Tensor) -> GaussianDropoutPiece:
        return GaussianDropoutPiece(self.stddevs[index])
