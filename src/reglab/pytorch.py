"""Helpers for people who keep their own ``nn.Module`` and training loop.

- :class:`EarlyStopping`: Keras's early-stopping rule (the engine's own implementation), called
  once per epoch with the monitored value and the module; it says whether to stop and, with
  ``restore_best_weights``, puts the best epoch's weights back.
- :func:`penalty`: Keras's L1/L2 penalty over the weights of every ``nn.Linear`` and convolution
  (never biases), to add to the loss.
- :func:`mc_dropout_predict`: MC dropout, the mean and standard deviation of T passes with the
  module's dropout layers on and everything else in eval mode.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
>>> stop = EarlyStopping(patience=2, restore_best_weights=True)
>>> [stop(loss, net) for loss in (1.0, 0.9, 0.95, 0.97)]
[False, False, False, True]
>>> stop.best_epoch, stop.stopped_epoch
(1, 3)
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .engine import EarlyStopping as _Rule
from .engine import monitor as improvement

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class EarlyStopping:
    """``keras.callbacks.EarlyStopping``'s rule for a plain PyTorch loop (``mode`` "min" or "max";
    "auto" means "max" for a monitor named like an accuracy, else "min", as Keras guesses).

    Call it after every epoch: ``if stop(val_loss, model): break``. With ``restore_best_weights``
    the module gets the best epoch's weights back when it says stop, and :meth:`restore` does it
    at the end of a run that never stopped (Keras restores in both cases)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None, restore_best_weights=False, start_from_epoch=0):
        direction = improvement.direction("monitor", monitor, mode)
        self.rule = _Rule(
            monitor=monitor,
            min_delta=min_delta,
            patience=patience,
            mode=direction,
            baseline=baseline,
            restore_best_weights=False,  # the module's weights are kept here, not by the piece
            start_from_epoch=start_from_epoch,
            check_finite=False,
        )
        self.restore_best_weights = restore_best_weights
        self._piece = _Rule.stack([self.rule], None, torch.device("cpu"), {monitor: direction})
        self.epoch = -1
        self.best_state: dict | None = None
        self.stopped_epoch: int | None = None

    @property
    def best_epoch(self) -> int:
        return int(self._piece.s.best_epoch[0]) if bool(self._piece.s.has_best[0]) else -1

    @property
    def best(self) -> float:
        return float(self._piece.s.best[0])

    def __call__(self, value: float, module: nn.Module | None = None) -> bool:
        self.epoch += 1
        decision = self._piece.on_epoch_end(self.epoch, {self.rule.monitor: torch.tensor([float(value)])}, [])
        if self.restore_best_weights and module is not None and self.best_epoch == self.epoch:  # improved now
            self.best_state = copy.deepcopy(module.state_dict())
        stop = bool(decision.stop[0])
        if stop:
            self.stopped_epoch = self.epoch
            if module is not None:
                self.restore(module)
        return stop

    def restore(self, module: nn.Module) -> None:
        """Load the best epoch's weights into ``module`` (when ``restore_best_weights``)."""
        if self.restore_best_weights and self.best_state is not None:
            module.load_state_dict(self.best_state)


def penalty(module: nn.Module, l1: float = 0.0, l2: float = 0.0) -> torch.Tensor:
    """``l1 * sum(|w|) + l2 * sum(w**2)`` over the weights of every Linear and convolution layer of
    ``module`` (Keras's ``regularizers.L1L2`` on each kernel; biases are not penalised). Add it to
    the loss before ``backward()``."""
    if not (l1 >= 0 and l2 >= 0 and math.isfinite(l1) and math.isfinite(l2)):
        raise ValueError(f"penalty: l1 and l2 must be numbers >= 0, got l1={l1!r}, l2={l2!r}")
    terms = []
    for layer in module.modules():
        if isinstance(layer, _WEIGHTED):
            if l1:
                terms.append(l1 * layer.weight.abs().sum())
            if l2:
                terms.append(l2 * layer.weight.square().sum())
    return torch.stack(terms).sum() if terms else torch.zeros(())


@torch.no_grad()
def mc_dropout_predict(module: nn.Module, x: torch.Tensor, T: int = 50, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MC dropout (Gal & Ghahramani 2016): ``T`` forward passes with the module's dropout layers in
    training mode and every other layer in eval mode; returns the mean and standard deviation over
    the passes. ``seed`` makes the passes reproducible without touching the global generator."""
    if T < 1:
        raise ValueError(f"mc_dropout_predict: T must be an integer >= 1, got {T!r}")
    was_training = module.training
    module.eval()
    dropouts = [m for m in module.modules() if isinstance(m, _DROPOUT)]
    if not dropouts:
        raise ValueError("mc_dropout_predict: the module has no dropout layer (nn.Dropout...), so every pass would be the same")
    for m in dropouts:
        m.train()
    try:
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            outs = torch.stack([module(x) for _ in range(T)])
    finally:
        module.train(was_training)
    return outs.mean(0), outs.std(0, unbiased=False)
