"""MC dropout (Gal & Ghahramani 2016): dropout kept on at prediction time, averaged over passes.

It changes nothing in training. At prediction, ``passes`` stochastic passes of each member with
its dropout (and Gaussian dropout) on give a predictive mean and spread
(:func:`reglab.engine.results.mc_predict`); the summary scores the mean on the held-out rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import checks
from ..checks import MC_MAX_PASSES
from ..lazy import torch
from ..pieces import Inert, Piece
from ..registry import register
from ..technique import Technique, setting

# Added to MC dropout's predictive variance in the Gaussian NLL, so that a member whose passes agree
# exactly (no dropout reached the output) has a finite likelihood.
MC_VARIANCE_FLOOR = 1e-6


def mc_columns(ctx) -> dict[str, list]:
    """MC dropout's predictive on the held-out split, for members that use it: regression: MSE of
    the predictive mean and the Gaussian negative log-likelihood; classification: cross-entropy and
    accuracy of the averaged probabilities. NaN for the other members."""
    result, task = ctx.result, ctx.arch.task
    passes = np.array([next((t.passes for t in m.techniques if isinstance(t, MCDropout)), 0) for m in result.members])
    x, y = ctx.held_out
    names = ["mc_mse", "mc_nll"] if task == "regression" else ["mc_loss", "mc_accuracy"]
    out = {f"{ctx.split}_{n}": [float("nan")] * len(passes) for n in names}
    for samples in sorted(set(passes[passes > 0].tolist())):
        index = np.flatnonzero(passes == samples)
        members = [result.members[i] for i in index]
        params = [p[torch.as_tensor(index)] for p in result.params]
        xs = x if np.ndim(x) == 2 else x[index]
        ys = np.asarray(y if np.ndim(y) == 1 else y[index], dtype=np.float64)
        from ..results import mc_predict  # the engine's prediction code: torch, imported when a summary is computed

        mean, std = mc_predict(ctx.arch, params, [m.techniques for m in members], [m.seed for m in members], xs, int(samples))
        for j, k in enumerate(index):
            scores = predictive_scores(task, mean[j].astype(np.float64), std[j].astype(np.float64), ys if ys.ndim == 1 else ys[j])
            for name, value in zip(names, scores):
                out[f"{ctx.split}_{name}"][k] = value
    return out


def predictive_scores(task: str, mean: np.ndarray, std: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if task == "regression":
        mu, var = mean[:, 0], std[:, 0] ** 2 + MC_VARIANCE_FLOOR
        nll = 0.5 * np.log(2 * np.pi * var) + (y - mu) ** 2 / (2 * var)
        return float(np.mean((y - mu) ** 2)), float(np.mean(nll))
    eps = 1e-7  # Keras's clipping of probabilities
    if task == "binary":
        p = np.clip(mean[:, 0], eps, 1 - eps)
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))), float(np.mean((p > 0.5) == (y > 0.5)))
    p = np.clip(mean, eps, 1 - eps)
    labels = y.astype(int)
    return float(np.mean(-np.log(p[np.arange(len(labels)), labels]))), float(np.mean(p.argmax(1) == labels))


@register
@dataclass(frozen=True)
class MCDropout(Technique):
    """``passes``: stochastic passes with dropout on at prediction time (needs dropout or Gaussian dropout)."""

    # Not a scikit-learn parameter: the estimators' mc_predict(X, samples) does it, and a
    # predict() that sampled masks by row position would depend on the other rows.
    passes: int = setting(50, checks.integer_rule(lo=0, hi=MC_MAX_PASSES), "stochastic passes with dropout on at prediction time, averaged (0: off)", off=0, sklearn=None)
    name = "mc_dropout"
    compiled = "epochs"  # acts between epochs: its piece runs on either engine
    reference = "Gal & Ghahramani 2016; Keras: model(x, training=True) in a loop"
    report = frozenset({"mc_bands"})
    summary = (mc_columns,)
    trains = False

    def check_with(self, others) -> None:
        if self.passes and not any(t.mc_sample for t in others):
            sampled = " or ".join(sorted(t.name for t in _registered() if t.mc_sample))
            raise checks.FieldError("mc_dropout", f"needs {sampled} above 0 in the same variant (MC dropout samples them), got mc_dropout = {self.passes} with neither")

    @classmethod
    def example(cls):
        from .dropout import Dropout

        return (cls(passes=5), Dropout(0.2))

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        return Inert()


def _registered():
    from ..registry import techniques

    return techniques()
