"""A technique defined outside reglab (as in a notebook) and registered with one call works in
train(), in the scikit-learn estimators, in experiment files and the report, and the common
suite runs on it."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

import reglab
from reglab.engine import Architecture, Member, Piece, Technique, checks, registry, setting, train
from reglab.engine.pieces import member_column, member_view
from reglab.testing import check_technique


def mean_abs_kernel(ctx) -> dict[str, list]:
    """A summary column of the user's own: each member's mean |w| over its first kernel."""
    return {"mean_abs_kernel_0": ctx.result.params[0].abs().mean(dim=(1, 2)).tolist()}


@dataclass(frozen=True)
class Shrink(Technique):
    """Multiply every kernel by ``1 - factor`` after each update."""

    factor: float = setting(0.05, checks.RATE, "kernels shrink by this share after every update", off=0.0)
    name = "shrink"
    reference = "a notebook's own technique"
    report = frozenset({"weights"})
    summary = (mean_abs_kernel,)

    @classmethod
    def stack(cls, settings, arch, device, available_logs) -> Piece:
        return ShrinkPiece(member_column([s.factor if s else 0.0 for s in settings], device))


class ShrinkPiece(Piece):
    def __init__(self, factors):
        self.factors = factors

    def after_update(self, params, ctx):
        for kernel in params[0::2]:
            kernel.mul_(member_view(1 - self.factors, kernel))

    def select(self, index):
        return ShrinkPiece(self.factors[index])


@pytest.fixture
def shrink():
    reglab.register(Shrink)
    yield Shrink
    registry.unregister("shrink")


def test_the_common_suite_passes(shrink):
    check_technique(shrink)


def test_it_trains(shrink, moons):
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(8,), task="binary")
    result = train(arch, [Member(seed=0, techniques=[Shrink(0.2)]), Member(seed=0)], X, y, epochs=3)
    first = result.params[0].abs().mean(dim=(1, 2))
    assert first[0] < 0.5 * first[1]  # three epochs of shrinking by a fifth per step


def test_it_is_a_scikit_learn_parameter(shrink, moons):
    from sklearn.base import clone

    from reglab.sklearn import MLPClassifier, MLPRegressor

    clf = MLPClassifier(hidden=(8,), epochs=2, shrink=0.1, random_state=0)
    assert clf.get_params()["shrink"] == 0.1 and clone(clf).shrink == 0.1
    assert clf._techniques() == (Shrink(0.1),)
    assert clf.fit(*moons).predict(moons[0][:3]).shape == (3,)
    assert "shrink" in MLPRegressor().get_params()


def test_it_is_an_experiment_key_a_summary_column_and_in_the_report(shrink, tmp_path):
    from reglab.report import RunData, figures, write_report
    from reglab.runner import run_experiment
    from reglab.spec import Experiment

    raw = {
        "name": "shrinking",
        "seeds": 2,
        "data": {"dataset": "moons"},
        "model": {"hidden": [8]},
        "train": {"epochs": 3},
        "variant": [{"name": "baseline"}, {"name": "shrink", "shrink": 0.1}],
        "sweep": {},
    }
    summary = run_experiment(Experiment.from_dict(raw), tmp_path / "run", progress=None)
    by_variant = summary.groupby("variant")["mean_abs_kernel_0"].mean()
    assert by_variant["shrink"] < by_variant["baseline"]
    run = RunData.load(tmp_path / "run")
    assert figures.uses_penalty(run)  # it asked for the weights panel
    html = write_report([tmp_path / "run"], tmp_path / "report.html").read_text()
    assert 'alt="weights"' in html and "kernel weights of all seeds" in html  # the weights panel


def test_the_suite_catches_a_technique_that_is_not_pure():
    @dataclass(frozen=True)
    class Leaky(Technique):
        """Shrinks by the population's mean factor: a member's result depends on the others."""

        factor: float = setting(0.1, checks.RATE, "share", off=0.0)
        name = "leaky"
        reference = "a bug"

        @classmethod
        def stack(cls, settings, arch, device, available_logs) -> Piece:
            factors = member_column([s.factor if s else 0.0 for s in settings], device)
            return ShrinkPiece(torch.full_like(factors, float(factors.mean())))

    registry.register(Leaky)
    try:
        with pytest.raises(AssertionError, match=r"check_technique\(Leaky\): purity: member 0 .* in a population vs alone \(eager engine\): history 'loss' differs"):
            check_technique(Leaky)
    finally:
        registry.unregister("leaky")


def test_registering_refuses_what_would_clash():
    @dataclass(frozen=True)
    class Taken(Technique):
        rate: float = setting(0.1, checks.RATE, "a rate", key="dropout")
        name = "taken"
        reference = "-"

    with pytest.raises(ValueError, match="^register: Taken's experiment-file key 'dropout' is already dropout's$"):
        registry.register(Taken)

    @dataclass(frozen=True)
    class SameStream(Technique):
        rate: float = setting(0.1, checks.RATE, "a rate")
        name = "same_stream"
        reference = "-"
        rng_stream = 1

    with pytest.raises(ValueError, match="^register: SameStream's random stream 1 is already 'dropout''s; pick another number$"):
        registry.register(SameStream)

    @dataclass(frozen=True)
    class Undeclared(Technique):
        rate: float = 0.1
        name = "undeclared"

    with pytest.raises(TypeError, match=r"^Undeclared\.rate: declare every field of a technique with reglab\.engine\.technique\.setting\(\)$"):
        registry.register(Undeclared)
    assert "taken" not in [c.name for c in registry.techniques()]
    np.testing.assert_equal(sorted(registry._streams), [1, 2, 3])


def test_registering_wants_a_frozen_dataclass_and_its_own_scikit_learn_names():
    class NotADataclass(Technique):
        name = "plain"

    with pytest.raises(TypeError, match=r"^register: NotADataclass must be a frozen dataclass: put @dataclass\(frozen=True\) on the class$"):
        registry.register(NotADataclass)

    @dataclass(frozen=True)
    class Clash(Technique):
        size: float = setting(0.1, checks.RATE, "a rate", sklearn="hidden")
        name = "clash"
        reference = "-"

    with pytest.raises(ValueError, match=r"^register: Clash's scikit-learn parameter 'hidden' is already the estimators' own$"):
        registry.register(Clash)
    assert "clash" not in [c.name for c in registry.techniques()]
