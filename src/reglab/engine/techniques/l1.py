"""L1: Keras's ``regularizers.L1(l1)`` on the kernels, ``l1 * sum(|w|)`` added to the loss."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import register
from ..technique import KerasCounterpart
from ._kernel_penalty import KernelPenalty, coefficient


@register
@dataclass(frozen=True)
class L1(KernelPenalty):
    """Keras ``regularizers.L1(l1)`` on the kernels: adds ``l1 * sum(|w|)`` to the loss."""

    l1: float | tuple[float, ...] = coefficient(0.01, "L1 penalty coefficient on the kernels: adds l1 * sum(|w|) to the loss", search=(1e-5, 1e-4, 1e-3))
    name = "l1"
    keras = KerasCounterpart("kernel_regularizer", ("L1", "L1L2"), {"l1": "l1"})
    reference = "Tibshirani 1996 (the lasso); keras.regularizers.L1"
