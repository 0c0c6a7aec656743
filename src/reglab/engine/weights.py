"""Techniques that act on the weights directly, not through the loss.

- :class:`WeightDecay`: decoupled weight decay (Loshchilov & Hutter's AdamW), applied as Keras 3's
  optimizers apply ``weight_decay``: before the update, ``w *= 1 - weight_decay * learning_rate``
  (computed in float32 as Keras's torch backend does). Kernels only unless ``biases=True`` (Keras
  decays every variable not excluded with ``exclude_from_weight_decay``).
- :class:`MaxNorm`: Keras's ``constraints.MaxNorm(max_value, axis=0)`` on hidden kernels, after
  every update: ``w * clip(norm, 0, max_value) / (1e-7 + norm)`` with the norm of each unit's
  incoming weights. Like Keras, units under the bound are also multiplied by ``norm / (1e-7 + norm)``.
- :class:`ProximalL1`: after every update, soft-thresholding ``sign(w) * max(|w| - lr * l1, 0)``:
  the proximal step of the L1 penalty, which sets weights to exactly zero (the subgradient L1 of
  Keras only makes them small).

Members without the technique are left exactly as they are (``torch.where`` or a factor of 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import checks
from .model import Architecture
from .penalties import kernel_coefficients
from .pieces import Piece, StepContext, Technique, member_column, member_view

KERAS_EPSILON = 1e-7


@dataclass(frozen=True)
class WeightDecay(Technique):
    """``weight_decay``: the decay rate per unit learning rate, >= 0; ``biases``: decay biases too."""

    weight_decay: float = 0.004
    biases: bool = False
    name = "weight_decay"

    def __post_init__(self) -> None:
        checks.number("weight_decay", self.weight_decay, lo=0.0)
        if not isinstance(self.biases, bool):
            checks.fail("weight_decay_biases", self.biases, "true or false")

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
        for i, p in enumerate(params):
            p.mul_(member_view(factor if i % 2 == 0 else bias_factor, p))

    def select(self, index: torch.Tensor) -> WeightDecayPiece:
        return WeightDecayPiece(self.rates[index], self.biases[index])


@dataclass(frozen=True)
class MaxNorm(Technique):
    """``max_norm``: the bound on each hidden unit's incoming weight norm, one number or one per hidden layer."""

    max_norm: float | tuple[float, ...] = 2.0
    name = "max_norm"

    def __post_init__(self) -> None:
        checks.each(self, "max_norm", checks.positive)

    def bounds(self, arch: Architecture) -> tuple[float, ...]:
        return checks.per_layer("max_norm", self.max_norm, len(arch.hidden), checks.positive)

    def validate(self, arch: Architecture) -> None:
        self.bounds(arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.bounds(arch) if s else (math.inf,) * len(arch.hidden) for s in settings]
        return MaxNormPiece(member_column(rows, device))


class MaxNormPiece(Piece):
    def __init__(self, bounds: torch.Tensor):
        self.bounds = bounds  # (K, n_hidden); inf: no constraint
        self.active = torch.isfinite(bounds)
        self.layers = torch.nonzero(self.active.any(0)).flatten().tolist()

    def after_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        for layer in self.layers:
            w = params[2 * layer]
            bound = member_view(torch.where(self.active[:, layer], self.bounds[:, layer], 0.0), w)
            norms = torch.sqrt(torch.sum(torch.square(w), dim=1, keepdim=True))  # over fan-in: Keras's axis=0
            desired = torch.minimum(norms, bound)  # Keras: clip(norms, 0, max_value); norms are >= 0
            constrained = w * (desired / (KERAS_EPSILON + norms))
            w.copy_(torch.where(member_view(self.active[:, layer], w), constrained, w))

    def select(self, index: torch.Tensor) -> MaxNormPiece:
        return MaxNormPiece(self.bounds[index])


@dataclass(frozen=True)
class ProximalL1(Technique):
    """``proximal_l1``: the L1 strength; one number for every hidden kernel (as ``l1``), or a list
    with one per Dense layer, the output layer included."""

    proximal_l1: float | tuple[float, ...] = 0.001
    name = "proximal_l1"

    def __post_init__(self) -> None:
        checks.each(self, "proximal_l1", checks.non_negative)

    def strengths(self, arch: Architecture) -> tuple[float, ...]:
        return kernel_coefficients("proximal_l1", self.proximal_l1, arch)

    def validate(self, arch: Architecture) -> None:
        self.strengths(arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.strengths(arch) if s else (0.0,) * arch.n_layers for s in settings]
        return ProximalL1Piece(member_column(rows, device))


class ProximalL1Piece(Piece):
    def __init__(self, strengths: torch.Tensor):
        self.strengths = strengths  # (K, n_layers)
        self.layers = torch.nonzero(strengths.amax(0) > 0).flatten().tolist()

    def after_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        for layer in self.layers:
            w = params[2 * layer]
            threshold = member_view(ctx.learning_rate * self.strengths[:, layer], w)
            shrunk = torch.sign(w) * torch.clamp_min(torch.abs(w) - threshold, 0.0)
            w.copy_(torch.where(threshold > 0, shrunk, w))

    def select(self, index: torch.Tensor) -> ProximalL1Piece:
        return ProximalL1Piece(self.strengths[index])
