"""The training loop: Keras's ``fit`` for a whole population at once.

Read it top to bottom: every epoch each member reshuffles its rows (its own key), walks through
``batch_size`` batches (the last one smaller), takes one optimizer step per batch, then evaluates
on the validation rows and lets the stopping rules decide. Members that stop are taken out of the
population, with their final weights, so they take no further update of any kind and cost nothing.

Techniques enter only through the hooks of :mod:`reglab.engine.pieces`; this file names none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from . import arrays, checks, rng
from .losses import LOSS_NAMES, METRICS_FOR_TASK, make_loss, make_metric, member_mean, member_sum
from .members import Member
from .model import Architecture, GradientBuffers, forward, init_params
from .optimizers import make_optimizer
from .pieces import REASON_CODE, STOP_REASONS, StepContext, stack_pieces, total_penalty
from .results import TrainResult

EpochCallback = Callable[[int, int], None]


def train(
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
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """Train every member for up to ``epochs`` epochs, like ``model.fit`` on each, all at once.

    ``x`` is ``(N, n_inputs)`` shared by all members or ``(K, N, n_inputs)`` one set per member
    (e.g. a different split per seed); ``y`` likewise. ``validation_data=(x_val, y_val)`` or
    ``validation_split`` (Keras's: the last fraction of the rows as given) gives the ``val_*``
    history. ``on_epoch_end(epoch, n_still_training)`` is called after each epoch.
    """
    members = list(members)
    if not members or not all(isinstance(m, Member) for m in members):
        checks.fail("members", members, "a non-empty list of Member")
    K = len(members)
    epochs = checks.integer("epochs", epochs, lo=1)
    batch_size = checks.integer("batch_size", batch_size, lo=1)
    checks.number("validation_split", validation_split, lo=0.0, hi=1.0, hi_open=True)
    device = torch.device(device)
    opt = make_optimizer(optimizer)
    loss_fn = make_loss(loss or LOSS_NAMES[arch.task][0], arch.task, clip_probabilities)
    metric_list = [make_metric(name, arch.task) for name in (metrics if metrics is not None else METRICS_FOR_TASK[arch.task])]
    for m in members:
        for t in m.techniques:
            t.validate(arch)

    # Data: float32 tensors on the device; (N, C) shared or (K, N, C) per member.
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
        Xv = Yv = None
    # Fresh, aligned copies: BLAS kernels may round differently for a view that starts mid-row,
    # and a member's bits must not depend on where its rows happen to sit in memory.
    X, Y = X.to(device).clone(), Y.to(device).clone()
    if Xv is not None:
        Xv, Yv = Xv.to(device).clone(), Yv.to(device).clone()
    N = X.shape[-2]

    # History columns: loss, metrics, then the same on validation, as Keras names them.
    train_names = ["loss"] + [m.name for m in metric_list]
    names = train_names + ([f"val_{n}" for n in train_names] if Xv is not None else [])
    directions = {"loss": "min", **{m.name: m.direction for m in metric_list}}
    available = {n: directions[n.removeprefix("val_")] for n in names}

    pieces = stack_pieces([m.techniques for m in members], arch, device, available)
    penalty_pieces, hidden_pieces, before_pieces, update_pieces, stop_pieces = _by_hook(pieces)
    every_member_penalties = penalty_pieces  # kept for the result's evaluate(); the loop's lists shrink as members stop

    seeds = torch.tensor([m.seed for m in members], dtype=torch.int64, device=device)
    lr = torch.tensor([m.learning_rate for m in members], dtype=torch.float32, device=device)
    if initial_params is None:
        params = init_params(arch, seeds, device)
    else:
        params = [p.detach().to(device=device, dtype=torch.float32).clone() for p in initial_params]
    for p in params:
        p.requires_grad_(True)
    opt_state = opt.init(params)

    # Where results land, indexed by the member's position in `members`.
    alive = torch.arange(K, device=device)
    history = torch.full((K, epochs, len(names)), float("nan"), device=device)
    final_params = [torch.zeros_like(p, requires_grad=False) for p in params]
    epochs_run = torch.zeros(K, dtype=torch.int64, device=device)
    reasons = torch.zeros(K, dtype=torch.int64, device=device)
    reports: dict[str, torch.Tensor] = {}

    def penalty(params):
        return total_penalty(penalty_pieces, params)

    def finish(rows: torch.Tensor, epoch: int, reason: torch.Tensor) -> None:
        """Store the final state of the members at `rows` (positions in the current population)."""
        finished = [p.detach() for p in params]
        for piece in stop_pieces:
            finished = piece.finalize(finished)
        dest = alive[rows]
        for out, p in zip(final_params, finished):
            out[dest] = p[rows]
        epochs_run[dest] = epoch + 1
        reasons[dest] = reason[rows]
        merged: dict[str, torch.Tensor] = {}
        for piece in pieces:  # two stopping rules report the same keys: the larger value (or) wins
            for key, value in piece.report().items():
                v = value[rows]
                merged[key] = v if key not in merged else (merged[key] | v if v.dtype == torch.bool else torch.maximum(merged[key], v))
        for key, v in merged.items():
            if key not in reports:
                reports[key] = torch.zeros(K, dtype=v.dtype, device=device)
            reports[key][dest] = v

    gradient_buffers = GradientBuffers()
    x_take = _taker(X)
    y_take = _taker(Y)
    for epoch in range(epochs):
        k = len(alive)
        order = rng.permutations(seeds, epoch, N)
        sums = torch.zeros(k, len(train_names), device=device)
        for step, start in enumerate(range(0, N, batch_size)):
            rows = order[:, start : start + batch_size]
            xb, yb = x_take(rows, alive), y_take(rows, alive)
            ctx = StepContext(seeds=seeds, learning_rate=lr, epoch=epoch, step=step)
            hook = _hidden_hook(hidden_pieces, ctx) if hidden_pieces else None
            logits = forward(arch, params, xb, hook, gradient_buffers)
            data_loss = member_mean(loss_fn(logits, yb))
            grads = list(torch.autograd.grad(data_loss.sum(), params))
            batch_loss = data_loss.detach()
            pen = penalty(params)
            if pen is not None:
                batch_loss = batch_loss + pen
                for piece in penalty_pieces:
                    piece.add_penalty_gradient(params, grads)
            if before_pieces:
                with torch.no_grad():
                    for piece in before_pieces:
                        piece.before_update(params, ctx)
            opt.step(params, grads, opt_state, lr)
            if update_pieces:
                with torch.no_grad():
                    for piece in update_pieces:
                        piece.after_update(params, ctx)
            # Keras's running means: the loss weighted by batch size, metrics summed per sample.
            with torch.no_grad():
                nb = rows.shape[1]
                cols = [batch_loss * nb] + [member_sum(m.per_sample(logits.detach(), yb)) for m in metric_list]
                sums += torch.stack(cols, dim=1)

        with torch.no_grad():
            logs_row = sums / N
            if Xv is not None:
                val = _evaluate(arch, params, Xv, Yv, alive, loss_fn, metric_list, penalty)
                logs_row = torch.cat([logs_row, val], dim=1)
            history[alive, epoch] = logs_row
            logs = {name: logs_row[:, i] for i, name in enumerate(names)}

            # Isolation: a member whose loss is no longer finite stops, whatever its settings.
            losses = logs_row[:, [i for i, n in enumerate(names) if n.endswith("loss")]]
            stop = ~torch.isfinite(losses).all(dim=1)
            reason = torch.where(stop, REASON_CODE["non_finite"], 0)
            for piece in stop_pieces:
                decision = piece.on_epoch_end(epoch, logs, params)
                reason = torch.where(~stop & decision.stop, decision.reason, reason)
                stop = stop | decision.stop

            n_stopped = int(stop.sum())  # the one host sync per epoch
            done = epoch == epochs - 1 or n_stopped == k
            if done:
                finish(torch.arange(k, device=device), epoch, reason)
            elif n_stopped:
                # Stopped members leave the population with everything that belongs to them.
                finish(torch.nonzero(stop).flatten(), epoch, reason)
                keep = torch.nonzero(~stop).flatten()
                alive, seeds, lr = alive[keep], seeds[keep], lr[keep]
                params = [p.detach()[keep].requires_grad_(True) for p in params]
                opt_state = opt.select(opt_state, keep)
                pieces = [p.select(keep) for p in pieces]
                penalty_pieces, hidden_pieces, before_pieces, update_pieces, stop_pieces = _by_hook(pieces)
        if on_epoch_end is not None:
            on_epoch_end(epoch, 0 if done else len(alive))
        if done:
            break

    return TrainResult(
        arch=arch,
        members=members,
        params=final_params,
        history={name: history[:, :, i].cpu().numpy() for i, name in enumerate(names)},
        epochs_run=epochs_run.cpu().numpy(),
        stop_reason=[STOP_REASONS[c] for c in reasons.tolist()],
        reports={key: v.cpu().numpy() for key, v in reports.items()},
        loss_fn=loss_fn,
        metrics=metric_list,
        penalty_pieces=every_member_penalties,
    )


def _by_hook(pieces):
    """The pieces that implement each hook the loop calls."""
    hooks = ("penalty", "hidden", "before_update", "after_update", "on_epoch_end")
    return tuple([p for p in pieces if p.implements(hook)] for hook in hooks)


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


def _evaluate(arch, params, Xv, Yv, alive, loss_fn, metric_list, penalty) -> torch.Tensor:
    """Validation loss (with the penalties, as Keras reports it) and metrics, inference mode."""
    xv = Xv.expand(len(alive), *Xv.shape) if Xv.dim() == 2 else Xv[alive]
    yv = Yv.unsqueeze(0) if Yv.dim() == 2 else Yv[alive]
    logits = forward(arch, params, xv)
    val_loss = member_mean(loss_fn(logits, yv))
    pen = penalty(params)
    if pen is not None:
        val_loss = val_loss + pen
    cols = [val_loss] + [member_mean(m.per_sample(logits, yv)) for m in metric_list]
    return torch.stack(cols, dim=1)
