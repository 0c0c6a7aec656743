"""What a trained population gives back: weights, per-epoch history, stop records, predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import checks
from .checks import MC_MAX_PASSES
from .arrays import features, targets
from .losses import Metric, SampleFn, member_mean
from .members import Member
from .architecture import Architecture
from .model import forward, output_activation
from .pieces import Piece, loss_targets, total_penalty

# Rows per forward chunk are chosen so that one hidden activation stays under this many bytes: small
# enough to stay in cache (4 MiB made a 140-member grid prediction 4x faster than 256 MiB on a 2-core CPU).
PREDICT_BUDGET_BYTES = 4 * 2**20


@dataclass
class TrainResult:
    """The trained population. Arrays are indexed by member, in the order members were given.

    - ``params``: final weights ``[W0, b0, ...]`` (the best epoch's where they were restored).
    - ``history[name]``: ``(K, epochs)`` per-epoch values (``loss``, ``val_loss``, metrics), NaN
      after a member stopped.
    - ``epochs_run``, ``stopped_epoch`` (0-based index of the last epoch trained), ``stop_reason``
      (``max_epochs``, ``patience``, ``stopping_threshold``, ``divergence``, ``non_finite``),
      ``best_epoch`` and ``restored``.
    """

    arch: Architecture
    members: list[Member]
    params: list[torch.Tensor]
    history: dict[str, np.ndarray]
    epochs_run: np.ndarray
    stop_reason: list[str]
    reports: dict[str, np.ndarray]
    loss_fn: SampleFn
    metrics: list[Metric]
    penalty_pieces: list[Piece] = field(repr=False)
    target_pieces: list[Piece] = field(repr=False, default_factory=list)

    @property
    def stopped_epoch(self) -> np.ndarray:
        return self.epochs_run - 1

    @property
    def best_epoch(self) -> np.ndarray:
        """The stopping rule's best epoch; for members without one, the epoch of lowest val_loss
        (or loss without validation data)."""
        monitor = self.history.get("val_loss", self.history["loss"])
        filled = np.where(np.isnan(monitor), np.inf, monitor)
        fallback = np.argmin(filled, axis=1)
        rule = self.reports.get("best_epoch")
        return fallback if rule is None else np.where(rule >= 0, rule, fallback)

    @property
    def restored(self) -> np.ndarray:
        return self.reports.get("restored", np.zeros(len(self.members), dtype=bool))

    def _logits(self, x) -> torch.Tensor:
        return logits_for(self.arch, self.params, x)

    def predict(self, x) -> np.ndarray:
        """What each member outputs for ``x``, ``(K, N, n_outputs)``: probabilities (sigmoid or
        softmax) for classification, values for regression, like Keras's ``model.predict``.
        All members run in one batched call per chunk of rows."""
        return output_activation(self.arch, self._logits(x)).cpu().numpy()

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities ``(K, N, n_classes)``; for a binary task the columns are P(0), P(1)."""
        if self.arch.task == "regression":
            raise ValueError("predict_proba: only for classification tasks, this population does regression")
        p = self.predict(x)
        return np.concatenate([1.0 - p, p], axis=-1) if self.arch.task == "binary" else p

    def predict_labels(self, x) -> np.ndarray:
        """Predicted class per member and row, ``(K, N)``."""
        p = self.predict_proba(x)
        return p.argmax(-1)

    def mc_predict(self, x, samples: int = 50) -> tuple[np.ndarray, np.ndarray]:
        """MC dropout (Gal & Ghahramani 2016): the predictive mean and standard deviation of
        ``samples`` stochastic passes with each member's dropout kept on, ``(K, N, n_outputs)``."""
        return mc_predict(self.arch, self.params, [m.techniques for m in self.members], [m.seed for m in self.members], x, samples)

    def evaluate(self, x, y) -> dict[str, np.ndarray]:
        """Per-member ``loss`` (with the penalties, as Keras's ``evaluate``), ``data_loss`` (without
        them) and metrics on ``(x, y)``, in inference mode."""
        return evaluate_params(self.arch, self.params, x, y, self.loss_fn, self.metrics, self.penalty_pieces, self.target_pieces)


def _row_chunks(arch: Architecture, k: int, x: torch.Tensor):
    per_row = 4 * k * max(arch.widths)
    step = max(1, PREDICT_BUDGET_BYTES // per_row)
    for start in range(0, x.shape[-2], step):
        yield x[..., start : start + step, :]


def logits_for(arch: Architecture, params: list[torch.Tensor], x) -> torch.Tensor:
    """Logits ``(K, N, n_outputs)`` of every member for ``x``, in chunks of rows that bound memory."""
    k = params[0].shape[0]
    X = features("x", x, arch, k).to(params[0].device)
    out = []
    with torch.no_grad():
        for chunk in _row_chunks(arch, k, X):
            xs = chunk.expand(k, *chunk.shape) if chunk.dim() == 2 else chunk
            out.append(forward(arch, params, xs))
    return torch.cat(out, dim=1)


def evaluate_params(
    arch: Architecture,
    params: list[torch.Tensor],
    x,
    y,
    loss_fn: SampleFn,
    metrics: list[Metric],
    penalty_pieces: list[Piece] = (),
    target_pieces: list[Piece] = (),
) -> dict[str, np.ndarray]:
    """``loss`` (as Keras's ``evaluate``: against the targets the pieces' ``targets`` hooks give,
    e.g. smoothed labels, plus the penalties), ``data_loss`` (the plain loss on the true targets:
    what the summary compares across variants) and each metric, per member."""
    k = params[0].shape[0]
    Y = targets("y", y, arch, k, features("x", x, arch, k)).to(params[0].device)
    Y = Y.unsqueeze(0) if Y.dim() == 2 else Y
    logits = logits_for(arch, params, x)
    with torch.no_grad():
        data_loss = member_mean(loss_fn(logits, Y))
        # ``loss`` is what Keras's evaluate reports: against the targets as the loss sees them
        # (label smoothing), plus the penalties; ``data_loss`` the plain loss on the true targets.
        loss = member_mean(loss_fn(logits, loss_targets(list(target_pieces), Y))) if target_pieces else data_loss
        pen = total_penalty(list(penalty_pieces), params)
        loss = loss if pen is None else loss + pen
        out = {"loss": loss, "data_loss": data_loss}
        for m in metrics:
            out[m.name] = member_mean(m.per_sample(logits, Y))
    return {key: value.cpu().numpy() for key, value in out.items()}


MC_EPOCH = -1  # pass t of MC dropout draws its masks with the key (seed, ..., epoch=-1, step=t)


def mc_predict(arch: Architecture, params: list[torch.Tensor], techniques, seeds, x, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over ``samples`` passes (1 to :data:`MC_MAX_PASSES`) of every
    member with its dropout on; a member without dropout gets its plain prediction and a deviation
    of 0, and a population where no member has any is refused.

    Each pass runs all members at once; pass t of member k draws the masks keyed by
    ``(seed_k, epoch=-1, step=t, layer)``, keys that training never uses, so the passes are the
    same whoever is predicted alongside. Rows are not chunked (a row's mask depends on its place).
    """
    from .pieces import StepContext, stack_pieces
    from .registry import techniques as registered

    samples = checks.integer("samples", int(samples) if isinstance(samples, np.integer) else samples, lo=1, hi=MC_MAX_PASSES)
    k = params[0].shape[0]
    device = params[0].device
    # Only the techniques that are on (an experiment file's notion: not all settings at "off").
    kept = [tuple(t for t in ts if t.mc_sample and type(t).from_variant(t.to_variant()) is not None) for ts in techniques]
    if not any(kept):  # a member without gets its plain prediction and a deviation of 0
        names = " or ".join(sorted(t.name for t in registered() if t.mc_sample))
        raise ValueError(f"mc_predict: no member has {names} above 0, so every pass would be the same; MC dropout samples them")
    pieces = stack_pieces(kept, arch, device, {})
    X = features("x", x, arch, k).to(device)
    xs = X.expand(k, *X.shape) if X.dim() == 2 else X
    seed_tensor = torch.tensor(list(seeds), dtype=torch.int64, device=device)
    zero_lr = torch.zeros(k, device=device)
    total = sum_sq = None
    with torch.no_grad():
        for t in range(samples):
            ctx = StepContext(seeds=seed_tensor, learning_rate=zero_lr, epoch=MC_EPOCH, step=t)

            def hook(h, layer, ctx=ctx):
                for piece in pieces:
                    h = piece.hidden(h, layer, ctx)
                return h

            out = output_activation(arch, forward(arch, params, xs, hook)).double()
            total = out if total is None else total + out
            sum_sq = out * out if sum_sq is None else sum_sq + out * out
    mean = total / samples
    var = (sum_sq / samples - mean * mean).clamp_min(0.0)
    return mean.float().cpu().numpy(), var.sqrt().float().cpu().numpy()
