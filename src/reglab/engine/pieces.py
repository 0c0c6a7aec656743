"""The contract between techniques and the training loop.

A *technique* (:mod:`reglab.engine.technique`) is a small, user-facing settings object (``Dropout(0.5)``, ``L1(1e-3)``,
``EarlyStopping(patience=20)``). Before training, the settings of one technique type across all
members of a population are *stacked* into one :class:`Piece` whose tensors have the member axis
first; a member without that technique gets a neutral setting that changes nothing, bit for bit
(a zero coefficient, a zero rate, a rule that never fires).

The training loop only calls the hooks below; it never names a technique:

- ``penalty(params)``: a (K,) tensor added to each member's loss (L1, L2), and
  ``add_penalty_gradient(params, grads)``: its gradient, added into ``grads`` in place. Keeping
  penalties out of autograd saves several passes over every kernel per step, and the arithmetic
  is the one autograd would do (``c * sign(w)``, ``(2c) * w``), so the bits are the same.
- ``hidden(h, layer, ctx)``: transform hidden activations at training time (dropout, noise);
  ``layer == -1`` is the input.
- ``targets(y)``: the targets the loss compares with (label smoothing), in training and
  evaluation alike, as a Keras loss's own argument would; metrics see the given targets.
- ``before_update(params, ctx)``: change parameters in place before the optimizer step, after the
  gradients were taken (decoupled weight decay, where Keras's optimizers apply it).
- ``after_update(params, ctx)``: change parameters in place after the optimizer step (constraints
  such as max-norm, proximal steps), where Keras applies variable constraints.
- ``on_epoch_end(epoch, logs, params)``: a :class:`StopDecision` (early stopping).
- ``finalize(params)``: the parameters a member ends with (restore best weights).
- ``select(index)``: the piece restricted to a subset of members (the loop drops stopped members).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import rng
from .architecture import Architecture
from .lazy import torch

if TYPE_CHECKING:  # pragma: no cover
    from .technique import Technique

# Stop reasons, by code. 0 means "still training" until the end, where it becomes "max_epochs";
# "non_finite" is the loop's own. Techniques add theirs when registered (codes live only in memory:
# results hold the names).
STOP_REASONS: list[str] = ["max_epochs", "non_finite"]
REASON_CODE: dict[str, int] = {name: code for code, name in enumerate(STOP_REASONS)}


def add_stop_reason(name: str) -> int:
    """The code of stop reason ``name``, which becomes known if it was not."""
    if name not in REASON_CODE:
        REASON_CODE[name] = len(STOP_REASONS)
        STOP_REASONS.append(name)
    return REASON_CODE[name]


@dataclass
class StepContext:
    """Where in training a hook is called: the counters that key all randomness."""

    seeds: torch.Tensor  # (K,) int64
    learning_rate: torch.Tensor  # (K,) float32
    epoch: int
    step: int
    epoch_keys: rng.EpochKeys | None = None  # the trainer's: every step's keys, derived once an epoch

    def noise_keys(self, stream: int, layer: int, rows: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """The keys of noise ``stream`` in ``layer`` at this step for the members at ``rows``:
        ``rng.derive_keys(seeds[rows], rng.STREAM_NOISE, stream, epoch, step, layer)``."""
        if self.epoch_keys is None:
            return rng.derive_keys(self.seeds[rows], rng.STREAM_NOISE, stream, self.epoch, self.step, layer)
        return self.epoch_keys.noise(stream, layer)[rows, self.step]


@dataclass
class MemberState:
    """A piece's per-member tensors by name, ``(K, ...)`` each (a subclass declares the fields):
    ``select(index)`` keeps the members at ``index``, as the loop does when members stop."""

    def select(self, index: torch.Tensor):
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


@dataclass
class StopDecision:
    stop: torch.Tensor  # (K,) bool
    reason: torch.Tensor  # (K,) int64 codes from STOP_REASONS; meaningful where stop is True


class Piece:
    """Base class of stacked techniques: every hook is a no-op until a subclass overrides it."""

    def penalty(self, params: list[torch.Tensor]) -> torch.Tensor | None:
        return None

    def add_penalty_gradient(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        return None

    def hidden(self, h: torch.Tensor, layer: int, ctx: StepContext) -> torch.Tensor:
        return h

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def before_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        return None

    def after_update(self, params: list[torch.Tensor], ctx: StepContext) -> None:
        return None

    def on_epoch_end(self, epoch: int, logs: dict[str, torch.Tensor], params: list[torch.Tensor]) -> StopDecision | None:
        return None

    def finalize(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        return params

    def report(self) -> dict[str, torch.Tensor]:
        """Per-member results worth keeping, e.g. ``best_epoch``."""
        return {}

    def select(self, index: torch.Tensor) -> Piece:
        raise NotImplementedError

    def implements(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(Piece, hook)


def total_penalty(pieces: list[Piece], params: list[torch.Tensor]) -> torch.Tensor | None:
    """The sum of the pieces' penalties per member, in piece order; None when no piece has one."""
    total = None
    for piece in pieces:
        term = piece.penalty(params)
        if term is not None:
            total = term if total is None else total + term
    return total


def loss_targets(pieces: list[Piece], y: torch.Tensor) -> torch.Tensor:
    """The targets the loss sees: ``y`` through every piece's ``targets`` hook, in piece order."""
    for piece in pieces:
        y = piece.targets(y)
    return y


class Inert(Piece):
    """The piece of a technique that acts outside training only (MC dropout acts at prediction)."""

    def select(self, index: torch.Tensor) -> Inert:
        return self


def member_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-member ``(K,)`` tensor shaped to broadcast against ``like`` ``(K, ...)``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def active_rows(values: torch.Tensor) -> torch.Tensor | None:
    """The members whose setting in ``values`` (K,) is not neutral (> 0), or None when all are."""
    active = values > 0
    return None if bool(active.all()) else torch.nonzero(active).flatten()


def on_rows(h: torch.Tensor, rows: torch.Tensor | None, fn) -> torch.Tensor:
    """``fn(h[rows], rows)`` for the members at ``rows``; the others' rows pass through untouched.

    ``rows`` None means every member (``fn(h, slice(None))``). A technique that only some members
    of a population use thus costs nothing for the others, and their values stay exactly theirs.
    """
    if rows is None:
        return fn(h, slice(None))
    return h.index_put((rows,), fn(h[rows], rows))


def member_column(values: list[float], device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One value per member, a ``(K,)`` tensor (float32 unless ``dtype`` says otherwise)."""
    return torch.tensor(values, dtype=dtype or torch.float32, device=device)


def stack_pieces(
    technique_lists: list[tuple[Technique, ...]],
    arch: Architecture,
    device: torch.device,
    available_logs: dict[str, str],
) -> list[Piece]:
    """Group every member's techniques by type and stack each type into one piece.

    Pieces come in a fixed order (by technique name), whoever else is in the population, so that
    e.g. the order in which penalties are summed never depends on the other members.
    """
    order: list[type[Technique]] = []
    for techniques in technique_lists:
        seen = set()
        for t in techniques:
            kind = type(t)
            if kind in seen:
                raise ValueError(f"techniques: each technique may appear once per member, got {kind.name} twice")
            seen.add(kind)
            if kind not in order:
                order.append(kind)
    pieces = []
    for kind in sorted(order, key=lambda k: k.name):
        per_member = [next((t for t in ts if type(t) is kind), None) for ts in technique_lists]
        pieces.append(kind.stack(per_member, arch, device, available_logs))
    return pieces
