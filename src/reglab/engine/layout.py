"""Where a member's numbers sit, so that no kernel can tell member i from member i alone.

A population is K networks stacked on a leading axis, so member ``i``'s matrix in a ``(K, r, c)``
tensor starts ``i * r * c`` floats after member 0's. Member 0, and a member trained alone, always
start where the tensor starts, which the allocator puts on a 64-byte boundary; member ``i`` starts
there only when ``i * r * c`` is a multiple of 16 floats. BLAS (MKL's sgemm here) picks its code
path by the address of each matrix, of the product as well as of the operands, and the paths round
differently: with hidden widths like 22 or 87 a member at index 1 came out different from its run
alone after one step.

The rule: a member's matrix handed to BLAS starts on a 64-byte boundary (its first float at a
multiple of :data:`ALIGN` floats from an aligned allocation) and has the inner strides of a plain
row-major or column-major matrix, exactly as if it were alone. :class:`~reglab.engine.stacked.Stacked`
lays parameters, gradients and optimizer moments out that way (each member's block padded to a
multiple of :data:`ALIGN` floats), so the weights and the kernel gradients written in place need no
copy; activations, which torch allocates per operation, are copied into such a layout (a pass over
``K * rows * width`` floats, small beside the product) by :func:`blas_operand` just before the
product.

Elementwise functions have the same trouble with positions in another form: torch computes most
elements of a tensor with vector code and the rest (the tail of each thread's share) with scalar
code, and for ``sigmoid``, ``elu``, ``gelu`` and the losses built on them the two round
differently. Which elements fall in a tail depends on the tensor's size and the thread count, so
on the population. :func:`elementwise` computes such a function so that every member's elements
take the path they take alone.

>>> import torch
>>> t = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)  # member 1 starts 15 floats in
>>> a = blas_operand(t)
>>> a.stride(), torch.equal(a, t), is_member_aligned(a)
((16, 5, 1), True, True)
>>> blas_operand(t.transpose(1, 2)).stride()  # a transposed view stays column-major
(16, 1, 5)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .lazy import F, torch

ALIGN = 16  # float32 elements in 64 bytes
_BYTES = 64
VECTOR = 32  # elements in one step of torch's vectorised loop (two AVX-512 vectors of floats)
GRAIN = 32768  # torch's parallel grain (at::internal::GRAIN_SIZE): smaller work runs on one thread


def member_stride(numel: int) -> int:
    """Floats from one member's block to the next: ``numel`` rounded up to :data:`ALIGN`."""
    return -(-numel // ALIGN) * ALIGN


def row_major(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def size(shape) -> int:
    """Floats a ``(K, *rest)`` tensor takes in the aligned member layout."""
    return shape[0] * member_stride(math.prod(shape[1:]))


def member_view(storage: torch.Tensor, shape, offset: int = 0) -> torch.Tensor:
    """A ``(K, *rest)`` view of the flat ``storage`` from ``offset`` on: each member's block
    row-major and ``member_stride`` floats after the previous one."""
    rest = tuple(shape[1:])
    strides = (member_stride(math.prod(rest)), *row_major(rest))
    return storage.as_strided((shape[0], *rest), strides, storage.storage_offset() + offset)


def empty(shape, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """An uninitialised ``(K, *rest)`` tensor in the aligned member layout (float32 by default)."""
    return member_view(torch.empty(size(shape), dtype=dtype or torch.float32, device=device), shape)


def inner_order(t: torch.Tensor) -> str | None:
    """``"rows"`` or ``"columns"`` when ``t``'s matrices ``(K, r, c)`` are plain row- or column-major
    (strides of size-1 dimensions do not count: torch calls any of them contiguous, BLAS does not),
    else None."""
    _, r, c = t.shape
    s1, s2 = t.stride(1), t.stride(2)
    if (r == 1 or s1 == c) and (c == 1 or s2 == 1):
        return "rows"
    if (r == 1 or s1 == 1) and (c == 1 or s2 == r):
        return "columns"
    return None


def is_member_aligned(t: torch.Tensor) -> bool:
    """Every member's block of ``t`` starts on a 64-byte boundary."""
    aligned_start = t.data_ptr() % _BYTES == 0
    return aligned_start and (t.shape[0] <= 1 or t.stride(0) % ALIGN == 0)


def blas_operand(t: torch.Tensor) -> torch.Tensor:
    """``t`` (``(K, r, c)``) as BLAS must see it: each member's matrix on a 64-byte boundary with
    the plain strides of its order (row- or column-major, kept as it is: BLAS rounds differently
    for the two). A view when ``t`` is laid out so already, else a copy."""
    K, r, c = t.shape
    order = inner_order(t)
    inner = (c, 1) if order == "rows" else (1, r)
    if order is not None and is_member_aligned(t):
        stride = t.stride(0) if K > 1 else member_stride(r * c)
        return t.as_strided(t.shape, (stride, *inner), t.storage_offset())
    out = empty((K, r, c), t.dtype, t.device) if order != "columns" else empty((K, c, r), t.dtype, t.device).transpose(1, 2)
    return out.copy_(t)


def elementwise(fn: Callable[..., torch.Tensor], x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """``fn(x, *others)`` on ``(K, N, C)`` tensors (``others`` may have 1 member, broadcast), with
    every member's elements on the code path they take when the member is alone.

    1. Each member's block is a multiple of :data:`VECTOR` elements (other sizes are padded to 64
       rows), so vector steps start at member boundaries and no member element is in a tail.
    2. With more than one thread, torch splits a tensor of over :data:`GRAIN` elements into one
       share per thread, and a share's end is a tail wherever it falls. So a large population is
       computed in groups of whole members of at most :data:`GRAIN` elements, each on one thread;
       a member larger than that is computed alone, split exactly as it is when it trains alone.

    The result keeps the first ``N`` rows: ``(K, N, ...)``.
    """
    if x.dim() != 3:
        return fn(x, *others)
    K, n = x.shape[0], x.shape[1]
    tensors = (x, *others)
    if (n * x.shape[2]) % VECTOR:
        pad = (-n) % 64
        tensors = tuple(F.pad(t.expand(K, *t.shape[1:]), (0, 0, 0, pad)) for t in tensors)
    block = tensors[0][0].numel()
    if K == 1 or K * block <= GRAIN or torch.get_num_threads() == 1:
        return fn(*tensors)[:, :n]
    group = max(1, GRAIN // block)
    parts = [fn(*(t[start : start + group] if t.shape[0] == K else t for t in tensors)) for start in range(0, K, group)]
    return torch.cat(parts)[:, :n]
