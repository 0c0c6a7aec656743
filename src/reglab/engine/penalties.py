"""L1 and L2 kernel penalties with Keras's formulas: ``l1 * sum(|w|)`` and ``l2 * sum(w**2)``.

No factor of one half, kernels only (biases are never penalised), added to the loss, so they show
up in ``loss`` and ``val_loss`` exactly as in Keras. A single coefficient applies to every hidden
layer, as ``kernel_regularizer=l1(...)`` on each hidden ``Dense`` does in the origin notebooks; a
list gives one coefficient per Dense layer, the output layer included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checks
from .losses import member_sum
from .model import Architecture
from .pieces import Piece, Technique, member_column, member_view


def kernel_coefficients(name: str, value, arch: Architecture) -> tuple[float, ...]:
    """One coefficient per Dense layer: a single number covers the hidden layers (the output gets
    0), a list gives every layer its own, the output's included."""
    if isinstance(value, (list, tuple)):
        return checks.per_layer(name, value, arch.n_layers, checks.non_negative)
    return (*checks.per_layer(name, value, len(arch.hidden), checks.non_negative), 0.0)


class KernelPenaltyPiece(Piece):
    """``sum over layers of coef[:, l] * reduce(W_l)`` per member, and its gradient."""

    def __init__(self, coefficients: torch.Tensor, kind: str):
        self.coefficients = coefficients  # (K, n_layers)
        self.kind = kind  # "l1" or "l2"
        self.layers = torch.nonzero(coefficients.amax(0) > 0).flatten().tolist()
        # Layers where some member has no penalty: its gradient term is zeroed there (see below).
        self.partial = set(torch.nonzero((coefficients == 0).any(0)).flatten().tolist())
        self._scratch: dict[int, torch.Tensor] = {}

    def _buffer(self, layer: int, w: torch.Tensor) -> torch.Tensor:
        buf = self._scratch.get(layer)
        if buf is None or buf.shape != w.shape or buf.device != w.device:
            buf = self._scratch[layer] = torch.empty_like(w, requires_grad=False)
        return buf

    def _coefficient(self, layer: int, w: torch.Tensor) -> torch.Tensor:
        return member_view(self.coefficients[:, layer], w)

    @torch.no_grad()
    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        total = None
        for layer in self.layers:
            w = params[2 * layer].detach()
            buf = self._buffer(layer, w)
            if self.kind == "l1":
                torch.abs(w, out=buf)
            else:
                torch.mul(w, w, out=buf)
            coefficient = self.coefficients[:, layer]
            # A member without this penalty gets exactly 0, even where its weights are no longer
            # finite (0 * inf would be NaN, which it would not be alone).
            term = torch.where(coefficient > 0, coefficient * member_sum(buf.view(w.shape[0], -1)), 0.0)
            total = term if total is None else total + term
        return total

    @torch.no_grad()
    def add_penalty_gradient(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for layer in self.layers:
            w = params[2 * layer].detach()
            buf = self._buffer(layer, w)
            coefficient = self._coefficient(layer, w)
            if self.kind == "l1":
                torch.sign(w, out=buf)  # d|w|/dw, 0 at 0 as torch.abs's gradient
                buf.mul_(coefficient)
            else:
                torch.mul(w, 2.0 * coefficient, out=buf)
            if layer in self.partial:  # 0 * inf is NaN: see penalty()
                buf.masked_fill_((coefficient == 0).expand_as(buf), 0.0)
            grads[2 * layer].add_(buf)

    def select(self, index: torch.Tensor) -> KernelPenaltyPiece:
        return KernelPenaltyPiece(self.coefficients[index], self.kind)


class _KernelPenalty(Technique):
    """What L1 and L2 share; the coefficient's field is named after the technique, as in Keras."""

    @property
    def coefficient(self):
        return getattr(self, self.name)

    def __post_init__(self) -> None:
        checks.each(self, self.name, checks.non_negative)

    def validate(self, arch: Architecture) -> None:
        kernel_coefficients(self.name, self.coefficient, arch)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [kernel_coefficients(cls.name, s.coefficient, arch) if s else (0.0,) * arch.n_layers for s in settings]
        return KernelPenaltyPiece(member_column(rows, device), cls.name)


@dataclass(frozen=True)
class L1(_KernelPenalty):
    """Keras ``regularizers.L1(l1)`` on the kernels: adds ``l1 * sum(|w|)`` to the loss."""

    l1: float | tuple[float, ...] = 0.01
    name = "l1"


@dataclass(frozen=True)
class L2(_KernelPenalty):
    """Keras ``regularizers.L2(l2)`` on the kernels: adds ``l2 * sum(w**2)`` to the loss (no 1/2)."""

    l2: float | tuple[float, ...] = 0.01
    name = "l2"
