"""The shipped example experiments beyond the notebooks, run in a quick form (2 seeds, a tenth of
the epochs): they run, and they show what they are there to show."""

import re
import tomllib
from importlib import resources

import numpy as np
import pytest

from reglab.runner import run_experiment
from reglab.spec import Experiment


def quick(name, seeds=2, divide=10):
    raw = tomllib.loads(resources.files("reglab.examples").joinpath(f"{name}.toml").read_text())
    raw["seeds"] = seeds
    raw["train"]["epochs"] = max(20, raw["train"]["epochs"] // divide)
    return Experiment.from_dict(raw, f"{name}.toml")


FOLDERS = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")

    def run(name, **kw):
        FOLDERS[name] = out / name
        return run_experiment(quick(name, **kw), FOLDERS[name])

    return run


def test_weight_decay_equals_l2_under_sgd_not_under_adam(runs):
    s = runs("weight-decay-vs-l2").set_index(["variant", "seed"])["val_loss"]
    sgd = np.abs(s["sgd, l2 0.001"].to_numpy() - s["sgd, weight decay 0.002"].to_numpy())
    adam = np.abs(s["adam, l2 0.001"].to_numpy() - s["adam, weight decay 0.002"].to_numpy())
    assert sgd.max() < 1e-3 < adam.min(), (sgd, adam)


def test_prechelt_criteria_against_patience(runs):
    summary = runs("prechelt-vs-patience")
    reasons = summary.groupby("variant")["stop_reason"].agg(set).to_dict()
    assert reasons["GL 5"] <= {"GL", "max_epochs"} and reasons["UP 3"] <= {"UP", "max_epochs"}
    assert reasons["PQ 0.5"] == {"PQ"} and reasons["patience 20 (notebook)"] == {"patience"}
    assert summary.loc[summary["variant"] == "GL 5", "restored"].all()


def test_proximal_l1_zeros_and_dropped_features(runs):
    summary = runs("proximal-l1", divide=1)
    by = summary.groupby("variant")
    assert (by["zeros_0"].mean()["proximal l1 0.01"] > 0.05) and (by["zeros_0"].max()["l1 0.01"] == 0)
    dropped = summary.loc[summary["variant"] == "proximal l1 0.3", "dropped_inputs"].fillna("")
    assert dropped.str.len().gt(0).all()  # the strong one ignores some of the 30 features entirely
    from reglab.data import load_builtin

    names = set(load_builtin("breast_cancer").feature_names)
    assert all(set(d.split(";")) <= names for d in dropped)
    assert summary.loc[summary["variant"] == "baseline", "dropped_inputs"].fillna("").eq("").all()


def test_noise_and_max_norm_example_runs(runs):
    summary = runs("noise-and-max-norm")
    assert len(summary) == 10 and np.isfinite(summary["val_loss"]).all()


def test_mc_dropout_adds_the_predictive_likelihood(runs):
    summary = runs("dropout-regression")
    mc = summary.set_index("variant")[["test_mc_mse", "test_mc_nll"]]
    assert mc.loc["baseline"].isna().all().all() and np.isfinite(mc.loc["dropout 0.5"].to_numpy()).all()


def test_the_report_shows_each_technique_where_it_applies(runs, tmp_path):
    """After the runs above: MC-dropout bands for the regression, the stopping trade-off for
    Prechelt's rules, exact zeros and dropped inputs for proximal L1."""
    from reglab.report import write_report

    names = ["dropout-regression", "prechelt-vs-patience", "proximal-l1", "weight-decay-vs-l2"]
    assert all(name in FOLDERS for name in names), "runs the example tests above first (same module)"
    page = write_report([FOLDERS[n] for n in names], tmp_path / "r.html").read_text()
    sections = dict(re.findall(r'<section class="experiment" id="([^"]+)">(.*?)</section>', page, re.S))
    assert 'alt="mc dropout"' in sections["dropout-regression"] and "MC dropout test Gaussian NLL" in sections["dropout-regression"]
    assert 'alt="stopping trade-off"' in sections["prechelt-vs-patience"] and 'alt="stop epochs"' in sections["prechelt-vs-patience"]
    prox = sections["proximal-l1"]
    assert 'alt="weights"' in prox and "most often dropped" in prox and "exactly zero" in prox
    assert 'alt="weights"' in sections["weight-decay-vs-l2"]
    assert "p < 0.001" not in page  # escaped: p &lt; 0.001
