"""`reglab validate` rejects what `reglab run` would, in one line: a test generated from the
experiment-file schema.

Every field of every table (``[data]``, ``[model]``, ``[train]``, ``[[variant]]`` and its
``early_stopping`` and ``prechelt`` tables, ``[report]``) is found by walking the pydantic models,
and gets the invalid values its type calls for: a wrong type, a float where an integer belongs, a
negative count, inf and nan for numbers, an unknown choice, a list of the wrong length or kind. A
field added to the schema is covered without editing this file. Each bad file must make both
``validate`` and ``run`` exit 2 with the same single line naming the file, the field and the value,
and ``run`` must write nothing.
"""

import math
import types
import typing

import pytest
import tomli_w
from pydantic import BaseModel

from reglab.cli import main
from reglab.spec import ExperimentSpec

VALID = {
    "name": "schema",
    "seeds": 2,
    "data": {"dataset": "moons", "params": {"n_samples": 40}},
    "model": {"hidden": [4]},
    "train": {"epochs": 2},
    "variant": [{"name": "v", "dropout": 0.1, "early_stopping": {"patience": 1}, "prechelt": {"criterion": "GL"}}],
}
SKIP = {("reglab",), ("sweep",), ("variant", "name"), ("name",), ("report", "note"), ("report", "reference_source")}  # free text, or tested below


def _alternatives(annotation):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _bad_values(annotation):
    kinds = _alternatives(annotation)
    out = []
    literal = [k for k in kinds if typing.get_origin(k) is typing.Literal]
    if literal:
        out += ["nope", 5]
    elif bool in kinds:
        out += ["yes"]
    elif int in kinds and float not in kinds:
        out += ["x", 1.5, -1]
    elif float in kinds:
        out += ["x", math.inf, math.nan]
    elif str in kinds:
        out += [5]
    elif any(isinstance(k, type) and issubclass(k, BaseModel) for k in kinds) or any(typing.get_origin(k) is dict for k in kinds):
        out += [5]
    if any(typing.get_origin(k) is list for k in kinds):
        out += [["x"], [0.25] * 7]  # text in a list; a list of the wrong length for any per-layer setting
    return out


def _cases():
    """(path of keys, bad value) for every field reachable from the valid experiment."""
    tables = {"data": "data", "model": "model", "train": "train", "report": "report"}
    fields = ExperimentSpec.model_fields
    for key, info in fields.items():
        if (key,) in SKIP:
            continue
        if key in tables:
            model = _alternatives(info.annotation)[0]
            for sub, sub_info in model.model_fields.items():
                if (key, sub) not in SKIP:
                    yield from (((key, sub), v) for v in _bad_values(sub_info.annotation))
        elif key == "variant":
            variant = typing.get_args(info.annotation)[0]
            for sub, sub_info in variant.model_fields.items():
                if ("variant", sub) in SKIP:
                    continue
                table = [k for k in _alternatives(sub_info.annotation) if isinstance(k, type) and issubclass(k, BaseModel)]
                if table:
                    for field, field_info in table[0].model_fields.items():
                        yield from ((("variant", sub, field), v) for v in _bad_values(field_info.annotation))
                yield from ((("variant", sub), v) for v in _bad_values(sub_info.annotation))
        else:
            yield from (((key,), v) for v in _bad_values(info.annotation))


def _with(path, value):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID.items()}
    raw["variant"] = [{k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID["variant"][0].items()}]
    target = raw["variant"][0] if path[0] == "variant" else raw
    keys = path[1:] if path[0] == "variant" else path
    for k in keys[:-1]:
        target = target.setdefault(k, {})
    target[keys[-1]] = value
    return raw


CASES = list(_cases())


def test_the_walk_reaches_every_table():
    reached = {path[:2] if path[0] == "variant" and len(path) == 3 else path[:1] for path, _ in CASES}
    assert {("data",), ("model",), ("train",), ("report",), ("seeds",), ("variant", "early_stopping"), ("variant", "prechelt")} <= reached
    assert len(CASES) > 100


@pytest.mark.parametrize("path, value", CASES, ids=[f"{'.'.join(p)}={v!r}" for p, v in CASES])
def test_validate_and_run_refuse_every_invalid_value_alike(tmp_path, capsys, path, value):
    exp = tmp_path / "bad.toml"
    exp.write_text(tomli_w.dumps(_with(path, value)))
    out = tmp_path / "out"
    assert main(["validate", str(exp)]) == 2, f"validate accepted {'.'.join(path)} = {value!r}"
    said = capsys.readouterr().err
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == said
    assert said.startswith(f"reglab: {exp}: ") and said.count("\n") == 1 and "Traceback" not in said, said
    assert path[-1] in said and ("got" in said or "unknown key" in said), said
    assert not out.exists()


@pytest.mark.parametrize(
    "sweep, message",
    [
        ({"epochs": [1.5, 2]}, "sweep.epochs: must be an integer, got 1.5"),
        ({"batch_size": [16.5]}, "sweep.batch_size: must be an integer, got 16.5"),
        ({"dropout": [math.inf]}, "variant[0].dropout: must be a number in [0, 1), got inf"),
        ({"learning_rate": [math.nan]}, "variant[0].learning_rate: must be a finite number > 0, got nan"),
        ({"early_stopping.patience": [-1]}, "variant[0].early_stopping.patience: must be an integer >= 0, got -1"),
    ],
)
def test_swept_values_are_checked_as_if_written_in_the_variant(tmp_path, capsys, sweep, message):
    exp = tmp_path / "bad.toml"
    swept = {"name": "v", "early_stopping": {}}  # sets no swept key itself (that would be refused first)
    exp.write_text(tomli_w.dumps({**VALID, "variant": [swept], "sweep": sweep}))
    assert main(["validate", str(exp)]) == 2
    assert capsys.readouterr().err == f"reglab: {exp}: {message}\n"
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert not (tmp_path / "out").exists()
