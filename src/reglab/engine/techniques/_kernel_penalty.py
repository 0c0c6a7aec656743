"""What L1 and L2 share: a penalty on the kernels, added to the loss, with its gradient.

Keras's formulas (``l1 * sum(|w|)``, ``l2 * sum(w**2)``): no factor of one half, kernels only
(biases are never penalised), added to the loss, so they show up in ``loss`` and ``val_loss``
exactly as in Keras. A single coefficient applies to every hidden layer, as
``kernel_regularizer=l1(...)`` on each hidden ``Dense`` does in the origin notebooks; a list gives
one coefficient per Dense layer, the output layer included.
"""

from __future__ import annotations

from .. import checks
from ..architecture import layers
from ..lazy import no_grad, torch
from ..losses import member_sum
from ..pieces import Piece, active_rows, member_column, member_view
from ..technique import Technique, setting
from ._weight_stats import weight_columns


def coefficient(default: float, doc: str, search: tuple = ()):
    """The one setting of a kernel penalty: a coefficient per Dense layer."""
    return setting(default, checks.NON_NEGATIVE, doc, off=0.0, per_layer="dense", search=search)


class KernelPenalty(Technique):
    """L1 or L2: the coefficient's field is named after the technique, as in Keras."""

    report = frozenset({"weights"})
    summary = (weight_columns,)
    compiled = "steps"

    def compile(self, program, k, arch) -> None:
        getattr(program, self.name)[k] = self.per_layer(self.name, arch)  # program.l1 or program.l2

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        rows = [s.per_layer(cls.name, arch) if s else cls.neutral_per_layer(cls.name, arch) for s in settings]
        return KernelPenaltyPiece(member_column(rows, device), cls.name)


class KernelPenaltyPiece(Piece):
    """``sum over layers of coef[:, l] * reduce(W_l)`` per member, and its gradient.

    Only the members that have a layer's penalty compute it: the others get exactly nothing (no
    term, no gradient), even where their weights are no longer finite (0 * inf would be NaN,
    which it would not be alone). Each member's sum is reduced in an order that does not depend
    on how many members are computed with it (:func:`member_sum`), so the subset changes no bit.
    """

    def __init__(self, coefficients: torch.Tensor, kind: str):
        self.coefficients = coefficients  # (K, n_layers)
        self.kind = kind  # "l1" or "l2"
        self.layers = torch.nonzero(coefficients.amax(0) > 0).flatten().tolist()
        # Per layer: the members that have its penalty, or None when every member does.
        self.rows = {layer: active_rows(coefficients[:, layer]) for layer in self.layers}
        self._scratch: dict[int, torch.Tensor] = {}

    def _buffer(self, layer: int, w: torch.Tensor) -> torch.Tensor:
        """A buffer per layer that lives across steps: on a CPU, allocating a fresh (K, 128, 128)
        tensor every step costs more than the arithmetic."""
        buf = self._scratch.get(layer)
        if buf is None or buf.shape != w.shape or buf.device != w.device or buf.dtype != w.dtype:
            buf = self._scratch[layer] = torch.empty_like(w, requires_grad=False)
        return buf

    def _members(self, layer: int, w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``w[rows]``, copied into a buffer of its own (index_select is several times faster than
        indexing on a CPU)."""
        key = -1 - layer
        buf = self._scratch.get(key)
        if buf is None or buf.shape[0] != len(rows) or buf.shape[1:] != w.shape[1:] or buf.device != w.device or buf.dtype != w.dtype:
            buf = self._scratch[key] = torch.empty((len(rows), *w.shape[1:]), dtype=w.dtype, device=w.device)
        return torch.index_select(w, 0, rows, out=buf)

    def _reduce(self, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return torch.abs(w, out=out) if self.kind == "l1" else torch.mul(w, w, out=out)

    def _derivative(self, w: torch.Tensor, coefficient: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.kind == "l1":
            return torch.sign(w, out=out).mul_(coefficient)  # d|w|/dw, 0 at 0 as torch.abs's gradient
        return torch.mul(w, 2.0 * coefficient, out=out)

    @no_grad
    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        total = None
        kernels = [layer.kernel for layer in layers(params)]
        for layer in self.layers:
            w, rows = kernels[layer].detach(), self.rows[layer]
            own = w if rows is None else self._members(layer, w, rows)
            coefficient = self.coefficients[:, layer] if rows is None else self.coefficients[rows, layer]
            term = coefficient * member_sum(self._reduce(own, self._buffer(layer, own)).view(own.shape[0], -1))
            if rows is not None:
                term = torch.zeros(w.shape[0], device=w.device).index_copy_(0, rows, term)
            total = term if total is None else total + term
        return total

    @no_grad
    def add_penalty_gradient(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        kernels, kernel_grads = [layer.kernel for layer in layers(params)], [layer.kernel for layer in layers(grads)]
        for layer in self.layers:
            w, rows, grad = kernels[layer].detach(), self.rows[layer], kernel_grads[layer]
            if rows is None:
                grad.add_(self._derivative(w, member_view(self.coefficients[:, layer], w), self._buffer(layer, w)))
            else:
                own = self._members(layer, w, rows)
                derivative = self._derivative(own, member_view(self.coefficients[rows, layer], own), self._buffer(layer, own))
                grad.index_add_(0, rows, derivative)

    def select(self, index: torch.Tensor) -> KernelPenaltyPiece:
        return KernelPenaltyPiece(self.coefficients[index], self.kind)
