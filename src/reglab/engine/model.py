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

from . import checks, rng

def row_aligned(fn: Callable[..., torch.Tensor], x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``fn(x, *others)`` on ``(K, N, C)`` tensors, computed so that no member's element lands in
    a scalar tail loop.

    torch evaluates transcendental functions (exp, log, tanh, erf...) with vector code, and the
    last few elements of a tensor with scalar code that rounds differently. Which elements those
    are depends on the tensor's total size, i.e. on K. With a multiple of 32 elements per member
    (two AVX-512 vectors, the unit of torch's vectorised loop) every element takes the vector
    path, whatever the population; other sizes are padded to 64 rows. The result keeps the first
    ``N`` rows: ``(K, N, ...)``.
    """
    if x.dim() != 3 or (x.shape[1] * x.shape[2]) % 32 == 0:
        return fn(x, *others)
    n = x.shape[1]
    pad = (-n) % 64
    padded = [F.pad(t.expand(x.shape[0], *t.shape[1:]) if t.shape[0] != x.shape[0] else t, (0, 0, 0, pad)) for t in (x, *others)]
    return fn(*padded)[:, :n]


def _aligned(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda h: row_aligned(fn, h)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": _aligned(torch.tanh),
    "sigmoid": _aligned(torch.sigmoid),
    "elu": _aligned(F.elu),
    # Keras 3's gelu defaults to the exact erf form (approximate=False), as torch's does.
    "gelu": _aligned(F.gelu),
    "linear": lambda h: h,
}

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Architecture:
    """The shape shared by every member of a population.

    ``task`` picks the head: ``binary`` (one sigmoid unit on a logit), ``multiclass`` (softmax over
    ``n_outputs`` classes) or ``regression`` (``n_outputs`` linear units).
    """

    n_inputs: int
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    task: str = "binary"
    n_outputs: int = 1

    def __post_init__(self) -> None:
        checks.integer("n_inputs", self.n_inputs, lo=1)
        if not isinstance(self.hidden, (tuple, list)) or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in self.hidden
        ):
            checks.fail("hidden", self.hidden, "a list of positive layer widths, e.g. [128, 128]")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        checks.choice("activation", self.activation, ACTIVATIONS)
        checks.choice("task", self.task, TASKS)
        checks.integer("n_outputs", self.n_outputs, lo=1)
        if self.task == "binary" and self.n_outputs != 1:
            checks.fail("n_outputs", self.n_outputs, "1 for a binary task (one sigmoid unit)")
        if self.task == "multiclass" and self.n_outputs < 2:
            checks.fail("n_outputs", self.n_outputs, "the number of classes (>= 2) for a multiclass task")

    @property
    def widths(self) -> tuple[int, ...]:
        """Units of every layer from the input to the output."""
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def n_layers(self) -> int:
        """Number of Dense layers, the output layer included."""
        return len(self.hidden) + 1

    def kernels(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        return params[0::2]


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
    """Batched matmul that never hands torch a batch of one.

    torch sends a batch of a single matrix product down another kernel (plain gemm, or gemv for
    one output unit) whose rounding differs from the batched one for some shapes. A population of
    one is therefore computed as a population of two (the member twice), so that a member's bits
    never depend on how many members it trains with.
    """
    a, b = _canonical(a), _canonical(b)
    if a.shape[0] == 1:
        return torch.bmm(_twice(a), _twice(b))[:1]
    if out is None:
        return torch.bmm(a, b)
    return torch.bmm(a, b, out=out)


def _canonical(t: torch.Tensor) -> torch.Tensor:
    """``t`` with the standard strides of its layout (row-major, or a transposed row-major view),
    size-1 dimensions included: torch calls a tensor contiguous whatever the stride of a size-1
    dimension, BLAS does not, and which one autograd makes depends on what else acts on the layer
    (another member's dropout, say). A view when only size-1 strides differ (no copy)."""
    if t.is_contiguous():
        return t.as_strided(t.shape, _row_major(t.shape), t.storage_offset())
    u = t.transpose(1, 2)
    if u.is_contiguous():
        return u.as_strided(u.shape, _row_major(u.shape), u.storage_offset()).transpose(1, 2)
    return t.contiguous()


def _row_major(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _twice(t: torch.Tensor) -> torch.Tensor:
    """A batch of two of the one matrix in ``t``, laid out exactly as ``t`` is (strides of size-1
    dimensions included; the batch a stride-0 view, no copy): BLAS picks its kernel from the
    layout, and a transposed or a one-row operand rounds differently from its contiguous copy."""
    return t.expand(2, *t.shape[1:])


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
            buf = self._buffers[layer] = torch.empty(W.shape, dtype=W.dtype, device=W.device)
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
    """What the model outputs: probabilities for classification, values for regression (row-aligned,
    so a member's probabilities do not depend on how many members are predicted with it)."""
    if arch.task == "binary":
        return row_aligned(torch.sigmoid, logits)
    if arch.task == "multiclass":
        return row_aligned(lambda t: torch.softmax(t, dim=-1), logits)
    return logits
