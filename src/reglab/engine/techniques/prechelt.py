"""Prechelt's stopping criteria (L. Prechelt, "Early Stopping — But When?", 1998), per member.

With ``E_va(t)`` the monitored validation loss after epoch t (1-based), ``E_opt(t)`` its minimum so
far and ``E_tr`` the training loss:

- generalization loss ``GL(t) = 100 * (E_va(t) / E_opt(t) - 1)``;
  **GL_alpha** stops after the first epoch with ``GL(t) > alpha``;
- training progress over a strip of k epochs ending at t,
  ``P_k(t) = 1000 * (sum of the strip's E_tr / (k * min of the strip's E_tr) - 1)``;
  **PQ_alpha** stops after the first end of a strip (t a multiple of k) with ``GL(t) / P_k(t) > alpha``;
- **UP_s** stops after the end of a strip when the validation loss rose (compared with the end of
  the previous strip) at the ends of s successive strips.

``restore_best_weights`` ends a member with its weights of the epoch with the lowest ``E_va``.
The stop reason is ``GL``, ``PQ`` or ``UP``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import checks
from ..lazy import torch
from ..pieces import REASON_CODE, MemberState, Piece, StopDecision, member_column
from ..registry import register
from ..technique import Technique, setting
from .early_stopping import BestWeights

CRITERIA = ("GL", "PQ", "UP")


@register
@dataclass(frozen=True)
class Prechelt(Technique):
    """Prechelt's GL, PQ and UP stopping criteria. A table: ``[variant.prechelt]``."""

    criterion: str = setting("GL", checks.choice_rule(CRITERIA), "GL (generalization loss), PQ (its quotient by training progress) or UP (successive rises)")
    alpha: float = setting(5.0, checks.POSITIVE, "GL's and PQ's threshold")
    strips: int = setting(3, checks.integer_rule(lo=1), "UP's s: successive strips with a rise")
    strip: int = setting(5, checks.integer_rule(lo=1), "k, the strip length in epochs (PQ, UP)")
    monitor: str = setting("val_loss", checks.TEXT, "the validation loss watched")
    restore_best_weights: bool = setting(False, checks.BOOL, "end with the weights of the epoch with the lowest monitored loss")
    name = "prechelt"
    compiled = "epochs"  # acts between epochs: its piece runs on either engine
    table = True
    reference = "Prechelt 1998, Early Stopping - But When?; no Keras counterpart"
    report = frozenset({"stopping"})
    needs_validation = True
    stop_reasons = CRITERIA

    @classmethod
    def neutral(cls):
        return cls(alpha=1e30)  # GL never exceeds it

    def check_logs(self, available_logs: dict[str, str]) -> None:
        """The monitor must be a validation loss the history holds (Prechelt's E_va)."""
        losses = [n for n, d in available_logs.items() if d == "min" and n.endswith("loss") and n != "loss"]
        if self.monitor not in losses:
            checks.choice("prechelt.monitor", self.monitor, losses or ["val_loss (needs validation data)"])

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        for s in settings:
            if s is not None:
                s.check_logs(available_logs)
        rows = [s or Prechelt() for s in settings]
        monitors = sorted({s.monitor for s in settings if s is not None})
        col = lambda values, dtype=torch.float32: member_column(values, device, dtype)  # noqa: E731
        k_max = max(s.strip for s in rows)
        state = PrecheltState(
            enabled=col([s is not None for s in settings], torch.bool),
            criterion=col([CRITERIA.index(s.criterion) for s in rows], torch.int64),
            alpha=col([s.alpha for s in rows]),
            strips=col([s.strips for s in rows], torch.int64),
            strip=col([s.strip for s in rows], torch.int64),
            restore=col([bool(s and s.restore_best_weights) for s in settings], torch.bool),
            monitor_index=col([monitors.index(s.monitor) if s.monitor in monitors else 0 for s in rows], torch.int64),
            # Running state.
            best=col([math.inf] * len(rows)),
            best_epoch=col([-1] * len(rows), torch.int64),
            window=torch.full((len(rows), k_max), math.nan, device=device),  # last k_max training losses
            last_strip_value=col([math.nan] * len(rows)),
            rises=col([0] * len(rows), torch.int64),
        )
        return PrecheltPiece(monitors, state, BestWeights())


@dataclass
class PrecheltState(MemberState):
    """Every member's settings as tensors and its running state: the best validation loss, the window of training losses, the successive rises."""

    enabled: torch.Tensor
    criterion: torch.Tensor
    alpha: torch.Tensor
    strips: torch.Tensor
    strip: torch.Tensor
    restore: torch.Tensor
    monitor_index: torch.Tensor
    best: torch.Tensor
    best_epoch: torch.Tensor
    window: torch.Tensor
    last_strip_value: torch.Tensor
    rises: torch.Tensor


class PrecheltPiece(Piece):
    def __init__(self, monitors: list[str], state: PrecheltState, best: BestWeights):
        self.monitors, self.s, self.best = monitors, state, best
        self.any_restore = bool(state.restore.any())

    def on_epoch_end(self, epoch, logs, params) -> StopDecision:
        s = self.s
        values = torch.stack([logs[m] for m in self.monitors])
        e_va = values.gather(0, s.monitor_index.view(1, -1)).squeeze(0)
        improved = s.enabled & (e_va < s.best)
        s.best = torch.where(improved, e_va, s.best)
        s.best_epoch = torch.where(improved, torch.full_like(s.best_epoch, epoch), s.best_epoch)
        if self.any_restore:
            self.best.update(improved & s.restore, params)
        gl = 100.0 * (e_va / s.best - 1.0)

        # The training strip: the last k training losses of each member (k may differ by member).
        window = torch.cat([s.window[:, 1:], logs["loss"].view(-1, 1)], dim=1)
        s.window = window
        k_max = window.shape[1]
        in_strip = torch.arange(k_max, device=window.device).view(1, -1) >= (k_max - s.strip).view(-1, 1)
        strip_sum = torch.where(in_strip, window, 0.0).sum(1)
        strip_min = torch.where(in_strip, window, math.inf).amin(1)
        progress = 1000.0 * (strip_sum / (s.strip * strip_min) - 1.0)
        strip_end = ((epoch + 1) % s.strip) == 0

        rose = strip_end & (e_va > s.last_strip_value)
        s.rises = torch.where(strip_end, torch.where(rose, s.rises + 1, 0), s.rises)
        s.last_strip_value = torch.where(strip_end, e_va, s.last_strip_value)

        c = s.criterion
        stop_gl = (c == 0) & (gl > s.alpha)
        stop_pq = (c == 1) & strip_end & (gl / progress > s.alpha)
        stop_up = (c == 2) & (s.rises >= s.strips)
        reason = torch.zeros_like(c)
        for flag, name in ((stop_gl, "GL"), (stop_pq, "PQ"), (stop_up, "UP")):
            reason = torch.where(flag, REASON_CODE[name], reason)
        return StopDecision(stop=s.enabled & (stop_gl | stop_pq | stop_up), reason=reason)

    def finalize(self, params):
        return self.best.restore(self.s.restore & (self.s.best_epoch >= 0), params)

    def report(self):
        return {
            "best_epoch": torch.where(self.s.enabled, self.s.best_epoch, -1),
            "restored": self.s.restore & (self.s.best_epoch >= 0),
        }

    def select(self, index):
        return PrecheltPiece(self.monitors, self.s.select(index), self.best.select(index))
