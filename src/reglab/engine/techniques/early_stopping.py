"""Early stopping per member, with Keras 3's ``EarlyStopping`` semantics and Lightning's extras.

Keras 3 (``keras/src/callbacks/early_stopping.py``), at the end of every epoch from
``start_from_epoch`` on:

- the first monitored epoch is always an improvement (``best`` starts unset; a ``baseline`` does
  *not* seed it), later ones improve when ``current - min_delta`` beats ``best`` (``+ min_delta``
  in min mode), compared in float32 as ``keras.ops.less``/``greater`` do;
- ``wait`` counts monitored epochs and is reset on an improvement that also beats the baseline;
- without an improvement, training stops once ``wait >= patience``, never at epoch 0;
- ``restore_best_weights`` restores the best epoch's weights at the end of training, also when
  patience never ran out.

From PyTorch Lightning: stop on a non-finite monitored value (``check_finite``), as soon as the
value is better than ``stopping_threshold``, or worse than ``divergence_threshold``. These are
checked after Keras's bookkeeping for the epoch; thresholds only from ``start_from_epoch`` on, the
finite check always.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import checks
from .. import monitor as improvement
from ..lazy import torch
from ..monitor import MODES
from ..pieces import REASON_CODE, MemberState, Piece, StopDecision, member_column, member_view
from ..registry import register
from ..technique import KerasCounterpart, Technique, setting


@register
@dataclass(frozen=True)
class EarlyStopping(Technique):
    """Stop a member when its monitored value stops improving (Keras's ``EarlyStopping``), or
    crosses a threshold (Lightning's). A table in an experiment file: ``[variant.early_stopping]``."""

    monitor: str = setting("val_loss", checks.TEXT, "the history value watched (val_loss, val_accuracy, loss...)", sklearn=None)
    min_delta: float = setting(0.0, checks.ANY_NUMBER, "smallest change that counts as an improvement", sklearn="min_delta")
    patience: int = setting(0, checks.integer_rule(lo=0), "epochs without improvement before stopping", sklearn="patience", sklearn_default=10)
    mode: str = setting("auto", checks.choice_rule(MODES), "whether smaller or larger is better; auto: from the monitored value", sklearn=None)
    baseline: float | None = setting(None, checks.ANY_NUMBER.or_none("no baseline"), "a value to beat; wait is only reset by improvements past it", sklearn=None)
    restore_best_weights: bool = setting(False, checks.BOOL, "end with the weights of the best epoch", sklearn="restore_best_weights", sklearn_default=True)
    start_from_epoch: int = setting(0, checks.integer_rule(lo=0), "epochs of warm-up before monitoring starts", sklearn=None)
    check_finite: bool = setting(True, checks.BOOL, "stop when the monitored value is NaN or infinite (Lightning)", sklearn=None)
    stopping_threshold: float | None = setting(None, checks.ANY_NUMBER.or_none("none"), "stop as soon as the value is better than this (Lightning)", sklearn=None)
    divergence_threshold: float | None = setting(None, checks.ANY_NUMBER.or_none("none"), "stop as soon as the value is worse than this (Lightning)", sklearn=None)
    name = "early_stopping"
    compiled = "epochs"  # acts between epochs: its piece runs on either engine
    table = True
    sklearn_switch = "early_stopping"
    keras = KerasCounterpart(
        "callback",
        ("EarlyStopping",),
        {a: a for a in ("monitor", "min_delta", "patience", "mode", "baseline", "restore_best_weights", "start_from_epoch")},
    )
    reference = "Prechelt 1998; keras.callbacks.EarlyStopping, with PyTorch Lightning's thresholds"
    report = frozenset({"stopping"})
    needs_validation = True
    stop_reasons = ("patience", "stopping_threshold", "divergence", "non_finite")

    @classmethod
    def example(cls):
        return (cls(patience=3, min_delta=0.002),)

    @classmethod
    def neutral(cls):
        return cls(patience=2**31)  # never runs out

    def direction(self, available_logs: dict[str, str]) -> str:
        """``"min"`` or ``"max"``; raises ``ValueError`` for a monitor the history will not hold."""
        return improvement.direction("early_stopping.monitor", self.monitor, self.mode, available_logs)

    def check_logs(self, available_logs: dict[str, str]) -> None:
        self.direction(available_logs)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        monitors = {s.monitor for s in settings if s is not None}
        for s in settings:
            if s is not None:
                s.check_logs(available_logs)
        # Members without early stopping get a rule that never fires: infinite patience, no checks.
        never = EarlyStopping(monitor=sorted(monitors)[0], patience=0, check_finite=False)
        rows = [s if s is not None else never for s in settings]
        col = lambda values, dtype=torch.float32: member_column(values, device, dtype)  # noqa: E731
        nan = math.nan
        state = EarlyStoppingState(
            monitor_index=col([sorted(monitors).index(s.monitor) for s in rows], torch.int64),
            sign=col([1.0 if s.direction(available_logs) == "min" else -1.0 for s in rows]),
            min_delta=col([abs(s.min_delta) for s in rows], torch.float64),
            patience=col([s.patience if s is not never else math.inf for s in rows]),
            baseline=col([nan if s.baseline is None else s.baseline for s in rows]),
            start_from_epoch=col([s.start_from_epoch for s in rows], torch.int64),
            restore=col([s.restore_best_weights for s in rows], torch.bool),
            check_finite=col([s.check_finite for s in rows], torch.bool),
            stopping_threshold=col([nan if s.stopping_threshold is None else s.stopping_threshold for s in rows]),
            divergence_threshold=col([nan if s.divergence_threshold is None else s.divergence_threshold for s in rows]),
            enabled=col([s is not never for s in rows], torch.bool),
            # Running state, Keras's names.
            best=col([nan] * len(rows)),
            has_best=col([False] * len(rows), torch.bool),
            wait=col([0] * len(rows), torch.int64),
            best_epoch=col([0] * len(rows), torch.int64),
        )
        return EarlyStoppingPiece(sorted(monitors), state, BestWeights())


class BestWeights:
    """Each member's weights at its best epoch so far, kept only where some member restores them."""

    def __init__(self, snapshot: list[torch.Tensor] | None = None):
        self.snapshot = snapshot

    def update(self, take: torch.Tensor, params: list[torch.Tensor]) -> None:
        """Copy the current weights of the members where ``take`` is True."""
        if self.snapshot is None:
            self.snapshot = [p.detach().clone() for p in params]
            return
        for snap, p in zip(self.snapshot, params):
            snap.copy_(torch.where(member_view(take, p), p.detach(), snap))

    def restore(self, use: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.snapshot is None:
            return params
        return [torch.where(member_view(use, p), snap, p) for snap, p in zip(self.snapshot, params)]

    def select(self, index: torch.Tensor) -> BestWeights:
        return BestWeights(None if self.snapshot is None else [p[index] for p in self.snapshot])


@dataclass
class EarlyStoppingState(MemberState):
    """Every member's settings as tensors and its running state, by Keras's names (``best``, ``wait``...)."""

    monitor_index: torch.Tensor
    sign: torch.Tensor
    min_delta: torch.Tensor
    patience: torch.Tensor
    baseline: torch.Tensor
    start_from_epoch: torch.Tensor
    restore: torch.Tensor
    check_finite: torch.Tensor
    stopping_threshold: torch.Tensor
    divergence_threshold: torch.Tensor
    enabled: torch.Tensor
    best: torch.Tensor
    has_best: torch.Tensor
    wait: torch.Tensor
    best_epoch: torch.Tensor


class EarlyStoppingPiece(Piece):
    def __init__(self, monitors: list[str], state: EarlyStoppingState, best: BestWeights):
        self.monitors = monitors
        self.s = state
        self.any_restore = bool(state.restore.any())
        self.best = best  # best weights, for members that restore them

    def _current(self, logs: dict[str, torch.Tensor]) -> torch.Tensor:
        values = torch.stack([logs[m] for m in self.monitors])  # (n_monitors, K)
        return values.gather(0, self.s.monitor_index.view(1, -1)).squeeze(0)

    def on_epoch_end(self, epoch, logs, params) -> StopDecision:
        s = self.s
        current = self._current(logs)
        sign = s.sign
        monitored = s.enabled & (epoch >= s.start_from_epoch)

        # Keras: monitor_op(current - min_delta, best), min_delta negated in min mode, computed in
        # float64 and compared in float32. In sign space (min: +v, max: -v) that is s*v + |d| < s*best.
        shifted = (sign.double() * current.double() + s.min_delta).float()
        improved = monitored & (~s.has_best | (shifted < sign * s.best))
        wait = torch.where(monitored, s.wait + 1, s.wait)
        s.best = torch.where(improved, current, s.best)
        s.has_best = s.has_best | improved
        s.best_epoch = torch.where(improved, torch.full_like(s.best_epoch, epoch), s.best_epoch)
        beats_baseline = torch.isnan(s.baseline) | (shifted < sign * s.baseline)
        s.wait = torch.where(improved & beats_baseline, torch.zeros_like(wait), wait)

        if self.any_restore:
            self.best.update(improved & s.restore, params)

        patience = monitored & ~improved & (s.wait >= s.patience) & (epoch > 0)
        threshold = monitored & (sign * current < sign * s.stopping_threshold)
        divergence = monitored & (sign * current > sign * s.divergence_threshold)
        non_finite = s.enabled & s.check_finite & ~torch.isfinite(current)

        reason = torch.zeros_like(s.wait)
        # Later assignments win: non-finite first, then the thresholds, then patience (Lightning's order).
        for flag, name in (
            (patience, "patience"),
            (divergence, "divergence"),
            (threshold, "stopping_threshold"),
            (non_finite, "non_finite"),
        ):
            reason = torch.where(flag, torch.full_like(reason, REASON_CODE[name]), reason)
        return StopDecision(stop=patience | threshold | divergence | non_finite, reason=reason)

    def finalize(self, params):
        return self.best.restore(self.s.restore & self.s.has_best, params)

    def report(self):
        enabled = self.s.enabled
        return {
            "best_epoch": torch.where(enabled & self.s.has_best, self.s.best_epoch, -1),
            "restored": enabled & self.s.restore & self.s.has_best,
        }

    def select(self, index):
        return EarlyStoppingPiece(self.monitors, self.s.select(index), self.best.select(index))
