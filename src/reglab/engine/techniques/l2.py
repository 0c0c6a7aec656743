"""L2: Keras's ``regularizers.L2(l2)`` on the kernels, ``l2 * sum(w**2)`` added to the loss (no 1/2)."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import register
from ..technique import KerasCounterpart
from ._kernel_penalty import KernelPenalty, coefficient


@register
@dataclass(frozen=True)
class L2(KernelPenalty):
    """Keras ``regularizers.L2(l2)`` on the kernels: adds ``l2 * sum(w**2)`` to the loss (no 1/2)."""

    l2: float | tuple[float, ...] = coefficient(0.01, "L2 penalty coefficient on the kernels: adds l2 * sum(w**2) to the loss", search=(1e-4, 1e-3, 1e-2))
    name = "l2"
    keras = KerasCounterpart("kernel_regularizer", ("L2", "L1L2"), {"l2": "l2"})
    reference = "Krogh & Hertz 1992 (weight decay as a penalty); keras.regularizers.L2"
