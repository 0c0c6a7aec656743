"""A population of multilayer perceptrons: every parameter has the member axis first.

Kernels are ``(K, fan_in, fan_out)`` and biases ``(K, fan_out)``; the population's parameters are
the flat list ``[W0, b0, W1, b1, ...]``. Initialisation follows Keras's Dense defaults
(Glorot-uniform kernels, zero biases), drawn from counter-based keys ``(seed, "init", layer)``.

>>> import torch
>>> arch = Architecture(n_inputs=2, hidden=(8, 8), task="binary")
>>> params = init_params(arch, torch.tensor([0, 1, 2]))
>>> [tuple(p.shape) for p in params]
[(3, 2, 8), (3, 8), (3, 8, 8), (3, 8), (3, 8, 1), (3, 1)]
>>> forward(arch, params, torch.zeros(3, 5, 2)).shape
torch.Size([3, 5, 1])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import layout, rng
from .architecture import ACTIVATION_NAMES, Architecture


def _elementwise(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda h: layout.elementwise(fn, h)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": _elementwise(torch.tanh),
    "sigmoid": _elementwise(torch.sigmoid),
    "elu": _elementwise(F.elu),
    # Keras 3's gelu defaults to the exact erf form (approximate=False), as torch's does.
    "gelu": _elementwise(F.gelu),
    "linear": lambda h: h,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES, "architecture.ACTIVATION_NAMES lists these, in this order"

def glorot_limit(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def init_params(arch: Architecture, seeds: torch.Tensor, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Glorot-uniform kernels in [-limit, limit) and zero biases, one set per seed."""
    seeds = seeds.to(device)
    params = []
    widths = arch.widths
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        keys = rng.derive_keys(seeds, rng.STREAM_INIT, layer)
        u = rng.uniform(keys, (fan_in, fan_out))
        limit = glorot_limit(fan_in, fan_out)
        params.append((u * 2.0 - 1.0) * limit)
        params.append(torch.zeros(len(seeds), fan_out, device=device))
    return params


HiddenHook = Callable[[torch.Tensor, int], torch.Tensor]


def forward(
    arch: Architecture,
    params: list[torch.Tensor],
    x: torch.Tensor,
    hidden_hook: HiddenHook | None = None,
    buffers: GradientBuffers | None = None,
) -> torch.Tensor:
    """Logits ``(K, N, n_outputs)`` for inputs ``x`` of shape ``(K, N, n_inputs)``.

    ``hidden_hook(h, layer)`` transforms the inputs (``layer == -1``) and each hidden layer's
    activations (dropout and other noise live there, at training time only).
    """
    act = ACTIVATIONS[arch.activation]
    h = x if hidden_hook is None else hidden_hook(x, -1)
    n = arch.n_layers
    for layer in range(n):
        h = dense(h, params[2 * layer], params[2 * layer + 1], buffers, layer)
        if layer < n - 1:
            h = act(h)
            if hidden_hook is not None:
                h = hidden_hook(h, layer)
    return h


def _bmm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Batched matmul whose result for a member depends only on that member's matrices.

    Both operands and the product are laid out as :mod:`reglab.engine.layout` requires (each
    member's matrix on a 64-byte boundary, plain strides): BLAS picks its code path by address.
    ``out`` (the trainer's gradient storage, say) must be laid out so; without it the product gets
    storage of its own. The result is a view in that layout. torch sends a batch of a single
    product down another kernel (plain gemm, or gemv for one output unit) whose rounding differs
    from the batched one, so a population of one is computed as a population of two (the member
    twice, a stride-0 batch: no copy).
    """
    a, b = layout.blas_operand(a), layout.blas_operand(b)
    K, m, n = a.shape[0], a.shape[1], b.shape[2]
    if K == 1:
        a, b = a.expand(2, m, a.shape[2]), b.expand(2, *b.shape[1:])
    if out is None or K == 1:
        out = layout.empty((a.shape[0], m, n), a.dtype, a.device)
    elif layout.inner_order(out) != "rows" or not layout.is_member_aligned(out):
        raise ValueError(f"_bmm: out must be row-major with every member on a 64-byte boundary, got strides {out.stride()}")
    return torch.bmm(a, b, out=out)[:K]


class _Dense(torch.autograd.Function):
    """``h @ W + b`` with the gradient autograd would compute (the same products), but the backward
    products go through ``_bmm`` too. Autograd's own backward of a population of one sees the
    gradient in the layout of ``_bmm``'s slice, a larger population in the layout the layer above
    produced (a one-unit head gives a strided one), and BLAS rounds differently by layout: a
    member's gradients depended on how many members it trained with (found by the generated
    suite). With ``buffers`` the kernel's gradient is written into a buffer that lives across
    steps: allocating a fresh (K, fan_in, fan_out) tensor every step costs more than the matrix
    product on a CPU."""

    @staticmethod
    def forward(ctx, h, W, b, buffers, layer):
        h = layout.blas_operand(h)  # once: the backward's product takes it as it is
        ctx.save_for_backward(h, W)
        ctx.buffers, ctx.layer = buffers, layer
        return _bmm(h, W) + b.unsqueeze(1)

    @staticmethod
    def backward(ctx, grad):
        h, W = ctx.saved_tensors
        grad_h = _bmm(grad, W.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_W = None
        if ctx.needs_input_grad[1]:
            out = ctx.buffers.get(ctx.layer, W) if ctx.buffers is not None else None
            grad_W = _bmm(h.transpose(1, 2), grad, out=out)
        grad_b = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_h, grad_W, grad_b, None, None


class GradientBuffers:
    """One reusable gradient buffer per layer's kernel (see :class:`_Dense`).

    The buffer is keyed by the layer, never by the kernel's shape: two kernels of equal shape
    sharing one buffer would get the same tensor back as their gradient, and the optimizer, which
    works in place, would then update one kernel with the other's gradient. A buffer is handed out
    once per backward pass and consumed by the optimizer step before the next one. ``buffers``
    gives layers a place to write to (views of the trainer's gradient storage, so no copy
    follows); ``get`` hands out a fresh buffer instead when the shape does not match, so a caller
    checks where a gradient landed (the trainer compares data pointers) rather than assuming.
    """

    def __init__(self, buffers: dict[int, torch.Tensor] | None = None) -> None:
        self._buffers: dict[int, torch.Tensor] = dict(buffers or {})

    def get(self, layer: int, W: torch.Tensor) -> torch.Tensor | None:
        if W.shape[0] == 1:
            return None
        buf = self._buffers.get(layer)
        if buf is None or buf.shape != W.shape or buf.device != W.device or buf.dtype != W.dtype:
            buf = self._buffers[layer] = layout.empty(W.shape, W.dtype, W.device)
        return buf


# From this many kernel elements on, a kernel's gradient goes into a reused buffer; below it a
# fresh tensor is cheaper than the bookkeeping. The generated tests lower it to 0 to compare the
# buffered path with the plain one on every shape.
BUFFERED_MIN_ELEMENTS = 1 << 16


def dense(
    h: torch.Tensor, W: torch.Tensor, b: torch.Tensor, buffers: GradientBuffers | None = None, layer: int | None = None
) -> torch.Tensor:
    """``h @ W + b`` per member, in Keras's order (matmul, then bias)."""
    if W.shape[-1] == 1:
        # One output unit (a binary or regression head): on a CPU, batched matmul runs these
        # (B, H) @ (H, 1) shapes at ~1.5 GFLOP/s, forward and in both gradients; multiplying and
        # summing each row is 4-7x faster. Each member's rows are summed alone, whatever K is.
        return (h * W.transpose(-1, -2)).sum(-1, keepdim=True) + b.unsqueeze(1)
    if torch.is_grad_enabled() and (h.requires_grad or W.requires_grad):
        buffered = buffers is not None and W.requires_grad and W.numel() >= BUFFERED_MIN_ELEMENTS
        if buffered and layer is None:  # the buffer is the layer's own: without its index two kernels would share one
            raise ValueError("dense: a layer index is needed with gradient buffers")
        return _Dense.apply(h, W, b, buffers if buffered else None, layer)
    return _bmm(h, W) + b.unsqueeze(1)


def output_activation(arch: Architecture, logits: torch.Tensor) -> torch.Tensor:
    """What the model outputs: probabilities for classification, values for regression (computed
    so that a member's probabilities do not depend on how many members are predicted with it)."""
    if arch.task == "binary":
        return layout.elementwise(torch.sigmoid, logits)
    if arch.task == "multiclass":
        return layout.elementwise(lambda t: torch.softmax(t, dim=-1), logits)
    return logits
