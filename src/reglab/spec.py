"""Experiment files: TOML <-> validated ``Experiment`` <-> resolved TOML in the run folder.

The structure is checked by pydantic (unknown keys are errors); a variant's keys come from the
technique registry (:mod:`reglab.variants`), and every technique setting is then built with the
technique's own class, whose declared rules give the message. Errors read
``file.toml: variant[2].dropout: must be a number in [0, 1), got 1.2``.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, Field, ValidationError, create_model

from . import variants
from .engine import SGD, Adam, Architecture, checks, registry
from .errors import UserError
from .variants import Number, Strict, SweepRange, describe_error, expand_sweep, is_parameter, table_models, techniques_of


def _field(default, doc: str):
    """A field with its one-line description (the experiment-file reference is generated from it)."""
    return Field(default, description=doc)


def _made(factory, doc: str):
    """A field whose default is made fresh for each file (a list, a table), with its description."""
    return Field(default_factory=factory, description=doc)


class DataSpec(BaseModel):
    model_config = Strict
    dataset: str | None = _field(None, "a built-in dataset (`reglab datasets`), or leave out and give `path`")
    params: dict[str, Number | str] = _made(dict, "a generator's parameters, e.g. `{ n_samples = 300, noise = 0.2 }`")
    path: str | None = _field(None, "a CSV or Parquet file, relative to the experiment file")
    target: str | None = _field(None, "the file's target column")
    features: list[str] | None = _field(None, "the feature columns (default: every column but the target)")
    task: Literal["auto", "classification", "regression"] = _field("auto", "auto: text or integers with at most 20 values are classes, other numbers regression")
    split: Literal["fixed", "tail", "random", "stratified", "kfold"] | None = _field(
        None, "fixed: the dataset's own; tail: Keras's validation_split; default: fixed where the dataset has one, else tail"
    )
    validation: Number = _field(0.2, "fraction of the non-test rows that validates")
    test: Number = _field(0.0, "a test fraction, carved before the validation rows")
    test_path: str | None = _field(None, "a file of test rows instead (same columns), relative to the experiment file")
    split_column: str | None = _field(None, "a column naming each row's part (train, val, test) instead")
    folds: int = _field(5, "for split = kfold: each member is (variant, seed, fold)")
    standardize: bool = _field(False, "z-score the features, fitted on each member's training rows only")


class ModelSpec(BaseModel):
    model_config = Strict
    hidden: list[int] = _made(lambda: [128, 128], "the hidden layers' widths")
    activation: str = _field("relu", "relu, tanh, sigmoid, elu, gelu or linear")


class TrainSpec(BaseModel):
    model_config = Strict
    optimizer: Literal["adam", "sgd"] = _field("adam", "Keras's Adam or SGD")
    learning_rate: Number = _field(0.001, "the optimizer's learning rate")
    epochs: int = _field(100, "the most epochs a member trains (stopping rules may end it sooner)")
    batch_size: int = _field(32, "rows per step; the last batch of an epoch may be smaller")
    momentum: Number = _field(0.0, "SGD's momentum (refused under adam, where it would do nothing)")
    nesterov: bool = _field(False, "SGD's Nesterov momentum (refused under adam)")
    engine: Literal["auto", "compiled", "eager"] = _field(
        "auto", "auto: compiled (numba) where a variant's techniques and the activation have a compiled form, else eager; eager: PyTorch with Keras's exact bits"
    )


class ReportSpec(BaseModel):
    """How ``reglab report`` shows the experiment; training ignores it (not part of the fingerprint)."""

    model_config = Strict
    baseline: str | None = _field(None, "the variant every other is compared with (default: the first)")
    xlim: list[Number] | None = _field(None, "x-axis limits of the data plots: decision regions, fitted curves")
    ylim: list[Number] | None = _field(None, "y-axis limits of the data plots")
    sweep: str | None = _field(None, 'a variant parameter to plot results against, e.g. "early_stopping.patience"')
    reference: dict[str, dict[str, Number]] = _made(dict, "one run's numbers to place among the seeds: variant -> summary column -> value")
    reference_source: str = _field("a single run", "where the reference numbers come from, as the report names it")
    note: str = _field("", "shown under the experiment's title")


def experiment_model() -> type[BaseModel]:
    """The schema of an experiment file; its variants' keys come from the technique registry."""
    if "experiment" not in _cache:
        VariantSpec = variants.variant_model()
        _cache["experiment"] = create_model(
            "ExperimentSpec",
            __config__=Strict,
            name=(str, Field(..., description="the experiment's name (the run folder and the report show it)")),
            seeds=(int | list[int], Field(10, description="a count (seeds 0..n-1) or a list of seeds")),
            data=(DataSpec, Field(..., description="the data and how it is split")),
            model=(ModelSpec, Field(default_factory=ModelSpec, description="the network every member shares")),
            train=(TrainSpec, Field(default_factory=TrainSpec, description="training settings; a variant may override them")),
            variant=(
                list[VariantSpec],
                Field(default_factory=lambda: [VariantSpec(name="baseline")], description="the variants: a name, techniques and overrides of [train]"),
            ),
            sweep=(
                dict[str, list[Number] | list[int] | SweepRange],
                Field(default_factory=dict, description="every variant times this grid: key = [values], or { log = [a, b], num = n }, or { linear = [a, b], num = n }"),
            ),
            report=(ReportSpec, Field(default_factory=ReportSpec, description="how `reglab report` shows it; not part of what is trained")),
            reglab=(dict[str, Any], Field(default_factory=dict, description="versions, written by reglab into the resolved file")),
        )
    return _cache["experiment"]


_cache: dict[str, Any] = {}
registry.subscribe(_cache.clear)


def __getattr__(name: str):
    """``ExperimentSpec`` and ``VariantSpec``: the schemas for the techniques registered now."""
    if name == "ExperimentSpec":
        return experiment_model()
    if name == "VariantSpec":
        return variants.variant_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------------
# Error messages

def _location(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("int", "float", "list[union[float,int]]", "list[int]", "SweepRange", *(m.__name__ for m in table_models().values())):
            continue  # pydantic's names for the branches of a union
        elif "[" in str(part) or str(part).startswith("function"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _allowed_keys(loc: tuple) -> list[str]:
    models = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec, "variant": variants.variant_model(), "report": ReportSpec, **table_models()}
    model: type[BaseModel] = experiment_model()
    for part in loc[:-1]:
        if isinstance(part, str) and part in models:
            model = models[part]
    return list(model.model_fields)


def format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    where = _location(first["loc"])
    text = describe_error(first)
    if first["type"] == "extra_forbidden":
        text += "; allowed: " + ", ".join(k for k in _allowed_keys(first["loc"]) if k != "reglab")
    return f"{source}: {where}: {text}"


# ---------------------------------------------------------------------------------------------------
# Loading, sweeps, resolution

def _toml(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f"{value:g}"


def seeds_of(spec: BaseModel) -> list[int]:
    return list(range(spec.seeds)) if isinstance(spec.seeds, int) else list(spec.seeds)


class Experiment:
    """A validated experiment: the spec with its sweep expanded and every setting checked."""

    def __init__(self, spec: BaseModel, source: str = "<experiment>"):
        self.source = source
        for i, v in enumerate(spec.variant):  # before the sweep, which builds names from them
            if not v.name.strip():
                raise UserError(f"variant[{i}].name: must be a name with something in it, got {v.name!r}")
            if v.name != v.name.strip():
                raise UserError(f"variant[{i}].name: must not start or end with spaces, got {v.name!r}")
        expanded = expand_sweep(list(spec.variant), spec.sweep)
        report = spec.report
        if report.sweep is None and len(spec.sweep) == 1:  # a one-parameter sweep is what the report plots against
            report = report.model_copy(update={"sweep": next(iter(spec.sweep))})
        self.spec = spec.model_copy(update={"variant": expanded, "sweep": {}, "report": report})
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
            spec = experiment_model().model_validate(raw)
        except ValidationError as err:
            raise UserError(format_validation_error(source, err)) from None
        try:
            return cls(spec, source)
        except UserError as err:
            raise err.in_file(source) from None

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
            self._guard(f"variant[{i}]", lambda v=v: _check_techniques(self.techniques(v), shape))
            self._guard(f"variant[{i}]", lambda v=v: self.optimizer(v))
            if v.learning_rate is not None and not 0 < v.learning_rate < math.inf:
                raise UserError(f"variant[{i}].learning_rate: must be a finite number > 0, got {v.learning_rate}")
            for field in ("epochs", "batch_size"):
                value = getattr(v, field)
                if value is not None and value < 1:
                    raise UserError(f"variant[{i}].{field}: must be an integer >= 1, got {value}")
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
        """``build()``, with a refused setting named where it sits in the file (an optimizer's
        ``optimizer.beta_1`` is ``train.beta_1`` there)."""
        try:
            build()
        except checks.FieldError as err:
            raise UserError(err.problem, field=f"{where}.{err.field.removeprefix('optimizer.')}") from None
        except ValueError as err:  # a registered technique's own check, in its own words
            raise UserError(str(err), field=where) from None

    # --- what the engine needs -------------------------------------------------------------------

    def optimizer(self, variant: BaseModel | None = None):
        """The optimizer of ``[train]``, with the variant's overrides."""
        t = self.spec.train
        pick = lambda field: getattr(t, field) if variant is None or getattr(variant, field) is None else getattr(variant, field)  # noqa: E731
        if pick("optimizer") == "adam":
            return Adam()
        return SGD(momentum=float(pick("momentum")), nesterov=pick("nesterov"))

    #: The engine's techniques of a variant (:func:`reglab.variants.techniques_of`).
    techniques = staticmethod(techniques_of)

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


def _check_techniques(techniques: tuple, arch: Architecture) -> None:
    """Each technique against the network (per-layer lists, the task) and the variant's others."""
    for t in techniques:
        t.validate(arch)
        t.check_with(techniques)


def _plain(value):
    """TOML has no null and no use for empty tables: drop both."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
