"""Run an experiment: plan -> engine, one population chunk at a time -> run folder."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .data import standardizer
from .engine import Trainer
from .engine.technique import SummaryContext
from .plan import DEFAULT_MEMORY_BUDGET_MB, Plan, Population, engine_members, make_plan
from .spec import Experiment
from .store import RunFolder

if TYPE_CHECKING:  # distributed.py imports this module in its tasks
    from .distributed import Cluster, RayOptions

# progress(population_number, n_populations, n_members, epochs) -> on_epoch_end(epoch, n_training)
Progress = Callable[[int, int, int, int], Callable[[int, int], None]]


def _member_arrays(plan: Plan, population: Population, split: str):
    """x, y for one split of every member: shared 2-D arrays when all members use the same rows."""
    standardize = plan.experiment.spec.data.standardize
    X, y = plan.data.X, plan.data.y
    rows = [m.rows[split] for m in population.members]
    same = all(np.array_equal(rows[0], r) for r in rows[1:])
    members = population.members[:1] if same else population.members

    def one(m, r):
        x = X[r]
        if standardize:  # fitted on the member's own training rows only
            mean, scale = standardizer(X, m.rows["train"])
            x = (x - mean) / scale
        return x

    xs = [one(m, m.rows[split]) for m in members]
    ys = [y[m.rows[split]] for m in members]
    if same:
        return xs[0], ys[0]
    return np.stack(xs), np.stack(ys)


def _metrics(task: str) -> list[str]:
    return ["loss", "accuracy"] if task != "regression" else ["loss", "mse", "mae"]


def summary_functions(experiment: Experiment) -> list[tuple[str, object]]:
    """``(technique name, function)`` for the summary columns of every technique some variant
    uses, each function once (several techniques share the weight statistics), by name."""
    used = {type(t) for v in experiment.spec.variant for t in experiment.techniques(v)}
    out: list[tuple[str, object]] = []
    for cls in sorted(used, key=lambda c: c.name):
        out += [(cls.name, fn) for fn in cls.summary if fn not in [f for _, f in out]]
    return out


def technique_columns(functions, context: SummaryContext) -> tuple[dict[str, list], dict[str, str]]:
    """The techniques' summary columns, and which technique gave each. A column another
    technique gave already would be overwritten for every member: refused."""
    columns: dict[str, list] = {}
    whose: dict[str, str] = {}
    for technique, fn in functions:
        for name, values in fn(context).items():
            if name in whose:
                raise ValueError(f"technique {technique!r}: its summary column {name!r} is technique {whose[name]!r}'s; give its columns names of their own")
            columns[name], whose[name] = values, technique
    return columns, whose


def _refuse_own_columns(row: dict, whose: dict[str, str]) -> None:
    """A technique's column named like one of the summary's own (``seed``, ``val_loss``...)."""
    for name in whose:
        if name in row:
            raise ValueError(f"technique {whose[name]!r}: its summary column {name!r} is reglab's own; give its columns names of their own")


def trainer_for(plan: Plan, population: Population, device: str = "cpu") -> tuple[Trainer, dict]:
    """The engine's trainer for one chunk, and every split's ``(x, y)``: what a run trains, and
    what the playground steps through epoch by epoch (so an exported file reproduces it)."""
    splits = ["train", "val"] + (["test"] if "test" in population.members[0].rows else [])
    arrays = {s: _member_arrays(plan, population, s) for s in splits}
    trainer = Trainer(
        plan.arch,
        engine_members(population),
        *arrays["train"],
        validation_data=arrays["val"],
        epochs=population.epochs,
        batch_size=population.batch_size,
        optimizer=population.optimizer,
        device=device,
    )
    return trainer, arrays


def part_name(population: Population) -> str:
    """The run folder's name for a chunk's part: its first member's number, unique in the plan."""
    return f"part-{population.members[0].id:06d}"


def run_population(plan: Plan, population: Population, device: str = "cpu", on_epoch_end=None):
    """Train one chunk; return its summary rows, history frame and weights."""
    trainer, arrays = trainer_for(plan, population, device)
    while not trainer.done:
        n_training = trainer.step()
        if on_epoch_end is not None:
            on_epoch_end(trainer.epoch - 1, n_training)
    result = trainer.result()
    splits = list(arrays)
    scores = {s: result.evaluate(*arrays[s]) for s in splits}
    # The techniques' own columns (exact zeros, MC dropout's scores...), for every member of the
    # population when any variant of the experiment uses the technique, so variants compare.
    context = SummaryContext(plan.arch, result, arrays[splits[-1]], splits[-1], list(plan.data.feature_names))
    extra, whose = technique_columns(summary_functions(plan.experiment), context)
    kfold = any(m.fold is not None for m in population.members)
    rows, frames, weights = [], [], {}
    best = result.best_epoch
    for k, m in enumerate(population.members):
        row = {"key": m.key, "variant": m.variant.name, "seed": m.seed}
        if kfold:
            row["fold"] = m.fold
        row.update(
            epochs_run=int(result.epochs_run[k]),
            best_epoch=int(best[k]),
            stop_reason=result.stop_reason[k],
            restored=bool(result.restored[k]),
        )
        for s in splits:
            for metric in _metrics(plan.arch.task):
                value = scores[s]["data_loss" if metric == "loss" else metric][k]
                row[f"{s}_{metric}"] = float(value)
        _refuse_own_columns(row, whose)
        row.update({name: values[k] for name, values in extra.items()})
        rows.append(row)
        n = int(result.epochs_run[k])
        frame = {"key": m.key, "variant": m.variant.name, "seed": m.seed}
        if kfold:
            frame["fold"] = m.fold
        frame["epoch"] = np.arange(n)
        for name, values in result.history.items():
            frame[name] = values[k, :n]
        frames.append(pd.DataFrame(frame))
        prefix = f"{m.variant.name}/seed={m.seed}" + (f"/fold={m.fold}" if m.fold is not None else "")
        for i, p in enumerate(result.params):
            kind = "kernel" if i % 2 == 0 else "bias"
            weights[f"{prefix}/{kind}_{i // 2}"] = p[k].detach().cpu().contiguous()
    return rows, pd.concat(frames, ignore_index=True), weights


def run_experiment(
    experiment: Experiment,
    out: str | Path,
    *,
    resume: bool = False,
    restart: bool = False,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str = "cpu",
    progress: Progress | None = None,
    ray: RayOptions | None = None,
) -> pd.DataFrame:
    """Train every member not already in ``out`` and assemble the summary; returns it. With
    ``ray``, the chunks train as tasks on a Ray cluster and this process writes their parts."""
    from .distributed import connected

    full = make_plan(experiment, memory_budget_mb)  # before any file is written: bad data fails here
    with ExitStack() as stack:
        cluster = stack.enter_context(connected(ray)) if ray is not None else None  # refusals before any file too
        folder = stack.enter_context(RunFolder.open(out, experiment, resume, full, restart=restart))  # locked until the summary is written
        finished = folder.finished_keys()
        todo = {m.key for m in full.members} - finished
        plan = make_plan(experiment, memory_budget_mb, only=todo) if finished else full
        if cluster is not None:
            _train_on_ray(plan, folder, cluster, device, progress)
        else:
            for number, population in enumerate(plan.populations, start=1):
                callback = progress(number, len(plan.populations), len(population.members), population.epochs) if progress else None
                rows, history, weights = run_population(plan, population, device, callback)
                folder.write_part(part_name(population), rows, history, weights)
        return folder.finalize([m.key for m in full.members])


def _train_on_ray(plan: Plan, folder: RunFolder, cluster: Cluster, device: str, progress: Progress | None) -> None:
    """The plan's populations, cut into chunks that fill the cluster, as Ray tasks; each chunk's
    bar appears when its first epochs come in."""
    from .pool import make_jobs

    jobs = make_jobs([plan], cluster.slots)
    bars: dict[int, Callable[[int, int], None]] = {}

    def update(n: int, epochs_done: int, n_training: int) -> None:
        if n not in bars:
            bars[n] = progress(n + 1, len(jobs), len(jobs[n].keys), jobs[n].epochs)  # type: ignore[misc]
        bars[n](epochs_done - 1, n_training)

    cluster.run([plan], jobs, device, update if progress else None, lambda n, part: folder.write_part(*part))
