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
from .architecture import ACTIVATION_NAMES, Architecture, layers


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
) -> torch.Tensor:
    """Logits ``(K, N, n_outputs)`` for inputs ``x`` of shape ``(K, N, n_inputs)``.

    ``hidden_hook(h, layer)`` transforms the inputs (``layer == -1``) and each hidden layer's
    activations (dropout and other noise live there, at training time only).
    """
    act = ACTIVATIONS[arch.activation]
    h = x if hidden_hook is None else hidden_hook(x, -1)
    n = arch.n_layers
    for layer, (W, b) in enumerate(layers(params)):
        h = dense(h, W, b)
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


def dense(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h @ W + b`` per member, in Keras's order (matmul, then bias)."""
    if W.shape[-1] == 1:
        # One output unit (a binary or regression head): on a CPU, batched matmul runs these
        # (B, H) @ (H, 1) shapes at ~1.5 GFLOP/s, forward and in both gradients; multiplying and
        # summing each row is 4-7x faster. Each member's rows are summed alone, whatever K is.
        return _unit_head(h, W, b)
    return _bmm(layout.blas_operand(h), W) + b.unsqueeze(1)


def _unit_head(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One output unit: each row multiplied by the kernel and summed (see :func:`dense`)."""
    return (h * W.transpose(-1, -2)).sum(-1, keepdim=True) + b.unsqueeze(1)


# The backward of each activation, as autograd computes it from the layer's output ``a`` (and its
# input ``z``): the same operations, so the same bits. None: autograd, on that layer alone.
_ACTIVATION_BACKWARD: dict[str, Callable | None] = {
    "relu": lambda g, z, a: torch.ops.aten.threshold_backward(g, a, 0),
    "tanh": lambda g, z, a: layout.elementwise(torch.ops.aten.tanh_backward, g, a),
    "sigmoid": lambda g, z, a: layout.elementwise(torch.ops.aten.sigmoid_backward, g, a),
    "elu": None,
    "gelu": None,
    "linear": lambda g, z, a: g,
}


@dataclass
class _Saved:
    """What one layer's backward needs from its forward: the input as the products took it, the
    pre-activation ``z``, the activation ``a``, and where a hidden hook changed ``a``, its input
    (an autograd leaf) and output."""

    h: torch.Tensor
    z: torch.Tensor | None = None
    a: torch.Tensor | None = None
    hook_in: torch.Tensor | None = None
    hook_out: torch.Tensor | None = None


def gradients(
    arch: Architecture,
    params: list[torch.Tensor],
    x: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor],
    out: list[torch.Tensor],
    hidden_hook: HiddenHook | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step's forward and backward pass, written out: the logits and ``loss(logits)``
    (``(K,)``, each member's data loss), with the gradient of their sum for every parameter written
    into ``out`` (a list like ``params``, laid out as :class:`~reglab.engine.stacked.Stacked` is).

    The operations are autograd's backward of :func:`forward` (so the bits are the same), without
    its graph: at K = 1 autograd's bookkeeping cost more than a small network's arithmetic.
    Autograd still runs where an operation's backward is not written here, on that operation
    alone: the loss, a hidden hook (dropout and noise: any technique's) and the elu and gelu
    activations. Call it under ``torch.no_grad()``.
    """
    act, act_backward = ACTIVATIONS[arch.activation], _ACTIVATION_BACKWARD[arch.activation]
    n = arch.n_layers
    h = x if hidden_hook is None else hidden_hook(x, -1)
    weights, grads = layers(params), layers(out)
    saved: list[_Saved] = []
    for layer, (W, b) in enumerate(weights):
        if W.shape[-1] > 1:
            h = layout.blas_operand(h)  # as the products take it: the kernel's gradient reads it again
        z = dense(h, W, b)
        record = _Saved(h)
        saved.append(record)
        if layer == n - 1:
            h = z
            break
        record.z = z
        if act_backward is None:
            with torch.enable_grad():
                record.a = act(z.requires_grad_(True))
        else:
            record.a = act(z)
        h = record.a
        if hidden_hook is not None:
            leaf = record.a.detach().requires_grad_(True)
            with torch.enable_grad():
                hooked = hidden_hook(leaf, layer)
            if hooked is not leaf:
                record.hook_in, record.hook_out, h = leaf, hooked, hooked.detach()
    logits = h.requires_grad_(True)
    with torch.enable_grad():
        data_loss = loss(logits)
        (g,) = torch.autograd.grad(data_loss.sum(), logits)
    for layer in range(n - 1, -1, -1):
        W, record = weights[layer].kernel, saved[layer]
        if layer < n - 1:  # back through the hook, then the activation
            if record.hook_out is not None:
                (g,) = torch.autograd.grad(record.hook_out, record.hook_in, g)
            if act_backward is None:
                (g,) = torch.autograd.grad(record.a, record.z, g)
            else:
                g = act_backward(g, record.z, record.a)
        grad_W, grad_b = grads[layer]
        if W.shape[-1] == 1:
            # autograd's backward of _unit_head: the row sum's gradient spread over the row, then
            # each factor's (the kernel's summed over the rows it was broadcast to).
            g_rows = g.expand(*g.shape[:-1], W.shape[-2])
            grad_W.copy_((g_rows * record.h).sum(1, keepdim=True).transpose(-1, -2))
            grad_b.copy_(g.sum(1))
            g = g_rows * W.transpose(-1, -2) if layer else None
        else:
            if W.shape[0] > 1:
                _bmm(record.h.transpose(1, 2), g, out=grad_W)
            else:  # a population of one is computed as two (see _bmm), into storage of its own
                grad_W.copy_(_bmm(record.h.transpose(1, 2), g))
            grad_b.copy_(g.sum(1))
            g = _bmm(g, W.transpose(1, 2)) if layer else None
    return logits.detach(), data_loss.detach()


def output_activation(arch: Architecture, logits: torch.Tensor) -> torch.Tensor:
    """What the model outputs: probabilities for classification, values for regression (computed
    so that a member's probabilities do not depend on how many members are predicted with it)."""
    if arch.task == "binary":
        return layout.elementwise(torch.sigmoid, logits)
    if arch.task == "multiclass":
        return layout.elementwise(lambda t: torch.softmax(t, dim=-1), logits)
    return logits
