"""Early-stopping decisions against keras.callbacks.EarlyStopping, over generated metric sequences.

Each generated case is one member: a sequence of monitored values and a parameter combination.
Several cases run as one population through reglab's vectorised rule, and each through Keras's
callback on its own; the stopped epoch, the best epoch and which epoch's weights end up in the
model must agree. The weights are markers: the model's weights at epoch e are the number e.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reglab.engine import Architecture, EarlyStopping
from reglab.engine.pieces import stack_pieces

ARCH = Architecture(n_inputs=1, hidden=(1,))
LOGS = {"loss": "min", "val_loss": "min", "accuracy": "max", "val_accuracy": "max"}


class MarkerModel:
    """Just enough of a Keras model for the callback: weights that record the epoch."""

    def __init__(self):
        self.stop_training = False
        self.metrics = []
        self.weights = [np.array([-1.0])]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]


def run_keras(keras, values, params):
    cb = keras.callbacks.EarlyStopping(**params)
    model = MarkerModel()
    cb.set_model(model)
    cb.on_train_begin()
    last = len(values) - 1
    for epoch, value in enumerate(values):
        model.weights = [np.array([float(epoch)])]
        # Keras's logs hold Python floats of float32 metric values.
        cb.on_epoch_end(epoch, {params["monitor"]: float(np.float32(value))})
        if model.stop_training:
            last = epoch
            break
    cb.on_train_end()
    stopped = model.stop_training
    return {"last_epoch": last, "stopped": stopped, "best_epoch": cb.best_epoch, "final_marker": float(model.weights[0][0])}


def run_ours(cases):
    """All cases as one population; returns one dict per case like run_keras."""
    K = len(cases)
    rules = [EarlyStopping(check_finite=False, **params) for _, params in cases]
    piece = stack_pieces([(r,) for r in rules], ARCH, torch.device("cpu"), LOGS)[0]
    n_epochs = max(len(v) for v, _ in cases)
    alive = np.ones(K, dtype=bool)
    last = np.array([len(v) - 1 for v, _ in cases])
    stopped = np.zeros(K, dtype=bool)
    for epoch in range(n_epochs):
        idx = np.flatnonzero(alive)
        if len(idx) == 0:
            break
        marker = [torch.full((K, 1), float(epoch))]
        logs = {name: torch.full((K,), math.nan) for name in LOGS}
        for k, (values, params) in enumerate(cases):
            logs[params["monitor"]][k] = values[min(epoch, len(values) - 1)]
        decision = piece.on_epoch_end(epoch, logs, marker)
        # Members whose sequence ended, or that stopped, leave the population (as in training).
        for k in idx:
            if epoch == len(cases[k][0]) - 1 or bool(decision.stop[k]):
                alive[k] = False
                last[k] = epoch
                stopped[k] = bool(decision.stop[k])
                final = piece.finalize([torch.full((K, 1), float(epoch))])[0]
                best = piece.report()["best_epoch"]
                cases[k] = (cases[k][0], {**cases[k][1], "_final": float(final[k, 0]), "_best": int(best[k])})
    return [
        {"last_epoch": int(last[k]), "stopped": bool(stopped[k]), "best_epoch": cases[k][1]["_best"], "final_marker": cases[k][1]["_final"]}
        for k in range(K)
    ]


values = st.lists(
    st.one_of(st.sampled_from([0.6, 0.5, 0.4, 0.35, 0.3, 0.30001, 0.29999, 0.25, 0.2]), st.floats(0, 1, width=32), st.just(math.nan)),
    min_size=1,
    max_size=30,
)
params = st.fixed_dictionaries(
    {
        "monitor": st.sampled_from(["val_loss", "loss", "val_accuracy"]),
        "min_delta": st.sampled_from([0.0, 1e-5, 0.01, 0.1, -0.01]),
        "patience": st.integers(0, 6),
        "mode": st.sampled_from(["min", "max", "auto"]),
        "baseline": st.one_of(st.none(), st.sampled_from([0.25, 0.35, 0.6]), st.floats(0, 1, width=32)),
        "restore_best_weights": st.booleans(),
        "start_from_epoch": st.integers(0, 5),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(values, params), min_size=1, max_size=6))
def test_decisions_match_keras(keras, cases):
    # Keras infers the direction of 'auto' from the model's metrics, which a marker model lacks;
    # for accuracy we state the mode explicitly (reglab's auto would say "max", as Keras does).
    cases = [(v, {**p, "mode": "max"}) if p["monitor"] == "val_accuracy" and p["mode"] == "auto" else (v, p) for v, p in cases]
    expected = [run_keras(keras, v, p) for v, p in cases]
    got = run_ours([(list(v), dict(p)) for v, p in cases])
    for (v, p), e, g in zip(cases, expected, got):
        assert g["last_epoch"] == e["last_epoch"], (v, p)
        assert g["stopped"] == e["stopped"], (v, p)
        assert g["final_marker"] == e["final_marker"], (v, p)
        if g["best_epoch"] >= 0:  # reglab says -1 where nothing was ever monitored; Keras says 0
            assert g["best_epoch"] == e["best_epoch"], (v, p)
        else:
            assert e["best_epoch"] == 0 and all(i < p["start_from_epoch"] for i in range(len(v)))


def _single(rule, values, monitor="val_loss"):
    piece = stack_pieces([(rule,)], ARCH, torch.device("cpu"), LOGS)[0]
    for epoch, value in enumerate(values):
        logs = {name: torch.tensor([value]) for name in LOGS}
        d = piece.on_epoch_end(epoch, logs, [torch.zeros(1, 1)])
        if bool(d.stop[0]):
            from reglab.engine.pieces import STOP_REASONS

            return epoch, STOP_REASONS[int(d.reason[0])]
    return None, None


def test_lightning_stopping_threshold():
    rule = EarlyStopping(patience=100, stopping_threshold=0.1)
    assert _single(rule, [0.5, 0.3, 0.12, 0.09, 0.05]) == (3, "stopping_threshold")


def test_lightning_divergence_threshold_and_non_finite():
    assert _single(EarlyStopping(patience=100, divergence_threshold=2.0), [0.5, 1.0, 2.5]) == (2, "divergence")
    assert _single(EarlyStopping(patience=100), [0.5, math.inf]) == (1, "non_finite")
    assert _single(EarlyStopping(patience=100, check_finite=False), [0.5, math.nan, 0.4]) == (None, None)


def test_thresholds_wait_for_start_from_epoch():
    rule = EarlyStopping(patience=100, stopping_threshold=0.1, start_from_epoch=3)
    assert _single(rule, [0.01, 0.01, 0.01, 0.01]) == (3, "stopping_threshold")


def test_patience_in_max_mode_on_accuracy():
    rule = EarlyStopping(monitor="val_accuracy", patience=2)
    assert _single(rule, [0.5, 0.6, 0.6, 0.55, 0.7], monitor="val_accuracy") == (3, "patience")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"patience": -1}, "early_stopping.patience: must be an integer >= 0, got -1"),
        ({"mode": "up"}, "early_stopping.mode: must be one of 'auto', 'min', 'max', got 'up'"),
        ({"min_delta": math.nan}, "early_stopping.min_delta: must be a finite number, got nan"),
        ({"start_from_epoch": 1.5}, "early_stopping.start_from_epoch: must be an integer >= 0, got 1.5"),
        ({"restore_best_weights": "yes"}, "early_stopping.restore_best_weights: must be true or false, got 'yes'"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError) as err:
        EarlyStopping(**kwargs)
    assert str(err.value) == message


def test_unknown_monitor_names_what_is_available():
    with pytest.raises(ValueError) as err:
        stack_pieces([(EarlyStopping(monitor="val_auc"),)], ARCH, torch.device("cpu"), {"loss": "min", "accuracy": "max"})
    assert str(err.value) == "early_stopping.monitor: must be one of 'loss', 'accuracy', got 'val_auc'"
