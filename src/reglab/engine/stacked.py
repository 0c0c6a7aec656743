"""A population's parameters (or gradients, or optimizer moments) in one buffer.

``views[i]`` is the i-th tensor ``(K, ...)`` and ``flat`` is all of them one after the other. Each
member's block of each view starts on a 64-byte boundary, as a tensor of that member alone would
(the layout rule of :mod:`reglab.engine.layout`: BLAS rounds differently for a matrix that does
not), so a view's members sit ``member_stride`` floats apart and the views are not contiguous when
a member's block is not a multiple of 16 floats. The padding between blocks starts as zeros and
then holds whatever the elementwise work leaves there (Adam's epsilon, say): never reduce over
``flat``. Elementwise work (the optimizer's update) runs once over ``flat`` instead of once per
layer: the same operations on the same values give the same bits per element wherever the element
sits, so nothing but the number of dispatches changes.

>>> import torch
>>> s = Stacked.of([torch.ones(2, 3), torch.zeros(2)])
>>> s.flat.shape, [tuple(v.shape) for v in s.views], s.views[0].stride(), s.views[0].sum().item()
(torch.Size([64]), [(2, 3), (2,)], (16, 1), 6.0)
>>> [v.tolist() for v in s.select(torch.tensor([1])).views]
[[[1.0, 1.0, 1.0]], [0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import layout
from .lazy import torch


@dataclass
class Stacked:
    flat: torch.Tensor
    views: list[torch.Tensor]

    @classmethod
    def zeros(cls, like: Sequence[torch.Tensor]) -> Stacked:
        """Zeros with the shapes of ``like``, every member's block on a 64-byte boundary."""
        starts, total = [], 0
        for t in like:
            starts.append(total)
            total += layout.size(t.shape)
        flat = torch.zeros(total, dtype=like[0].dtype, device=like[0].device)
        return cls(flat, [layout.member_view(flat, t.shape, start) for start, t in zip(starts, like)])

    @classmethod
    def of(cls, tensors: Sequence[torch.Tensor]) -> Stacked:
        """A copy of ``tensors`` in one buffer."""
        out = cls.zeros(tensors)
        for v, t in zip(out.views, tensors):
            v.copy_(t.detach())
        return out

    def select(self, index: torch.Tensor) -> Stacked:
        """The members at ``index`` (along every view's first axis), in a new buffer."""
        return Stacked.of([v[index] for v in self.views])
