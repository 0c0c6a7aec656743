"""Losses and metrics per member, computed the way Keras 3 computes them.

Keras 3 does *not* take a logits path for a ``Dense(1, activation="sigmoid")`` model compiled with
``loss="binary_crossentropy"``: on every backend but TensorFlow it clips the probabilities to
``[epsilon, 1 - epsilon]`` (epsilon = 1e-7) and takes logs (``keras/src/backend/torch/nn.py``). So
an overconfident sample costs at most ``-log(1e-7) ~= 16.1``, and a saturated sample contributes
no gradient at all. val_loss drives early stopping and the origin models overfit hard, so reglab
reproduces that arithmetic exactly by default (``clip_probabilities=True``). With
``clip_probabilities=False`` the binary and categorical losses are computed exactly from the
logits (log-sigmoid / log-softmax), which is finite for any logit too.

Every reduction over rows goes through :func:`member_sum`, whose summation order depends only on
the number of rows, never on how many members share the tensor (see its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import checks, layout
from .lazy import F, torch

EPSILON = 1e-7  # keras.config.epsilon()

_CHUNK = 1024


def member_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum a ``(K, M)`` tensor over its second axis, in an order that does not depend on K.

    torch splits a reduction across threads differently when the output has one element (K = 1)
    than when it has many, which changes the float rounding of large sums. Summing fixed-size
    chunks first keeps every level of the reduction parallel over outputs only.
    """
    K, M = x.shape
    if M <= _CHUNK:
        return x.sum(1)
    pad = (-M) % _CHUNK
    if pad:
        x = F.pad(x, (0, pad))
    return x.view(K, -1, _CHUNK).sum(2).sum(1)


def member_mean(x: torch.Tensor) -> torch.Tensor:
    return member_sum(x) / x.shape[1]


# Per-sample functions: (logits (K, N, C), targets (K or 1, N, C)) -> (K, N).
SampleFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def aligned(fn: SampleFn) -> SampleFn:
    """A per-sample function computed so that its results never depend on the population
    (see :func:`reglab.engine.layout.elementwise`)."""

    def per_sample(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return layout.elementwise(fn, logits, y)

    per_sample.__name__ = getattr(fn, "__name__", "per_sample")
    return per_sample


def binary_crossentropy(clip_probabilities: bool = True) -> SampleFn:
    def per_sample(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if clip_probabilities:
            p = torch.sigmoid(logits).clamp(EPSILON, 1.0 - EPSILON)
            # torch's binary_cross_entropy refuses NaN inputs, which would abort the whole
            # population for one diverged member: its NaN rows get a NaN loss instead (and the
            # loop stops that member as non-finite).
            diverged = torch.isnan(p)
            loss = F.binary_cross_entropy(p.masked_fill(diverged, 0.5), y.expand_as(p), reduction="none")
            loss = loss.masked_fill(diverged, float("nan"))
        else:
            loss = F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none")
        return loss.mean(-1)

    return aligned(per_sample)


def categorical_crossentropy(clip_probabilities: bool = True) -> SampleFn:
    def per_sample(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if clip_probabilities:
            p = torch.softmax(logits, dim=-1)
            p = (p / p.sum(-1, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)
            log_p = torch.log(p)
        else:
            log_p = torch.log_softmax(logits, dim=-1)
        return -(y * log_p).sum(-1)

    return aligned(per_sample)


def mean_squared_error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.square(y - logits).mean(-1)


def mean_absolute_error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.abs(y - logits).mean(-1)


@aligned
def binary_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Keras thresholds the probability (y_pred > 0.5), not the logit; the two differ for tiny logits.
    hit = (torch.sigmoid(logits) > 0.5).to(y.dtype) == y
    return hit.to(torch.float32).mean(-1)


@aligned
def categorical_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pred = torch.softmax(logits, dim=-1).argmax(-1)
    return (pred == y.argmax(-1)).to(torch.float32)


@dataclass(frozen=True)
class Metric:
    name: str
    per_sample: SampleFn
    direction: str  # "min" or "max": which way is better, for early stopping's mode="auto"


LOSS_NAMES = {
    "binary": ("binary_crossentropy",),
    "multiclass": ("categorical_crossentropy",),
    "regression": ("mse", "mae"),
}

METRICS_FOR_TASK = {
    "binary": ("accuracy",),
    "multiclass": ("accuracy",),
    "regression": ("mse", "mae"),
}


def make_loss(name: str, task: str, clip_probabilities: bool = True) -> SampleFn:
    checks.choice("loss", name, LOSS_NAMES[task])
    if name == "binary_crossentropy":
        return binary_crossentropy(clip_probabilities)
    if name == "categorical_crossentropy":
        return categorical_crossentropy(clip_probabilities)
    return mean_squared_error if name == "mse" else mean_absolute_error


def make_metric(name: str, task: str) -> Metric:
    checks.choice("metrics", name, METRICS_FOR_TASK[task])
    if name == "accuracy":
        fn = binary_accuracy if task == "binary" else categorical_accuracy
        return Metric("accuracy", fn, "max")
    return Metric(name, mean_squared_error if name == "mse" else mean_absolute_error, "min")
