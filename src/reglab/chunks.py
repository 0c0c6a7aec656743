"""A chunk of a plan: which members train together, how plans are cut into chunks, and how one
chunk trains into a :class:`Part` of its run folder (its summary rows, history and weights).

:mod:`reglab.runner` cuts plans into chunks and hands :func:`train_chunk` to an executor
(:mod:`reglab.executors`: here, on worker processes, on Ray); the playground steps a chunk's
trainer (:func:`trainer_for`) one epoch at a time. This module imports none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .data import standardizer
from .engine import Trainer
from .engine.architecture import Architecture, layers
from .engine.technique import SummaryContext
from .plan import Plan, Population, engine_members

# Per optimizer step, the fixed cost of a population, in units of one parameter of one member
# (measured on a 2-core CPU: ~2 ms of dispatch per step against ~7 ns per member-parameter).
STEP_OVERHEAD = 250_000
# The compiled engine has no per-step dispatch: a member's step costs its parameters plus a little
# (its loss, its row order), and about half what the eager engine's units cost (measured on the
# L1 notebook's workload, 2 cores, 2026-12-08: 6,800 against 3,500 model-epochs/s at K = 100).
COMPILED_MEMBER_STEP = 2_000
COMPILED_SHARE = 0.5


@dataclass
class Chunk:
    """Members of one population of one plan that train together (one task of an executor),
    written into the plan's run folder as one part."""

    run: int  # which plan
    keys: list[str]  # its members
    epochs: int
    cost: float
    label: str
    population: Population  # what trains


@dataclass
class Part:
    """What one chunk wrote into its run folder: its name there, a summary row per member, the
    per-epoch history and the final weights (by ``variant/seed=S[/fold=F]/kernel_i``)."""

    name: str
    rows: list[dict]
    history: pd.DataFrame
    weights: dict[str, Any]


def population_cost(plan: Plan, population: Population) -> float:
    """Relative training time of a population (:func:`training_cost`)."""
    rows = len(population.members[0].rows["train"])
    return training_cost(plan.arch, len(population.members), rows, population.epochs, population.batch_size, population.engine)


def training_cost(arch: Architecture, members: int, rows: int, epochs: int, batch_size: int, engine: str = "eager") -> float:
    """Relative training time of ``members`` networks on ``rows`` training rows trained together:
    steps x (members x parameters + fixed per-step cost) on the eager engine; on the compiled one,
    steps x members x (parameters + a member's own per-step cost), at its share of the units."""
    steps = epochs * math.ceil(rows / batch_size)
    if engine == "compiled":
        return steps * members * (arch.n_params + COMPILED_MEMBER_STEP) * COMPILED_SHARE
    return steps * (members * arch.n_params + STEP_OVERHEAD)


def make_chunks(plans: list[Plan], workers: int) -> list[Chunk]:
    """Populations cut into at most ``workers`` chunks so that none is much over half a worker's
    fair share (so the rest can fill in around them); longest first. A chunk's label names its
    experiment, its population when the plan has several, and its share of a cut population."""
    pops = [(i, j, p, population_cost(plan, p)) for i, plan in enumerate(plans) for j, p in enumerate(plan.populations)]
    share = sum(c for *_, c in pops) / max(workers, 1)
    jobs = []
    for i, j, population, cost in pops:
        n = len(population.members)
        chunks = max(1, min(n, workers, math.ceil(cost / (0.6 * share)))) if share > 0 else 1
        size = math.ceil(n / chunks)
        name = plans[i].experiment.spec.name
        if len(plans[i].populations) > 1:
            name += f" population {j + 1}/{len(plans[i].populations)}"
        for start in range(0, n, size):
            members = population.members[start : start + size]
            part = Population(members, population.epochs, population.batch_size, population.optimizer, population.engine)
            label = name + (f" ({start // size + 1}/{chunks})" if chunks > 1 else "")
            jobs.append(Chunk(i, [m.key for m in members], population.epochs, population_cost(plans[i], part), label, part))
    return sorted(jobs, key=lambda j: -j.cost)



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


def summary_functions(plan: Plan) -> list[tuple[str, object]]:
    """``(technique name, function)`` for the summary columns of every technique some variant
    uses, each function once (several techniques share the weight statistics), by name."""
    used = {type(t) for m in plan.members for t in m.techniques}
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
        engine=population.engine if str(device) == "cpu" else "eager",  # the GPU trains on torch
    )
    return trainer, arrays


def part_name(population: Population) -> str:
    """The run folder's name for a chunk's part: its first member's number, unique in the plan."""
    return f"part-{population.members[0].id:06d}"


def train_chunk(plan: Plan, chunk: Chunk, on_epoch_end=None, device: str = "cpu") -> Part:
    """Train one chunk into its part: an executor's task (``on_epoch_end(epochs_done,
    n_training)`` after each epoch, 0 training once the chunk is done)."""
    population = chunk.population
    trainer, arrays = trainer_for(plan, population, device)
    while not trainer.done:
        n_training = trainer.advance()  # a run of epochs per call on the compiled engine
        if on_epoch_end is not None:
            on_epoch_end(trainer.epoch, 0 if trainer.done else n_training)
    result = trainer.result()
    splits = list(arrays)
    scores = {s: result.evaluate(*arrays[s]) for s in splits}
    # The techniques' own columns (exact zeros, MC dropout's scores...), for every member of the
    # population when any variant of the experiment uses the technique, so variants compare.
    context = SummaryContext(plan.arch, result, arrays[splits[-1]], splits[-1], list(plan.data.feature_names))
    extra, whose = technique_columns(summary_functions(plan), context)
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
        for i, layer in enumerate(layers(result.params)):
            weights[f"{prefix}/kernel_{i}"] = layer.kernel[k].detach().cpu().contiguous()
            weights[f"{prefix}/bias_{i}"] = layer.bias[k].detach().cpu().contiguous()
    return Part(part_name(population), rows, pd.concat(frames, ignore_index=True), weights)
