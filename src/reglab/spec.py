"""Experiment files: TOML <-> validated ``Experiment`` <-> resolved TOML in the run folder.

The structure is checked by pydantic (unknown keys are errors); every technique setting is then
built with the engine's own classes, whose checks give the message. Errors read
``file.toml: variant[2].dropout: must be a number in [0, 1), got 1.2``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .engine import (
    L1,
    L2,
    SGD,
    Adam,
    Architecture,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    MaxNorm,
    Prechelt,
    ProximalL1,
    WeightDecay,
)
from .errors import UserError

Strict = ConfigDict(extra="forbid", strict=True)
Number = float | int


def _spec_of(technique) -> type[BaseModel]:
    """A strict pydantic model with exactly the fields (types and defaults) of a technique's dataclass."""
    hints = typing.get_type_hints(technique)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(technique)}
    return create_model(f"{technique.__name__}Spec", __config__=Strict, **fields)


EarlyStoppingSpec = _spec_of(EarlyStopping)
PrecheltSpec = _spec_of(Prechelt)
# Tables of settings inside a variant: [variant.early_stopping], [variant.prechelt].
TABLES = {"early_stopping": EarlyStoppingSpec, "prechelt": PrecheltSpec}


class DataSpec(BaseModel):
    model_config = Strict
    dataset: str | None = None
    params: dict[str, Number | str] = Field(default_factory=dict)
    path: str | None = None
    target: str | None = None
    features: list[str] | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    split: Literal["fixed", "tail", "random", "stratified", "kfold"] | None = None
    validation: Number = 0.2
    test: Number = 0.0
    test_path: str | None = None
    split_column: str | None = None
    folds: int = 5
    standardize: bool = False


class ModelSpec(BaseModel):
    model_config = Strict
    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    activation: str = "relu"


class TrainSpec(BaseModel):
    model_config = Strict
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: Number = 0.001
    epochs: int = 100
    batch_size: int = 32
    momentum: Number = 0.0
    nesterov: bool = False


class VariantSpec(BaseModel):
    model_config = Strict
    name: str
    dropout: Number | list[Number] = 0.0
    l1: Number | list[Number] = 0.0
    l2: Number | list[Number] = 0.0
    early_stopping: EarlyStoppingSpec | None = None
    weight_decay: Number = 0.0
    weight_decay_biases: bool = False
    max_norm: Number | list[Number] = 0.0
    proximal_l1: Number | list[Number] = 0.0
    gaussian_noise: Number | list[Number] = 0.0
    input_noise: Number = 0.0
    gaussian_dropout: Number | list[Number] = 0.0
    prechelt: PrecheltSpec | None = None
    mc_dropout: int = 0
    learning_rate: Number | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: Literal["adam", "sgd"] | None = None
    momentum: Number | None = None
    nesterov: bool | None = None


class ReportSpec(BaseModel):
    """How ``reglab report`` shows the experiment; training ignores it (not part of the fingerprint)."""

    model_config = Strict
    baseline: str | None = None  # the variant every other is compared with; default: the first
    xlim: list[Number] | None = None  # axis limits of the data plots (decision regions, fitted curves)
    ylim: list[Number] | None = None
    sweep: str | None = None  # a variant parameter to plot results against, e.g. "early_stopping.patience"
    reference: dict[str, dict[str, Number]] = Field(default_factory=dict)  # variant -> summary column -> one run's value
    reference_source: str = "a single run"
    note: str = ""


class SweepRange(BaseModel):
    model_config = Strict
    log: list[Number] | None = None
    linear: list[Number] | None = None
    num: int


class ExperimentSpec(BaseModel):
    model_config = Strict
    name: str
    seeds: int | list[int] = 10
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    variant: list[VariantSpec] = Field(default_factory=lambda: [VariantSpec(name="baseline")])
    sweep: dict[str, list[Number] | list[int] | SweepRange] = Field(default_factory=dict)
    report: ReportSpec = Field(default_factory=ReportSpec)
    reglab: dict[str, Any] = Field(default_factory=dict)  # versions, written into resolved files


# ---------------------------------------------------------------------------------------------------
# Error messages

_PHRASES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "missing": "is required",
}


def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("int", "float", "list[union[float,int]]", "list[int]", "SweepRange", EarlyStoppingSpec.__name__, PrecheltSpec.__name__):
            continue  # pydantic's names for the branches of a union
        elif "[" in str(part) or str(part).startswith("function"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _describe(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"must be {error['ctx']['expected']}, got {error['input']!r}"
    phrase = _PHRASES.get(kind, error["msg"])
    return phrase if kind == "missing" else f"{phrase}, got {error['input']!r}"


def _allowed_keys(loc: tuple) -> list[str]:
    models = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec, "variant": VariantSpec, "report": ReportSpec, **TABLES}
    model: type[BaseModel] = ExperimentSpec
    for part in loc[:-1]:
        if isinstance(part, str) and part in models:
            model = models[part]
    return list(model.model_fields)


def format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    where = _location(first["loc"])
    text = _describe(first)
    if first["type"] == "extra_forbidden":
        text += "; allowed: " + ", ".join(k for k in _allowed_keys(first["loc"]) if k != "reglab")
    return f"{source}: {where}: {text}"


# ---------------------------------------------------------------------------------------------------
# Loading, sweeps, resolution

SWEEPABLE = (
    "dropout",
    "l1",
    "l2",
    "weight_decay",
    "max_norm",
    "proximal_l1",
    "gaussian_noise",
    "input_noise",
    "gaussian_dropout",
    "mc_dropout",
    "learning_rate",
    "epochs",
    "batch_size",
    "momentum",
)


def _any_positive(value) -> bool:
    return any(x > 0 for x in (value if isinstance(value, list) else [value]))


def _toml(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f"{value:g}"


def _table_field(key: str) -> tuple[str, str] | None:
    """``("early_stopping", "patience")`` for ``"early_stopping.patience"``; None for other keys."""
    table, _, field = key.partition(".")
    return (table, field) if table in TABLES and field else None


def _sweep_values(key: str, value) -> list:
    if isinstance(value, SweepRange):
        bounds = value.log if value.log is not None else value.linear
        if bounds is None or len(bounds) != 2 or (value.log is not None and value.linear is not None):
            raise UserError(f"sweep.{key}: give exactly one of log = [low, high] or linear = [low, high], and num")
        if value.num < 1:
            raise UserError(f"sweep.{key}.num: must be an integer >= 1, got {value.num}")
        if value.log is not None:
            if min(bounds) <= 0:
                raise UserError(f"sweep.{key}.log: bounds must be > 0, got {bounds}")
            return [float(v) for v in np.geomspace(bounds[0], bounds[1], value.num)]
        return [float(v) for v in np.linspace(bounds[0], bounds[1], value.num)]
    if not value:
        raise UserError(f"sweep.{key}: must list at least one value")
    return list(value)


def _apply(variant: VariantSpec, key: str, value) -> VariantSpec:
    nested = _table_field(key)
    if nested:
        table, field = nested
        base = getattr(variant, table)
        return variant.model_copy(update={table: base.model_copy(update={field: value})})
    return variant.model_copy(update={key: value})


def expand_sweep(spec: ExperimentSpec) -> list[VariantSpec]:
    """Each declared variant times every point of the sweep grid; names say the point."""
    if not spec.sweep:
        return list(spec.variant)
    for key in spec.sweep:
        if not is_parameter(key):
            allowed = ", ".join([*SWEEPABLE, "early_stopping.<parameter>", "prechelt.<parameter>"])
            raise UserError(f"sweep.{key}: not a sweepable parameter; sweepable: {allowed}")
    grids = {k: [(k, v) for v in _sweep_values(k, value)] for k, value in spec.sweep.items()}
    for key in grids:
        nested = _table_field(key)
        if nested and not any(getattr(v, nested[0]) is not None for v in spec.variant):
            raise UserError(f"sweep.{key}: no variant has a [variant.{nested[0]}] table to sweep; add one to the variants it should vary")
    out = []
    for variant in spec.variant:
        # A table's parameter varies only the variants that have the table: sweeping
        # early_stopping.patience gives the baseline no early stopping. A variant that no key
        # applies to stays as it is, once.
        applies = [k for k in grids if not _table_field(k) or getattr(variant, _table_field(k)[0]) is not None]
        if not applies:
            out.append(variant)
            continue
        for point in itertools.product(*(grids[k] for k in applies)):
            v = variant
            for key, value in point:
                v = _apply(v, key, value)
                try:  # a swept value must be what the field takes, as if written in the variant
                    VariantSpec.model_validate(v.model_dump(warnings=False))
                except ValidationError as err:
                    raise UserError(f"sweep.{key}: {_describe(err.errors()[0])}") from None
            label = " ".join(f"{k}={value:g}" if isinstance(value, float) else f"{k}={value}" for k, value in point)
            name = label if variant.name == "baseline" and len(spec.variant) == 1 else f"{variant.name} {label}"
            out.append(v.model_copy(update={"name": name}))
    return out


def is_parameter(name: str) -> bool:
    """Whether ``name`` is a variant parameter: a sweepable field, ``early_stopping.<field>`` or
    ``prechelt.<field>``."""
    nested = _table_field(name)
    if nested:
        return nested[1] in TABLES[nested[0]].model_fields
    return name in SWEEPABLE


def parameter_value(variant: VariantSpec, name: str, train: TrainSpec | None = None):
    """The value of parameter ``name`` in a variant (its ``[train]`` value where the variant does not
    override it); None for an early-stopping parameter of a variant without early stopping."""
    nested = _table_field(name)
    if nested:
        table = getattr(variant, nested[0])
        return None if table is None else getattr(table, nested[1])
    value = getattr(variant, name)
    if value is None and train is not None:
        value = getattr(train, name)
    return value


def other_settings(variant: VariantSpec, name: str) -> dict:
    """Every setting of a variant except its name and parameter ``name`` (which may sit in a table
    such as ``prechelt.alpha``): variants that differ only in ``name`` have equal other settings."""
    rest = variant.model_dump(exclude={"name"})
    nested = _table_field(name)
    if nested:
        if rest[nested[0]] is not None:
            rest[nested[0]].pop(nested[1])
    else:
        rest.pop(name)
    return rest


def seeds_of(spec: ExperimentSpec) -> list[int]:
    return list(range(spec.seeds)) if isinstance(spec.seeds, int) else list(spec.seeds)


class Experiment:
    """A validated experiment: the spec with its sweep expanded and every setting checked."""

    def __init__(self, spec: ExperimentSpec, source: str = "<experiment>"):
        self.source = source
        variants = expand_sweep(spec)
        report = spec.report
        if report.sweep is None and len(spec.sweep) == 1:  # a one-parameter sweep is what the report plots against
            report = report.model_copy(update={"sweep": next(iter(spec.sweep))})
        self.spec = spec.model_copy(update={"variant": variants, "sweep": {}, "report": report})
        self._check()

    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: file not found")
        if path.is_dir():
            raise UserError(f"{path}: is a folder; give an experiment file (.toml)")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise UserError(f"{path}: not UTF-8 text (byte {err.start}); save the experiment file as UTF-8") from None
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: not valid TOML: {err}") from None
        # Data files named in an experiment file are found next to it, wherever reglab runs from.
        data = raw.get("data")
        if isinstance(data, dict):
            for key in ("path", "test_path"):
                if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                    data[key] = str((path.parent / data[key]).resolve())
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<experiment>") -> Experiment:
        sweep = raw.get("sweep")
        for key, value in (sweep.items() if isinstance(sweep, dict) else ()):
            if isinstance(value, dict) and "num" not in value:  # pydantic would only say "must be a list"
                raise UserError(f"{source}: sweep.{key}.num: is required: a range is log = [low, high] or linear = [low, high], and num = <points>")
        try:
            spec = ExperimentSpec.model_validate(raw)
        except ValidationError as err:
            raise UserError(format_validation_error(source, err)) from None
        try:
            return cls(spec, source)
        except UserError as err:
            raise UserError(f"{source}: {err}") from None

    def _check(self) -> None:
        s = self.spec
        seeds = seeds_of(s)
        if (isinstance(s.seeds, int) and s.seeds < 1) or s.seeds == []:
            raise UserError(f"seeds: must be a count >= 1 or a non-empty list of seeds, got {s.seeds}")
        if len(set(seeds)) != len(seeds):
            raise UserError(f"seeds: must not repeat a seed, got {s.seeds}")
        for i, seed in enumerate(seeds):
            if not 0 <= seed < 2**32:
                raise UserError(f"seeds[{i}]: must be an integer in [0, 4294967295], got {seed}")
        d = s.data
        if (d.dataset is None) == (d.path is None):
            raise UserError("data: give exactly one of dataset = \"<built-in>\" or path = \"<file>\"")
        if d.path is not None and d.target is None:
            raise UserError("data.target: is required with data.path")
        # Settings of the other kind of data would be ignored without a word: refuse them.
        for field in (("target", "features", "test_path", "split_column") if d.dataset is not None else ("params",)):
            value = getattr(d, field)
            if value not in (None, {}):
                only = "with data.path (a built-in dataset has its own)" if d.dataset is not None else "with a built-in generator (data.dataset)"
                raise UserError(f"data.{field}: only {only}, got {value!r}")
        if d.dataset is not None and d.task != "auto":
            raise UserError(f"data.task: only with data.path (a built-in dataset has its own task), got {d.task!r}")
        if not 0 < d.validation < 1:
            raise UserError(f"data.validation: must be a number in (0, 1), got {d.validation}")
        if not 0 <= d.test < 1:
            raise UserError(f"data.test: must be a number in [0, 1), got {d.test}")
        if d.folds < 2:
            raise UserError(f"data.folds: must be an integer >= 2, got {d.folds}")
        if sum(x is not None for x in (d.test_path, d.split_column)) + (d.test > 0) > 1:
            raise UserError("data: give at most one of test, test_path and split_column")
        names = [v.name for v in s.variant]
        for name in names:
            if names.count(name) > 1:
                raise UserError(f"variant: names must be unique, {name!r} appears {names.count(name)} times")
        self._guard("model", lambda: Architecture(n_inputs=1, hidden=tuple(s.model.hidden), activation=s.model.activation))
        self._guard("train", lambda: self.optimizer())
        for field in ("momentum", "nesterov"):  # [train]'s, against [train]'s optimizer (a variant may still pick sgd)
            value = getattr(s.train, field)
            if s.train.optimizer != "sgd" and value and not any(v.optimizer == "sgd" for v in s.variant):
                raise UserError(f"train.{field}: only applies with optimizer = \"sgd\", got {field} = {_toml(value)} with optimizer = \"{s.train.optimizer}\"")
        if not 0 < s.train.learning_rate < math.inf:
            raise UserError(f"train.learning_rate: must be a finite number > 0, got {s.train.learning_rate}")
        for field in ("epochs", "batch_size"):
            if getattr(s.train, field) < 1:
                raise UserError(f"train.{field}: must be an integer >= 1, got {getattr(s.train, field)}")
        for i, v in enumerate(s.variant):
            # Per-layer lists are checked against the layers now, not when training starts.
            shape = Architecture(n_inputs=1, hidden=tuple(s.model.hidden), activation=s.model.activation)
            self._guard(f"variant[{i}]", lambda v=v: [t.validate(shape) for t in self.techniques(v)])
            self._guard(f"variant[{i}]", lambda v=v: self.optimizer(v))
            if v.learning_rate is not None and not 0 < v.learning_rate < math.inf:
                raise UserError(f"variant[{i}].learning_rate: must be a finite number > 0, got {v.learning_rate}")
            for field in ("epochs", "batch_size"):
                value = getattr(v, field)
                if value is not None and value < 1:
                    raise UserError(f"variant[{i}].{field}: must be an integer >= 1, got {value}")
            if not 0 <= v.mc_dropout <= 10_000:
                raise UserError(f"variant[{i}].mc_dropout: must be a number of passes in [0, 10000] (0: off), got {v.mc_dropout}")
            if v.mc_dropout and not (_any_positive(v.dropout) or _any_positive(v.gaussian_dropout)):
                raise UserError(
                    f"variant[{i}].mc_dropout: needs a dropout or gaussian_dropout rate > 0 in the same variant (MC dropout samples them), "
                    f"got dropout = {v.dropout}, gaussian_dropout = {v.gaussian_dropout}"
                )
            optimizer = v.optimizer or s.train.optimizer
            for field in ("momentum", "nesterov"):  # a variant's own setting, against its own optimizer
                value = getattr(v, field)
                if optimizer != "sgd" and value:
                    raise UserError(f"variant[{i}].{field}: only applies with optimizer = \"sgd\", got {field} = {_toml(value)} with optimizer = \"{optimizer}\"")

        self._check_report()

    def _check_report(self) -> None:
        r, names = self.spec.report, [v.name for v in self.spec.variant]
        if r.baseline is not None and r.baseline not in names:
            raise UserError(f"report.baseline: must name a variant ({', '.join(map(repr, names))}), got {r.baseline!r}")
        for axis in ("xlim", "ylim"):
            lim = getattr(r, axis)
            if lim is not None and not (len(lim) == 2 and lim[0] < lim[1]):
                raise UserError(f"report.{axis}: must be [low, high] with low < high, got {lim}")
        if r.sweep is not None and not is_parameter(r.sweep):
            raise UserError(f"report.sweep: must be a variant parameter such as dropout, l2 or early_stopping.patience, got {r.sweep!r}")
        for variant, values in r.reference.items():
            if variant not in names:
                raise UserError(f"report.reference: {variant!r} is not a variant; variants: {', '.join(map(repr, names))}")
            for column in values:
                split, _, metric = column.partition("_")
                if split not in ("train", "val", "test") or metric not in ("loss", "accuracy", "mse", "mae"):
                    raise UserError(
                        f"report.reference.{variant!r}.{column}: must be <train|val|test>_<loss|accuracy|mse|mae>, got {column!r}"
                    )

    @staticmethod
    def _guard(where: str, build) -> None:
        try:
            build()
        except ValueError as err:
            text = str(err).removeprefix("optimizer.")
            raise UserError(f"{where}.{text}") from None

    # --- what the engine needs -------------------------------------------------------------------

    def optimizer(self, variant: VariantSpec | None = None):
        """The optimizer of ``[train]``, with the variant's overrides."""
        t = self.spec.train
        pick = lambda field: getattr(t, field) if variant is None or getattr(variant, field) is None else getattr(variant, field)  # noqa: E731
        if pick("optimizer") == "adam":
            return Adam()
        return SGD(momentum=float(pick("momentum")), nesterov=pick("nesterov"))

    @staticmethod
    def techniques(v: VariantSpec) -> tuple:
        out = []
        if v.dropout != 0:
            out.append(Dropout(v.dropout if not isinstance(v.dropout, list) else tuple(v.dropout)))
        if v.l1 != 0:
            out.append(L1(v.l1 if not isinstance(v.l1, list) else tuple(v.l1)))
        if v.l2 != 0:
            out.append(L2(v.l2 if not isinstance(v.l2, list) else tuple(v.l2)))
        if v.early_stopping is not None:
            out.append(EarlyStopping(**v.early_stopping.model_dump()))
        if v.weight_decay != 0 or v.weight_decay_biases:
            out.append(WeightDecay(v.weight_decay, v.weight_decay_biases))
        if v.max_norm != 0:
            out.append(MaxNorm(_tupled(v.max_norm)))
        if v.proximal_l1 != 0:
            out.append(ProximalL1(_tupled(v.proximal_l1)))
        if v.gaussian_noise != 0 or v.input_noise != 0:
            out.append(GaussianNoise(_tupled(v.gaussian_noise), v.input_noise))
        if v.gaussian_dropout != 0:
            out.append(GaussianDropout(_tupled(v.gaussian_dropout)))
        if v.prechelt is not None:
            out.append(Prechelt(**v.prechelt.model_dump()))
        return tuple(out)

    def seeds(self) -> list[int]:
        return seeds_of(self.spec)

    # --- round trip ------------------------------------------------------------------------------

    def resolved(self, versions: dict[str, str] | None = None) -> dict:
        """The experiment with every default explicit and the sweep expanded, as TOML data."""
        data = self.spec.model_dump(exclude_none=True)
        data.pop("sweep", None)
        data["reglab"] = dict(versions or {})
        return _plain(data)

    def to_toml(self, versions: dict[str, str] | None = None) -> str:
        return tomli_w.dumps(self.resolved(versions))

    def fingerprint(self) -> dict:
        """What must match for ``--resume`` to continue a run folder: everything but versions."""
        data = self.resolved()
        data.pop("reglab", None)
        data.pop("report", None)
        return data


def _tupled(value):
    return tuple(value) if isinstance(value, list) else value


def _plain(value):
    """TOML has no null and no use for empty tables: drop both."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
