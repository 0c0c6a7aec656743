"""Run an experiment: plan -> engine, one population chunk at a time -> run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data import standardizer
from .engine import train
from .engine.results import mc_predict

# Added to MC dropout's predictive variance in the Gaussian NLL, so that a member whose passes agree
# exactly (no dropout reached the output) has a finite likelihood.
MC_VARIANCE_FLOOR = 1e-6
from .plan import DEFAULT_MEMORY_BUDGET_MB, Plan, Population, engine_members, make_plan
from .spec import Experiment
from .store import RunFolder

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


def _weight_columns(params, feature_names) -> dict[str, list]:
    """Per member: the share of exactly-zero kernel weights per layer, and the inputs whose every
    first-layer weight is zero (dropped: the network ignores them)."""
    out: dict[str, list] = {}
    for layer, W in enumerate(params[0::2]):
        out[f"zeros_{layer}"] = (W == 0).float().mean(dim=(1, 2)).tolist()
    dead = (params[0] == 0).all(dim=2).cpu().numpy()  # (K, n_inputs)
    out["dropped_inputs"] = [";".join(str(f) for f, d in zip(feature_names, row) if d) for row in dead]
    return out


def _mc_columns(plan: Plan, population: Population, result, held_out, split: str) -> dict[str, list]:
    """MC dropout's predictive on the held-out split, for members whose variant asks for it:
    regression: MSE of the predictive mean and the Gaussian negative log-likelihood; classification:
    cross-entropy and accuracy of the averaged probabilities. NaN for the other members."""
    passes = np.array([m.variant.mc_dropout for m in population.members])
    if not passes.any():
        return {}
    x, y = held_out
    task = plan.arch.task
    names = ["mc_mse", "mc_nll"] if task == "regression" else ["mc_loss", "mc_accuracy"]
    out = {f"{split}_{n}": [float("nan")] * len(passes) for n in names}
    for samples in sorted(set(passes[passes > 0].tolist())):
        index = np.flatnonzero(passes == samples)
        members = [result.members[i] for i in index]
        params = [p[torch.as_tensor(index)] for p in result.params]
        xs = x if np.ndim(x) == 2 else x[index]
        ys = np.asarray(y if np.ndim(y) == 1 else y[index], dtype=np.float64)
        mean, std = mc_predict(plan.arch, params, [m.techniques for m in members], [m.seed for m in members], xs, int(samples))
        for j, k in enumerate(index):
            for name, value in zip(names, _predictive_scores(task, mean[j].astype(np.float64), std[j].astype(np.float64), ys if ys.ndim == 1 else ys[j])):
                out[f"{split}_{name}"][k] = value
    return out


def _predictive_scores(task: str, mean: np.ndarray, std: np.ndarray, y: np.ndarray) -> tuple[float, float]:
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


def run_population(plan: Plan, population: Population, device: str = "cpu", on_epoch_end=None):
    """Train one chunk; return its summary rows, history frame and weights."""
    members = engine_members(population)
    splits = ["train", "val"] + (["test"] if "test" in population.members[0].rows else [])
    arrays = {s: _member_arrays(plan, population, s) for s in splits}
    x, y = arrays["train"]
    xv, yv = arrays["val"]
    result = train(
        plan.arch,
        members,
        x,
        y,
        validation_data=(xv, yv),
        epochs=population.epochs,
        batch_size=population.batch_size,
        optimizer=population.optimizer,
        device=device,
        on_epoch_end=on_epoch_end,
    )
    scores = {s: result.evaluate(*arrays[s]) for s in splits}
    extra = _weight_columns(result.params, plan.data.feature_names)
    extra.update(_mc_columns(plan, population, result, arrays[splits[-1]], splits[-1]))
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
) -> pd.DataFrame:
    """Train every member not already in ``out`` and assemble the summary; returns it."""
    full = make_plan(experiment, memory_budget_mb)  # before any file is written: bad data fails here
    with RunFolder.open(out, experiment, resume, full, restart=restart) as folder:  # locked until the summary is written
        finished = folder.finished_keys()
        todo = {m.key for m in full.members} - finished
        plan = make_plan(experiment, memory_budget_mb, only=todo) if finished else full
        for number, population in enumerate(plan.populations, start=1):
            callback = progress(number, len(plan.populations), len(population.members), population.epochs) if progress else None
            rows, history, weights = run_population(plan, population, device, callback)
            folder.write_part(f"part-{population.members[0].id:06d}", rows, history, weights)
        return folder.finalize([m.key for m in full.members])
