"""The training loop: Keras's ``fit`` for a whole population at once.

Read it top to bottom: every epoch each member reshuffles its rows (its own key), walks through
``batch_size`` batches (the last one smaller), takes one optimizer step per batch, then evaluates
on the validation rows and lets the stopping rules decide. Members that stop are taken out of the
population, with their final weights, so they take no further update of any kind and cost nothing.

Techniques enter only through the hooks of :mod:`reglab.engine.pieces`; this file names none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from . import arrays, checks, rng
from .losses import LOSS_NAMES, METRICS_FOR_TASK, make_loss, make_metric, member_mean, member_sum
from .members import Member
from .model import Architecture, forward, gradients, init_params, output_activation
from .optimizers import make_optimizer
from .paths import member_engine
from .pieces import REASON_CODE, STOP_REASONS, StepContext, loss_targets, stack_pieces, total_penalty
from .results import TrainResult, logits_for
from .stacked import Stacked
from .technique import check_member

if TYPE_CHECKING:  # pragma: no cover
    from .compiled import CompiledPopulation

EpochCallback = Callable[[int, int], None]


def train(arch: Architecture, members: Sequence[Member], x, y, *, on_epoch_end: EpochCallback | None = None, **settings) -> TrainResult:
    """Train every member for up to ``epochs`` epochs, like ``model.fit`` on each, all at once.

    ``x`` is ``(N, n_inputs)`` shared by all members or ``(K, N, n_inputs)`` one set per member
    (e.g. a different split per seed); ``y`` likewise. ``settings`` are :class:`Trainer`'s
    keyword arguments: ``epochs`` (required), ``batch_size=32``, ``validation_data=(x_val,
    y_val)`` or ``validation_split`` (Keras's: the last fraction of the rows as given) for the
    ``val_*`` history, ``optimizer="adam"``, ``loss``, ``metrics``, ``clip_probabilities``,
    ``device``, ``initial_params``, ``engine`` (``"auto"``, ``"compiled"`` or ``"eager"``: see
    :mod:`reglab.engine.paths`). ``on_epoch_end(epoch, n_still_training)`` is called after each
    epoch (on the compiled engine, after the call that trained it); members on both engines train
    as two populations, one after the other, each reporting its own epochs and members.

    The loop of a :class:`Trainer`, which does the same one epoch at a time.
    """
    members = list(members)
    device = torch.device(settings.get("device", "cpu"))
    groups = _by_engine(settings.get("engine", "auto"), members, arch, device)
    if len(groups) <= 1:
        return _train_one(arch, members, x, y, on_epoch_end, settings)
    # Members on both engines (a technique without a compiled form): each group trains alone,
    # which changes no member's bits, and the results are put back in the members' order. Each
    # array is the members' own (K, N, ...) or shared, each on its own, as the Trainer reads them.
    K = len(members)
    X = arrays.features("x", x, arch, K)
    Y = arrays.targets("y", y, arch, K, X)
    validation = settings.get("validation_data")
    if isinstance(validation, (tuple, list)) and len(validation) == 2:
        Xv = arrays.features("validation_data x", validation[0], arch, K)
        validation = (Xv, arrays.targets("validation_data y", validation[1], arch, K, Xv))
    pick = lambda t, index: t[index] if t.dim() == 3 else t  # noqa: E731
    parts = []
    for path, index in groups.items():
        part = {**settings, "engine": path}
        if settings.get("initial_params") is not None:
            part["initial_params"] = [p[index] for p in settings["initial_params"]]
        if isinstance(validation, tuple):
            part["validation_data"] = tuple(pick(t, index) for t in validation)
        parts.append((index, _train_one(arch, [members[i] for i in index], pick(X, index), pick(Y, index), on_epoch_end, part)))
    return _merged(arch, members, parts, device)


def _train_one(arch, members, x, y, on_epoch_end, settings) -> TrainResult:
    trainer = Trainer(arch, members, x, y, **settings)
    while not trainer.done:
        first = trainer.epoch
        n_training = trainer.advance()
        if on_epoch_end is not None:
            for epoch in range(first, trainer.epoch):
                on_epoch_end(epoch, n_training)
    return trainer.result()


def _merged(arch: Architecture, members: list[Member], parts: list[tuple[list[int], TrainResult]], device: torch.device) -> TrainResult:
    """One result from the results of groups of ``members`` (``(positions, result)`` each)."""
    order = np.argsort(np.concatenate([index for index, _ in parts]))
    results = [r for _, r in parts]
    first = results[0]
    keys = sorted({key for r in results for key in r.reports})
    reasons = [reason for r in results for reason in r.stop_reason]

    def report(r, key):
        if key in r.reports:
            return r.reports[key]
        like = next(q.reports[key] for q in results if key in q.reports)
        return np.full(len(r.members), -1 if like.dtype.kind in "iu" else False, dtype=like.dtype)

    pieces = stack_pieces([m.techniques for m in members], arch, device, _log_directions(first.metrics, list(first.history)))
    return TrainResult(
        arch=arch,
        members=members,
        params=[torch.cat([r.params[j] for r in results])[torch.from_numpy(order)] for j in range(len(first.params))],
        history={name: np.concatenate([r.history[name] for r in results])[order] for name in first.history},
        epochs_run=np.concatenate([r.epochs_run for r in results])[order],
        stop_reason=[reasons[i] for i in order],
        reports={key: np.concatenate([report(r, key) for r in results])[order] for key in keys},
        loss_fn=first.loss_fn,
        metrics=first.metrics,
        penalty_pieces=[p for p in pieces if p.implements("penalty")],
        target_pieces=[p for p in pieces if p.implements("targets")],
    )


class Trainer:
    """A population in training, advanced one epoch at a time by :meth:`step`.

    Between epochs it shows where training stands: :attr:`params` (every member's current
    weights), :meth:`history`, :attr:`epochs_run`, :attr:`stop_reason` and :meth:`predict`.
    Reading them changes nothing: pausing after any epoch and continuing gives the same bits as
    :func:`train`, which is this loop run to the end. Arguments as :func:`train`'s.

    >>> import torch
    >>> from reglab.engine import Architecture, Member
    >>> t = Trainer(Architecture(n_inputs=2, hidden=(4,)), [Member(seed=0), Member(seed=1)],
    ...             torch.zeros(8, 2), torch.zeros(8), epochs=3)
    >>> t.step(), t.epoch, t.done
    (2, 1, False)
    >>> t.history()["loss"].shape
    (2, 1)
    >>> while not t.done:
    ...     _ = t.step()
    >>> t.result().epochs_run.tolist()
    [3, 3]
    """

    def __init__(
        self,
        arch: Architecture,
        members: Sequence[Member],
        x,
        y,
        *,
        epochs: int,
        batch_size: int = 32,
        validation_data: tuple | None = None,
        validation_split: float = 0.0,
        optimizer="adam",
        loss: str | None = None,
        metrics: Sequence[str] | None = None,
        clip_probabilities: bool = True,
        device: str | torch.device = "cpu",
        initial_params: list[torch.Tensor] | None = None,
        engine: str = "auto",
    ) -> None:
        members = list(members)
        if not members or not all(isinstance(m, Member) for m in members):
            checks.fail("members", members, "a non-empty list of Member")
        K = len(members)
        self.arch, self.members = arch, members
        self.epochs = checks.integer("epochs", epochs, lo=1)
        self.batch_size = checks.integer("batch_size", batch_size, lo=1)
        checks.number("validation_split", validation_split, lo=0.0, hi=1.0, hi_open=True)
        self.device = device = torch.device(device)
        self.opt = make_optimizer(optimizer)
        loss = loss or LOSS_NAMES[arch.task][0]
        self.loss_fn = make_loss(loss, arch.task, clip_probabilities)
        metric_names = list(metrics if metrics is not None else METRICS_FOR_TASK[arch.task])
        self.metric_list = [make_metric(name, arch.task) for name in metric_names]
        self.engine = _one_engine(engine, members, arch, device)

        self.X, self.Y, self.Xv, self.Yv = _arrays(arch, K, x, y, validation_data, validation_split, device)
        self.N = self.X.shape[-2]

        # History columns: loss, metrics, then the same on validation, as Keras names them; each
        # with its better direction (what a stopping rule may monitor).
        self.train_names = ["loss", *(m.name for m in self.metric_list)]
        self.names = self.train_names + ([f"val_{n}" for n in self.train_names] if self.Xv is not None else [])
        available = _log_directions(self.metric_list, self.names)

        for m in members:
            check_member(m.techniques, arch, available)
        self._pieces = stack_pieces([m.techniques for m in members], arch, device, available)
        self._hooks = _by_hook(self._pieces)
        # For the result's evaluate(); the loop's lists shrink as members stop.
        self._every_member_penalties, self._every_member_targets = self._hooks.penalty, self._hooks.targets

        self._seeds = torch.tensor([m.seed for m in members], dtype=torch.int64, device=device)
        self._lr = torch.tensor([m.learning_rate for m in members], dtype=torch.float32, device=device)
        if initial_params is None:
            params = init_params(arch, self._seeds, device)
        else:
            params = [p.detach().to(device=device, dtype=torch.float32).clone() for p in initial_params]
        if self.engine == "compiled":
            from .compiled import CompiledPopulation, check_between_epochs  # numba, only where it trains

            check_between_epochs(members, self._pieces)

            self._compiled: CompiledPopulation = CompiledPopulation(
                arch, members, self.X, self.Y, self.Xv, self.Yv, params, self.opt, loss, clip_probabilities, metric_names, self.batch_size
            )
            self._params = self._compiled.params
        else:
            # The parameters live in one buffer and the list is views of it: the optimizer updates
            # the population in one pass per operation, not one per layer (same arithmetic per
            # element, so the same bits).
            self._set_params(Stacked.of(params))
            self._opt_state = self.opt.init(self._stacked)

        # Where results land, indexed by the member's position in `members`.
        self._alive = torch.arange(K, device=device)
        self._history = torch.full((K, self.epochs, len(self.names)), float("nan"), device=device)
        self._final_params = [torch.zeros_like(p, requires_grad=False) for p in params]
        self._epochs_run = torch.zeros(K, dtype=torch.int64, device=device)
        self._reasons = torch.zeros(K, dtype=torch.int64, device=device)
        self._stopped = torch.zeros(K, dtype=torch.bool, device=device)
        self._reports: dict[str, torch.Tensor] = {}
        self._x_take = _taker(self.X)
        self._y_take = _taker(self.Y)
        self.epoch = 0  # epochs completed
        self.done = False

    # -- where training stands ---------------------------------------------------------------

    @property
    def training(self) -> np.ndarray:
        """``(K,)`` bool: the members still training."""
        return ~self._stopped.cpu().numpy()

    @property
    def epochs_run(self) -> np.ndarray:
        """``(K,)`` epochs each member has trained so far."""
        run = self._epochs_run.clone()
        run[self._alive] = self.epoch
        return run.cpu().numpy()

    @property
    def stop_reason(self) -> list[str | None]:
        """Why each member stopped (as :attr:`TrainResult.stop_reason`), None while it trains."""
        stopped = self._stopped.tolist()
        return [STOP_REASONS[c] if s else None for c, s in zip(self._reasons.tolist(), stopped)]

    @property
    def params(self) -> list[torch.Tensor]:
        """Every member's weights ``[W0, b0, ...]`` now: the current ones of members in training,
        the final ones (best restored where they restore) of members that stopped. A copy."""
        out = [p.clone() for p in self._final_params]
        if not self.done:
            for o, p in zip(out, self._params):
                o[self._alive] = p.detach()
        return out

    def history(self) -> dict[str, np.ndarray]:
        """``name -> (K, epochs so far)``, NaN after a member stopped."""
        return {name: self._history[:, : self.epoch, i].cpu().numpy().copy() for i, name in enumerate(self.names)}

    def reports(self) -> dict[str, np.ndarray]:
        """What the stopping rules report of the members that stopped (``best_epoch``,
        ``restored``), ``(K,)`` each, meaningful where :attr:`training` is False; a copy."""
        return {key: v.cpu().numpy().copy() for key, v in self._reports.items()}

    def predict(self, x) -> np.ndarray:
        """What each member outputs for ``x`` with its weights now (see :attr:`params`),
        ``(K, N, n_outputs)``, as :meth:`TrainResult.predict`."""
        return output_activation(self.arch, logits_for(self.arch, self.params, x)).cpu().numpy()

    def result(self) -> TrainResult:
        """The trained population; only once :attr:`done`."""
        if not self.done:
            raise RuntimeError(f"Trainer.result: training is not finished ({self.epoch} of {self.epochs} epochs); call step() until done")
        return TrainResult(
            arch=self.arch,
            members=self.members,
            params=[p.clone() for p in self._final_params],
            history={name: self._history[:, :, i].cpu().numpy().copy() for i, name in enumerate(self.names)},
            epochs_run=self._epochs_run.cpu().numpy().copy(),
            stop_reason=[STOP_REASONS[c] for c in self._reasons.tolist()],
            reports={key: v.cpu().numpy().copy() for key, v in self._reports.items()},
            loss_fn=self.loss_fn,
            metrics=self.metric_list,
            penalty_pieces=self._every_member_penalties,
            target_pieces=self._every_member_targets,
        )

    # -- one epoch -----------------------------------------------------------------------------

    def step(self) -> int:
        """Train one epoch (every member still training); returns how many still train after it."""
        return self.advance(1)

    def advance(self, max_epochs: int | None = None) -> int:
        """Train as many epochs as the engine takes in one call, at most ``max_epochs``: one on
        the eager engine or while a stopping rule decides between epochs; on the compiled one,
        about a fifth of a second's worth. Returns how many members still train after them.
        How training is cut into calls changes no bit."""
        if self.done:
            raise RuntimeError(f"Trainer.step: training is finished ({self.epoch} epochs)")
        remaining = self.epochs - self.epoch if max_epochs is None else min(max_epochs, self.epochs - self.epoch)
        if self.engine == "eager":
            logs, trained = self._eager_epoch().unsqueeze(1), None
        else:
            n = 1 if self._hooks.on_epoch_end else self._compiled.epochs_per_call(remaining)
            hist, trained = self._compiled.run(self.epoch, n)
            logs = torch.from_numpy(hist).to(self.device)
        with torch.no_grad():
            return self._end_epochs(logs, trained)

    def _eager_epoch(self) -> torch.Tensor:
        """One epoch of the eager engine: ``(k, columns)``, the logs of the members in training."""
        epoch, N, batch_size, device = self.epoch, self.N, self.batch_size, self.device
        penalty_pieces, hidden_pieces, target_pieces, before_pieces, update_pieces, _ = self._hooks
        params, opt, opt_state, alive, seeds, lr = self._params, self.opt, self._opt_state, self._alive, self._seeds, self._lr
        loss_fn, metric_list = self.loss_fn, self.metric_list
        k = len(alive)
        order = rng.permutations(seeds, epoch, N)
        epoch_keys = rng.EpochKeys(seeds, epoch, -(-N // batch_size))
        sums = torch.zeros(k, len(self.train_names), device=device)
        for step, start in enumerate(range(0, N, batch_size)):
            rows = order[:, start : start + batch_size]
            xb, yb = self._x_take(rows, alive), self._y_take(rows, alive)
            ctx = StepContext(seeds=seeds, learning_rate=lr, epoch=epoch, step=step, epoch_keys=epoch_keys)
            hook = _hidden_hook(hidden_pieces, ctx) if hidden_pieces else None
            targets = loss_targets(target_pieces, yb)
            grads = self._grads.views
            with torch.no_grad():
                logits, batch_loss = gradients(self.arch, params, xb, lambda z: member_mean(loss_fn(z, targets)), grads, hook)
            pen = total_penalty(penalty_pieces, params)
            if pen is not None:
                batch_loss = batch_loss + pen
                for piece in penalty_pieces:
                    piece.add_penalty_gradient(params, grads)
            if before_pieces:
                with torch.no_grad():
                    for piece in before_pieces:
                        piece.before_update(params, ctx)
            opt.step(self._stacked, self._grads, opt_state, lr)
            if update_pieces:
                with torch.no_grad():
                    for piece in update_pieces:
                        piece.after_update(params, ctx)
            # Keras's running means: the loss weighted by batch size, metrics summed per sample.
            with torch.no_grad():
                nb = rows.shape[1]
                cols = [batch_loss * nb] + [member_sum(m.per_sample(logits, yb)) for m in metric_list]
                sums += torch.stack(cols, dim=1)

        with torch.no_grad():
            logs_row = sums / N
            if self.Xv is not None:
                val = _evaluate(self.arch, params, self.Xv, self.Yv, alive, loss_fn, metric_list, penalty_pieces, target_pieces)
                logs_row = torch.cat([logs_row, val], dim=1)
        return logs_row

    def _end_epochs(self, logs: torch.Tensor, trained: np.ndarray | None) -> int:
        """After ``n`` epochs of the members in training (``logs`` ``(k, n, columns)``; ``trained``
        the epochs each trained, fewer where its loss stopped being finite; None: all ``n``):
        their history, then who stops, with what (one epoch: the stopping rules decide too)."""
        epoch, alive, device = self.epoch, self._alive, self.device
        k, n = logs.shape[0], logs.shape[1]
        self._history[alive, epoch : epoch + n] = logs
        if n == 1:
            logs_row = logs[:, 0]
            logs_by_name = {name: logs_row[:, i] for i, name in enumerate(self.names)}
            # Isolation: a member whose loss is no longer finite stops, whatever its settings.
            losses = logs_row[:, [i for i, name in enumerate(self.names) if name.endswith("loss")]]
            stop = ~torch.isfinite(losses).all(dim=1)
            reason = torch.where(stop, REASON_CODE["non_finite"], 0)
            for piece in self._hooks.on_epoch_end:
                decision = piece.on_epoch_end(epoch, logs_by_name, self._params)
                reason = torch.where(~stop & decision.stop, decision.reason, reason)
                stop = stop | decision.stop
            ran = torch.full((k,), epoch + 1, dtype=torch.int64, device=device)
        else:  # the kernel stopped the members whose loss was no longer finite
            trained_t = torch.from_numpy(trained).to(device)
            stop = trained_t < n
            reason = torch.where(stop, REASON_CODE["non_finite"], 0)
            ran = epoch + trained_t

        n_stopped = int(stop.sum())  # the one host sync per call
        self.epoch = epoch + n
        self.done = self.epoch == self.epochs or n_stopped == k
        if self.done:
            self._finish(torch.arange(k, device=device), reason, torch.where(stop, ran, self.epoch))
        elif n_stopped:
            # Stopped members leave the population with everything that belongs to them.
            rows = torch.nonzero(stop).flatten()
            self._finish(rows, reason, ran)
            keep = torch.nonzero(~stop).flatten()
            self._alive, self._seeds, self._lr = alive[keep], self._seeds[keep], self._lr[keep]
            if self.engine == "compiled":
                self._compiled.select(keep.cpu().numpy())
                self._params = self._compiled.params
            else:
                self._set_params(self._stacked.select(keep))
                self._opt_state = self.opt.select(self._opt_state, keep)
            self._pieces = [p.select(keep) for p in self._pieces]
            self._hooks = _by_hook(self._pieces)
        return 0 if self.done else len(self._alive)

    def _set_params(self, stacked: Stacked) -> None:
        """Parameters in one buffer, so that the optimizer updates all layers at once; gradients
        likewise, written there by the backward pass (:func:`~reglab.engine.model.gradients`)."""
        self._stacked = stacked
        self._params = stacked.views
        self._grads = Stacked.zeros(stacked.views)

    def _finish(self, rows: torch.Tensor, reason: torch.Tensor, ran: torch.Tensor) -> None:
        """Store the final state of the members at ``rows`` (positions in the current population),
        which trained ``ran[k]`` epochs and stopped for ``reason[k]``."""
        finished = [p.detach() for p in self._params]
        for piece in self._hooks.on_epoch_end:
            finished = piece.finalize(finished)
        dest = self._alive[rows]
        for out, p in zip(self._final_params, finished):
            out[dest] = p[rows]
        self._epochs_run[dest] = ran[rows]
        self._reasons[dest] = reason[rows]
        self._stopped[dest] = True
        merged: dict[str, torch.Tensor] = {}
        for piece in self._pieces:  # two stopping rules report the same keys: the larger value (or) wins
            for key, value in piece.report().items():
                v = value[rows]
                merged[key] = v if key not in merged else (merged[key] | v if v.dtype == torch.bool else torch.maximum(merged[key], v))
        for key, v in merged.items():
            if key not in self._reports:
                self._reports[key] = torch.zeros(len(self.members), dtype=v.dtype, device=self.device)
            self._reports[key][dest] = v


def _arrays(arch: Architecture, K: int, x, y, validation_data, validation_split: float, device: torch.device) -> tuple:
    """Training and validation data as float32 tensors on the device, ``(N, C)`` shared by every
    member or ``(K, N, C)`` one set each: ``(X, Y, X_val, Y_val)``, the validation pair None
    without validation. Fresh, aligned copies: BLAS kernels may round differently for a view that
    starts mid-row, and a member's bits must not depend on where its rows happen to sit."""
    X = arrays.features("x", x, arch, K)
    Y = arrays.targets("y", y, arch, K, X)
    arrays.check_rows("x", X, "y", Y, K)
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            checks.fail("validation_data", type(validation_data).__name__, "a pair (x_val, y_val)")
        Xv = arrays.features("validation_data x", validation_data[0], arch, K)
        Yv = arrays.targets("validation_data y", validation_data[1], arch, K, Xv)
        arrays.check_rows("validation_data x", Xv, "validation_data y", Yv, K)
    elif validation_split > 0:
        X, Y, Xv, Yv = arrays.keras_validation_split(X, Y, validation_split)
    else:
        return X.to(device).clone(), Y.to(device).clone(), None, None
    return X.to(device).clone(), Y.to(device).clone(), Xv.to(device).clone(), Yv.to(device).clone()


def _log_directions(metrics, names: list[str]) -> dict[str, str]:
    """Each history column's better direction (what a stopping rule may monitor)."""
    directions = {"loss": "min", **{m.name: m.direction for m in metrics}}
    return {name: directions[name.removeprefix("val_")] for name in names}


def _by_engine(engine: str, members: Sequence[Member], arch: Architecture, device: torch.device) -> dict[str, list[int]]:
    """The members' positions by the engine each takes, deciding by its own settings (what is not
    a Member is left to the Trainer's check, under the engine asked for)."""
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        path = member_engine(engine, m.techniques, arch, device.type) if isinstance(m, Member) else engine
        groups.setdefault(path, []).append(i)
    return groups


def _one_engine(engine: str, members: Sequence[Member], arch: Architecture, device: torch.device) -> str:
    """The engine every member takes; one per population."""
    engines = list(_by_engine(engine, members, arch, device))
    if len(engines) > 1:
        raise ValueError(f"engine: some members train compiled and some eager (engine={engine!r}); train() trains each group apart, or pass engine='eager'")
    return engines[0]


class _Hooks(NamedTuple):
    """The pieces that implement each hook the loop calls."""

    penalty: list
    hidden: list
    targets: list
    before_update: list
    after_update: list
    on_epoch_end: list


def _by_hook(pieces) -> _Hooks:
    return _Hooks(*([p for p in pieces if p.implements(hook)] for hook in _Hooks._fields))


def _taker(t: torch.Tensor):
    """Rows ``(k, B)`` of each member from shared ``(N, C)`` or per-member ``(K, N, C)`` data."""
    if t.dim() == 2:
        return lambda rows, alive: t[rows]
    return lambda rows, alive: t[alive.view(-1, 1), rows]


def _hidden_hook(hidden_pieces, ctx):
    def hook(h, layer):
        for piece in hidden_pieces:
            h = piece.hidden(h, layer, ctx)
        return h

    return hook


def _evaluate(arch, params, Xv, Yv, alive, loss_fn, metric_list, penalty_pieces, target_pieces) -> torch.Tensor:
    """Validation loss (with the penalties, as Keras reports it) and metrics, inference mode."""
    xv = Xv.expand(len(alive), *Xv.shape) if Xv.dim() == 2 else Xv[alive]
    yv = Yv.unsqueeze(0) if Yv.dim() == 2 else Yv[alive]
    logits = forward(arch, params, xv)
    val_loss = member_mean(loss_fn(logits, loss_targets(target_pieces, yv)))
    pen = total_penalty(penalty_pieces, params)
    if pen is not None:
        val_loss = val_loss + pen
    cols = [val_loss] + [member_mean(m.per_sample(logits, yv)) for m in metric_list]
    return torch.stack(cols, dim=1)
