"""The planner: every (variant, seed[, fold]) member of an experiment, grouped into populations.

Members share a population when they can train in one call of the engine: same architecture,
epochs, batch size, optimizer (its kind and momentum; learning rates may differ), engine (compiled
or eager, each member's by its own settings), and the same numbers of training and validation rows. Populations
are chunked to a memory budget. Members are pure, so neither grouping nor chunking changes any
member's result; the tests check that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from .data import Dataset, SplitSpec, load_builtin, load_table, split_indices
from .engine import Architecture, Member, checks
from .engine.losses import METRICS_FOR_TASK, make_metric
from .engine.paths import member_engine, why_not_compiled
from .engine.technique import check_member
from .errors import UserError
from .spec import Experiment

DEFAULT_MEMORY_BUDGET_MB = 1024


@dataclass
class MemberPlan:
    """One network to train, and where its rows are."""

    id: int
    variant: BaseModel
    seed: int
    fold: int | None
    rows: dict[str, np.ndarray]
    learning_rate: float
    epochs: int
    batch_size: int
    optimizer: object
    techniques: tuple = ()  # the variant's techniques, built once when the plan is made
    engine: str = "eager"  # "compiled" or "eager": decided by the member's own settings

    @property
    def key(self) -> str:
        return f"{self.variant.name}|{self.seed}|{'' if self.fold is None else self.fold}"


@dataclass
class Population:
    members: list[MemberPlan]
    epochs: int
    batch_size: int
    optimizer: object
    engine: str = "eager"


@dataclass
class Plan:
    experiment: Experiment
    data: Dataset
    arch: Architecture
    members: list[MemberPlan]  # every member of the experiment
    populations: list[Population]  # those that train (all, or the ones asked for), grouped
    shared_rows: bool = True  # every member trains on the same rows (fixed and tail splits)
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB

    def only(self, keys: set[str]) -> Plan:
        """This plan with only the members at ``keys`` in its populations (what a resumed run
        still trains): nothing is loaded, split or checked again."""
        todo = [m for m in self.members if m.key in keys]
        return dataclasses.replace(self, populations=_populations(todo, self.arch, self.shared_rows, self.memory_budget_mb))


def load_data(experiment: Experiment) -> tuple[Dataset, np.ndarray | None]:
    """The dataset and, when the experiment names one, the explicit test rows."""
    d = experiment.spec.data
    if d.dataset is not None:
        data = load_builtin(d.dataset, dict(d.params))
        return data, None
    exclude = (d.split_column,) if d.split_column else ()
    data = load_table(d.path, d.target, d.features, d.task, exclude)
    test_rows = None
    if d.test_path is not None:
        kind = "regression" if data.task == "regression" else "classification"
        test = load_table(d.test_path, d.target, data.feature_names, kind, single_class_ok=True)
        if data.task != "regression":
            mapping = {c: i for i, c in enumerate(data.classes)}
            unknown = [c for c in test.classes if c not in mapping]
            if unknown:
                raise UserError(f"{d.test_path}: class {unknown[0]!r} does not occur in {d.path}")
            test.y = np.array([mapping[test.classes[i]] for i in test.y])
        test_rows = np.arange(len(data.X), len(data.X) + len(test.X))
        data.X = np.vstack([data.X, test.X])
        data.y = np.concatenate([data.y, test.y])
    elif d.split_column is not None:
        import pandas as pd

        frame = pd.read_parquet(d.path) if d.path.endswith((".parquet", ".pq")) else pd.read_csv(d.path, dtype=str)
        if d.split_column not in frame.columns:
            raise UserError(f"{d.path}: no split column {d.split_column!r}; columns are " + ", ".join(map(str, frame.columns)))
        labels = frame[d.split_column].astype(str).str.strip().str.lower().to_numpy()
        bad = ~np.isin(labels, ["train", "test"])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"{d.path}: line {i + 2}, column {d.split_column!r}: must be train or test, got {labels[i]!r}")
        test_rows = np.flatnonzero(labels == "test")
    return data, test_rows


def architecture(experiment: Experiment, data: Dataset) -> Architecture:
    m = experiment.spec.model
    if data.task == "regression":
        return Architecture(data.X.shape[1], tuple(m.hidden), m.activation, "regression", 1)
    n_outputs = 1 if data.task == "binary" else data.n_classes
    return Architecture(data.X.shape[1], tuple(m.hidden), m.activation, data.task, n_outputs)


def split_spec(experiment: Experiment, data: Dataset) -> SplitSpec:
    d = experiment.spec.data
    method = d.split or ("fixed" if data.fixed is not None else "tail")
    return SplitSpec(method=method, validation=float(d.validation), test=float(d.test), folds=d.folds)


def bytes_per_member(arch: Architecture, rows: dict[str, np.ndarray], batch_size: int, shared_rows: bool) -> int:
    # weights, gradient, two Adam moments, scratch, final copy, best-weights snapshot
    state = 7 * arch.n_params
    activations = 4 * (batch_size + len(rows.get("val", ()))) * sum(arch.widths)
    data = 0 if shared_rows else sum(len(r) for r in rows.values()) * (arch.n_inputs + arch.n_outputs)
    return 4 * (state + activations + data)




def make_plan(experiment: Experiment, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, only: set[str] | None = None) -> Plan:
    """All members (or those whose key is in ``only``), grouped and chunked. Everything training
    would refuse is refused here, so ``reglab validate`` (which plans) rejects what ``run`` would."""
    try:
        return _make_plan(experiment, memory_budget_mb, only)
    except UserError as err:
        if err.field is not None:  # a field of the experiment file: name the file
            raise err.in_file(experiment.source) from None
        raise


def _check_against_data(experiment: Experiment, arch: Architecture, rows: dict[str, np.ndarray], techniques: dict[str, tuple]) -> None:
    """What only the data decides: the task a technique must apply to, the metrics a stopping rule
    may monitor, and the summary columns a [report] reference may name."""
    metrics = {"loss": "min", **{m: make_metric(m, arch.task).direction for m in METRICS_FOR_TASK[arch.task]}}
    logs = {prefix + name: direction for prefix in ("", "val_") for name, direction in metrics.items()}  # runs always validate
    for i, variant in enumerate(experiment.spec.variant):
        try:
            check_member(techniques[variant.name], arch, logs)
        except checks.FieldError as err:
            raise UserError(err.problem, field=f"variant[{i}].{err.field}") from None
        except ValueError as err:  # a registered technique's own check, in its own words
            raise UserError(str(err), field=f"variant[{i}]") from None
    columns = [f"{split}_{metric}" for split in rows for metric in metrics]
    for variant, values in experiment.spec.report.reference.items():
        for column in values:
            if column not in columns:
                raise UserError(f"this experiment's summary has no such column; it has {', '.join(columns)}", field=f"report.reference.{variant!r}.{column}")


def _make_plan(experiment: Experiment, memory_budget_mb: float, only: set[str] | None) -> Plan:
    data, test_rows = load_data(experiment)
    arch = architecture(experiment, data)
    splits = split_spec(experiment, data)
    t = experiment.spec.train
    folds = range(splits.folds) if splits.method == "kfold" else [None]
    techniques = {variant.name: experiment.techniques(variant) for variant in experiment.spec.variant}  # built once, carried
    engines = {name: _engine(t.engine, name, ts, arch, i) for i, (name, ts) in enumerate(techniques.items())}
    members = []
    for variant in experiment.spec.variant:
        for seed in experiment.seeds():
            for fold in folds:
                rows = split_indices(data, splits, seed, fold, test_rows)
                members.append(
                    MemberPlan(
                        id=len(members),
                        variant=variant,
                        seed=seed,
                        fold=fold,
                        rows=rows,
                        learning_rate=float(variant.learning_rate or t.learning_rate),
                        epochs=variant.epochs or t.epochs,
                        batch_size=variant.batch_size or t.batch_size,
                        optimizer=experiment.optimizer(variant),
                        techniques=techniques[variant.name],
                        engine=engines[variant.name],
                    )
                )
    _check_against_data(experiment, arch, members[0].rows, techniques)
    shared = splits.method in ("fixed", "tail")
    plan = Plan(experiment, data, arch, members, [], shared, memory_budget_mb)
    return plan.only({m.key for m in members} if only is None else only)


def _engine(engine: str, name: str, techniques: tuple, arch: Architecture, i: int) -> str:
    """The engine variant ``i``'s members train on, by their own settings (``train.engine``)."""
    reason = why_not_compiled(techniques, arch) if engine == "compiled" else None
    if reason is not None:
        raise UserError(f'variant[{i}] ({name!r}) cannot train compiled: {reason}; must be "auto" or "eager" here, got "compiled"', field="train.engine")
    return member_engine(engine, techniques, arch)


def _populations(todo: list[MemberPlan], arch: Architecture, shared: bool, memory_budget_mb: float) -> list[Population]:
    """Members that can train together (same epochs, batch size, optimizer and split sizes) in
    populations no larger than the memory budget allows."""
    groups: dict[tuple, list[MemberPlan]] = {}
    for m in todo:
        key = (m.epochs, m.batch_size, m.optimizer, m.engine, len(m.rows["train"]), len(m.rows["val"]), len(m.rows.get("test", ())))
        groups.setdefault(key, []).append(m)
    budget = memory_budget_mb * 2**20
    populations = []
    for (epochs, batch_size, optimizer, engine, *_), group in groups.items():
        per = bytes_per_member(arch, group[0].rows, batch_size, shared)
        size = max(1, int(budget // per))
        for start in range(0, len(group), size):
            populations.append(Population(group[start : start + size], epochs, batch_size, optimizer, engine))
    return populations


def engine_members(population: Population) -> list[Member]:
    return [Member(seed=m.seed, learning_rate=m.learning_rate, techniques=m.techniques, label=m.variant.name) for m in population.members]
