"""Registering a technique refuses every declaration that would break something else, in one line,
and leaves the registry as it was; a technique's summary columns cannot overwrite others'.

Declarations are generated: each test builds a technique class with one bad attribute (the rest
valid) and checks the refusal, over the class of bad values rather than one example.
"""

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab.engine import Piece, Technique, checks, registry, setting
from reglab.engine.technique import TASKS

bounded = settings(max_examples=40, deadline=None, derandomize=True)


class _Nothing(Piece):
    def select(self, index):
        return self


def declare(class_name="Custom", *, fields=None, **attrs):
    """A technique class named ``class_name``: one valid setting unless ``fields`` says otherwise,
    the class attributes ``attrs`` (``name`` defaults to ``custom``)."""
    namespace = {"name": "custom", "reference": "a test", "__module__": __name__, **attrs}
    namespace["stack"] = classmethod(lambda cls, settings, arch, device, logs: _Nothing())
    fields = fields or [("strength", float, setting(0.1, checks.RATE, "how strong", off=0.0))]
    return dataclasses.make_dataclass(class_name, fields, bases=(Technique,), namespace=namespace, frozen=True)


def refused(cls, pattern):
    """``register(cls)`` raises a one-line ValueError matching ``pattern``; the registry is unchanged."""
    before = [c.name for c in registry.techniques()], dict(registry._streams)
    try:
        registry.register(cls)
    except ValueError as err:
        message = str(err)
    else:
        registry.unregister(cls.name)
        pytest.fail(f"register({cls.__name__}) accepted it")
    assert "\n" not in message and re.search(pattern, message), message
    assert ([c.name for c in registry.techniques()], dict(registry._streams)) == before


def field_with(**kw):
    meta = {"default": 0.1, "rule": checks.RATE, "doc": "how strong", "off": 0.0, **kw}
    return [("strength", float, setting(meta.pop("default"), meta.pop("rule"), meta.pop("doc"), **meta))]


def test_a_valid_declaration_registers_and_is_reachable_by_its_class_name():
    cls = declare("Sharpen", name="sharpen", rng_stream=77, stop_reasons=("sharpened",), report=frozenset({"weights"}))
    registry.register(cls)
    try:
        assert reglab.Sharpen is cls and registry.get("sharpen") is cls
    finally:
        registry.unregister("sharpen")


# -- experiment-file keys ------------------------------------------------------------------------


@bounded
@given(key=st.one_of(st.sampled_from(["", "my key", "early_stopping.patience", "2x", "a-b"]), st.text(max_size=8).filter(lambda k: not k.isidentifier())))
def test_keys_must_be_identifiers(key):
    refused(declare(fields=field_with(key=key)), r"^register: Custom's experiment-file key .* must be an identifier")


@pytest.mark.parametrize("key", [*registry.RESERVED_KEYS, *registry.COORDINATE_KEYS])
def test_keys_may_not_be_the_variant_s_own_or_a_coordinate(key):
    refused(declare(fields=field_with(key=key)), rf"^register: Custom's experiment-file key '{key}' is already (the variant's own|a member's coordinate)$")


# -- scikit-learn parameters -----------------------------------------------------------------------


def _estimator_names():
    from reglab.sklearn import MLPClassifier, MLPRegressor

    technique_params = set(MLPClassifier().get_params()) | set(MLPRegressor().get_params())
    api = {n for cls in (MLPClassifier, MLPRegressor) for n in dir(cls) if not n.startswith("_")}
    return sorted(api - technique_params)


@pytest.mark.parametrize("param", _estimator_names())
def test_scikit_learn_names_may_not_be_an_estimator_method(param):
    """Every public attribute of reglab's estimators (read from the classes, so a new method
    cannot slip past the registry's list)."""
    refused(declare(fields=field_with(sklearn=param)), rf"^register: Custom's scikit-learn parameter '{param}' is already an estimator method$")


@bounded
@given(param=st.one_of(st.sampled_from(["", "_private", "fitted_", "my param"]), st.text(max_size=8).filter(lambda p: not p.isidentifier())))
def test_scikit_learn_names_must_be_plain_identifiers(param):
    refused(declare(fields=field_with(sklearn=param)), r"^register: Custom's scikit-learn parameter .* must be an identifier")


# -- the class's own declarations ---------------------------------------------------------------


@bounded
@given(stream=st.one_of(st.integers(max_value=0), st.integers(min_value=2**32, max_value=2**70)))
def test_random_streams_are_below_2_to_the_32(stream):
    refused(declare(rng_stream=stream), r"^register: Custom\.rng_stream must be an integer in \[1, 2\*\*32\)")


@bounded
@given(reasons=st.lists(st.one_of(st.sampled_from(["", "a,b", "two words"]), st.text(max_size=6)), min_size=1, max_size=3).filter(lambda rs: not all(r.isidentifier() for r in rs)))
def test_stop_reasons_are_identifiers(reasons):
    refused(declare(stop_reasons=tuple(reasons)), r"^register: Custom\.stop_reasons must be a tuple of identifiers")


@bounded
@given(panels=st.sets(st.sampled_from(["weights", "stopping", "mc_bands", "histogram", "Weights", ""]), min_size=1).filter(lambda p: not p <= {"weights", "stopping", "mc_bands"}))
def test_report_panels_are_known(panels):
    refused(declare(report=frozenset(panels)), r"^register: Custom\.report must be a frozenset of weights, stopping, mc_bands")


@bounded
@given(tasks=st.lists(st.sampled_from([*TASKS, "classification", "Binary", ""]), max_size=3).filter(lambda t: not t or not set(t) <= set(TASKS)))
def test_tasks_are_the_engine_s(tasks):
    refused(declare(tasks=tuple(tasks)), r"^register: Custom\.tasks must be a non-empty tuple of binary, multiclass, regression")


@bounded
@given(value=st.one_of(st.floats(min_value=1.0, max_value=1e6), st.floats(max_value=-1e-9, min_value=-1e6)), which=st.sampled_from(["default", "off", "search strength"]))
def test_defaults_off_values_and_search_strengths_obey_the_setting_s_rule(value, which):
    kw = {"default": value} if which == "default" else {"off": value} if which == "off" else {"search": (0.1, value)}
    refused(declare(fields=field_with(**kw)), rf"^register: Custom: the {which} of 'strength' is outside its own rule \(custom: must be")


@pytest.mark.parametrize("class_name", ["Dropout", "EarlyStopping", "L2", "Adam", "Member", "Architecture", "Trainer"])
def test_built_in_names_cannot_be_shadowed(class_name):
    refused(declare(class_name, name="mine"), rf"^register: the class name '{class_name}' is (taken by '\w+''s class|one of reglab's own names); rename the class$")
    from reglab import Dropout

    assert Dropout.name == "dropout" and reglab.Dropout is Dropout and reglab.engine.Dropout is Dropout


# -- summary columns ---------------------------------------------------------------------------


def _run_with_columns(tmp_path, columns, also=None):
    from reglab.runner import run_experiment
    from reglab.spec import Experiment

    cls = declare("Labelled", name="labelled", summary=(lambda ctx: {c: [0.0] * len(ctx.result.members) for c in columns},))
    registry.register(cls)
    try:
        variant = {"name": "labelled", "labelled": 0.1, **(also or {})}
        raw = {"name": "e", "seeds": 2, "data": {"dataset": "moons"}, "model": {"hidden": [4]}, "train": {"epochs": 1}, "variant": [{"name": "baseline"}, variant], "sweep": {}}
        return run_experiment(Experiment.from_dict(raw), tmp_path / "run", progress=None)
    finally:
        registry.unregister("labelled")


@pytest.mark.parametrize("column", ["variant", "seed", "val_loss", "epochs_run", "stop_reason", "key"])
def test_a_summary_column_may_not_overwrite_reglab_s_own(tmp_path, column):
    with pytest.raises(ValueError, match=rf"^technique 'labelled': its summary column '{column}' is reglab's own; give its columns names of their own$"):
        _run_with_columns(tmp_path, [column])


def test_a_summary_column_may_not_overwrite_another_technique_s(tmp_path):
    with pytest.raises(ValueError, match=r"^technique 'labelled': its summary column 'zeros_0' is technique 'l1''s; give its columns names of their own$"):
        _run_with_columns(tmp_path, ["zeros_0"], also={"l1": 0.01})


def test_a_summary_column_of_its_own_lands_in_the_summary(tmp_path):
    summary = _run_with_columns(tmp_path, ["labelled_score"])
    assert (summary["labelled_score"] == 0.0).all()
