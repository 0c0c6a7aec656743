"""A variant of an experiment: its schema, built from the technique registry; sweeps; its techniques.

A variant holds its name, a few training overrides (learning rate, epochs...) and one entry per
registered technique: flat keys (``dropout = 0.5``) or a table (``[variant.early_stopping]``), as
the technique declares them (:mod:`reglab.engine.technique`). Nothing here names a technique: a
newly registered one is a new key in every experiment file, in sweeps and in the messages.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .engine import registry
from .engine.technique import Technique
from .errors import UserError

Strict = ConfigDict(extra="forbid", strict=True)
Number = float | int

# The variant's own settings (overrides of [train]); sweepable where they are numbers.
OWN_FIELDS: dict[str, tuple[Any, Any]] = {
    "learning_rate": (Number | None, None),
    "epochs": (int | None, None),
    "batch_size": (int | None, None),
    "optimizer": (Literal["adam", "sgd"] | None, None),
    "momentum": (Number | None, None),
    "nesterov": (bool | None, None),
}
OWN_SWEEPABLE = ("learning_rate", "epochs", "batch_size", "momentum")
assert {"name", *OWN_FIELDS} == set(registry.RESERVED_KEYS), "registry.RESERVED_KEYS must name the variant's own keys"

_cache: dict[str, Any] = {}
registry.subscribe(_cache.clear)


def table_models() -> dict[str, type[BaseModel]]:
    """``technique name -> model`` of its table, for table techniques (``[variant.early_stopping]``)."""
    if "tables" not in _cache:
        _cache["tables"] = {
            cls.name: create_model(f"{cls.__name__}Spec", __config__=Strict, **{s.key: (s.hint(), s.default) for s in cls.settings()})
            for cls in registry.techniques()
            if cls.table
        }
    return _cache["tables"]


def variant_model() -> type[BaseModel]:
    """The schema of ``[[variant]]``: its name, its own fields, and every technique's keys."""
    if "variant" not in _cache:
        fields: dict[str, Any] = {"name": (str, ...)}
        tables = table_models()
        for cls in registry.techniques():
            if cls.table:
                fields[cls.name] = (tables[cls.name] | None, None)
            else:
                fields.update({s.key: (s.hint(), s.off) for s in cls.settings()})
        fields.update(OWN_FIELDS)
        _cache["variant"] = create_model("VariantSpec", __config__=Strict, **fields)
    return _cache["variant"]


def __getattr__(name: str):
    """The models by name (``VariantSpec``, ``EarlyStoppingSpec``...), so that pickle finds them
    (a run's worker processes receive variants)."""
    if name == "VariantSpec":
        return variant_model()
    for model in table_models().values():
        if model.__name__ == name:
            return model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sweepable() -> list[str]:
    """The variant keys a ``[sweep]`` may vary directly (table settings go as ``table.key``)."""
    keys = [s.key for cls in registry.techniques() if not cls.table for s in cls.settings() if s.sweepable]
    return [*keys, *OWN_SWEEPABLE]


def techniques_of(variant: BaseModel) -> tuple[Technique, ...]:
    """The engine's technique objects for a variant, one per technique it uses, by name."""
    out = []
    for cls in registry.techniques():
        if cls.table:
            table = getattr(variant, cls.name)
            technique = cls.from_variant(None if table is None else table.model_dump())
        else:
            technique = cls.from_variant({s.key: getattr(variant, s.key) for s in cls.settings()})
        if technique is not None:
            out.append(technique)
    return tuple(out)


def uses(variant: BaseModel, panel: str) -> bool:
    """Whether a variant uses a technique that asks the report for ``panel`` (e.g. ``weights``)."""
    return any(panel in t.report for t in techniques_of(variant))


# ---------------------------------------------------------------------------------------------------
# Parameters and sweeps


class SweepRange(BaseModel):
    model_config = Strict
    log: list[Number] | None = None
    linear: list[Number] | None = None
    num: int


def table_field(key: str) -> tuple[str, str] | None:
    """``("early_stopping", "patience")`` for ``"early_stopping.patience"``; None for other keys."""
    table, _, field = key.partition(".")
    return (table, field) if table in table_models() and field else None


def is_parameter(name: str) -> bool:
    """Whether ``name`` is a variant parameter: a sweepable key, or ``<table>.<key>`` of a table
    technique (``early_stopping.patience``)."""
    nested = table_field(name)
    if nested:
        return any(s.key == nested[1] and s.sweepable for s in registry.get(nested[0]).settings())
    return name in sweepable()


def parameter_value(variant: BaseModel, name: str, train: BaseModel | None = None):
    """The value of parameter ``name`` in a variant (its ``[train]`` value where the variant does not
    override it); None for a table's parameter in a variant without the table."""
    nested = table_field(name)
    if nested:
        table = getattr(variant, nested[0])
        return None if table is None else getattr(table, nested[1])
    value = getattr(variant, name)
    if value is None and train is not None:
        value = getattr(train, name)
    return value


def other_settings(variant: BaseModel, name: str) -> dict:
    """Every setting of a variant except its name and parameter ``name`` (which may sit in a table
    such as ``prechelt.alpha``): variants that differ only in ``name`` have equal other settings."""
    rest = variant.model_dump(exclude={"name"})
    nested = table_field(name)
    if nested:
        if rest[nested[0]] is not None:
            rest[nested[0]].pop(nested[1])
    else:
        rest.pop(name)
    return rest


def describe_error(error: dict) -> str:
    """pydantic's first error, in reglab's words ("must be ..., got ...")."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"must be {error['ctx']['expected']}, got {error['input']!r}"
    phrase = _PHRASES.get(kind, error["msg"])
    return phrase if kind == "missing" else f"{phrase}, got {error['input']!r}"


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


def _apply(variant: BaseModel, key: str, value) -> BaseModel:
    nested = table_field(key)
    if nested:
        table, field = nested
        base = getattr(variant, table)
        return variant.model_copy(update={table: base.model_copy(update={field: value})})
    return variant.model_copy(update={key: value})


def _own_value(variant: BaseModel, key: str):
    """The value ``variant`` gives ``key`` in its own file (a table's parameter: in its table), or
    None where it leaves it to the defaults."""
    nested = table_field(key)
    holder, name = (getattr(variant, nested[0]), nested[1]) if nested else (variant, key)
    if holder is None or name not in holder.model_fields_set:
        return None
    return getattr(holder, name)


def expand_sweep(variants: list[BaseModel], sweep: dict) -> list[BaseModel]:
    """Each declared variant times every point of the sweep grid; names say the point."""
    if not sweep:
        return list(variants)
    for key in sweep:
        if not is_parameter(key):
            allowed = ", ".join([*sweepable(), *(f"{t}.<parameter>" for t in table_models())])
            raise UserError(f"sweep.{key}: not a sweepable parameter; sweepable: {allowed}")
    grids = {k: [(k, v) for v in _sweep_values(k, value)] for k, value in sweep.items()}
    for key in grids:
        nested = table_field(key)
        if nested and not any(getattr(v, nested[0]) is not None for v in variants):
            raise UserError(f"sweep.{key}: no variant has a [variant.{nested[0]}] table to sweep; add one to the variants it should vary")
    model = variant_model()
    out = []
    for variant in variants:
        # A table's parameter varies only the variants that have the table: sweeping
        # early_stopping.patience gives the baseline no early stopping. A variant that no key
        # applies to stays as it is, once.
        applies = [k for k in grids if not table_field(k) or getattr(variant, table_field(k)[0]) is not None]
        for key in applies:
            own = _own_value(variant, key)
            if own is not None:
                raise UserError(
                    f"sweep.{key}: variant {variant.name!r} sets its own {key} = {own!r}, which the sweep would replace; "
                    "remove it from the variant, or the key from the sweep"
                )
        if not applies:
            out.append(variant)
            continue
        for point in itertools.product(*(grids[k] for k in applies)):
            v = variant
            for key, value in point:
                v = _apply(v, key, value)
                try:  # a swept value must be what the field takes, as if written in the variant
                    model.model_validate(v.model_dump(warnings=False))
                except ValidationError as err:
                    raise UserError(f"sweep.{key}: {describe_error(err.errors()[0])}") from None
            label = " ".join(f"{k}={value:g}" if isinstance(value, float) else f"{k}={value}" for k, value in point)
            name = label if variant.name == "baseline" and len(variants) == 1 else f"{variant.name} {label}"
            out.append(v.model_copy(update={"name": name}))
    return out
