"""The stepping API: a population advanced one epoch at a time, inspected between epochs.

Pausing after any epoch (reading weights, history, stop state, predicting) and continuing must give
the same bits as an uninterrupted :func:`train`; what the trainer shows after ``e`` epochs must be
what a run of ``e`` epochs ends with.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons

from reglab.engine import Architecture, Member, Trainer, train
from test_purity import ARCH, MIXED

X, Y = make_moons(120, noise=0.3, random_state=0)
X = X.astype(np.float32)
Y = Y.astype(np.float32)
KW = dict(validation_split=0.2, batch_size=12, epochs=25)


def _assert_same(a, b):
    for p, q in zip(a.params, b.params):
        assert torch.equal(p, q)
    assert a.history.keys() == b.history.keys()
    for name in a.history:
        np.testing.assert_array_equal(a.history[name], b.history[name], err_msg=name)
    np.testing.assert_array_equal(a.epochs_run, b.epochs_run)
    assert a.stop_reason == b.stop_reason
    assert a.reports.keys() == b.reports.keys()
    for key in a.reports:
        np.testing.assert_array_equal(a.reports[key], b.reports[key], err_msg=key)


def test_pausing_after_every_epoch_and_reading_everything_changes_no_bit():
    uninterrupted = train(ARCH, MIXED, X, Y, **KW)
    trainer = Trainer(ARCH, MIXED, X, Y, **KW)
    still = []
    while not trainer.done:
        still.append(trainer.step())
        trainer.params, trainer.history(), trainer.epochs_run, trainer.stop_reason, trainer.reports()  # noqa: B018
        trainer.predict(X[:7])
    _assert_same(trainer.result(), uninterrupted)
    assert still[-1] == 0 and all(a >= b for a, b in zip(still, still[1:]))
    assert len(still) == uninterrupted.epochs_run.max()


@pytest.mark.parametrize("pause", [1, 4, 9])
def test_what_the_trainer_shows_after_e_epochs_is_what_an_e_epoch_run_ends_with(pause):
    # Members without restore_best_weights, so that a run that ends is where training stood.
    members = [m for m in MIXED if not any(getattr(t, "restore_best_weights", False) for t in m.techniques)]
    trainer = Trainer(ARCH, members, X, Y, **KW)
    for _ in range(pause):
        trainer.step()
    short = train(ARCH, members, X, Y, **{**KW, "epochs": pause})
    for p, q in zip(trainer.params, short.params):
        assert torch.equal(p, q)
    history = trainer.history()
    for name, values in short.history.items():
        np.testing.assert_array_equal(history[name], values, err_msg=name)
    np.testing.assert_array_equal(trainer.epochs_run, short.epochs_run)
    stopped = [r is not None for r in trainer.stop_reason]
    assert [r for r, s in zip(short.stop_reason, stopped) if s] == [r for r in trainer.stop_reason if r is not None]
    np.testing.assert_array_equal(trainer.training, ~np.array(stopped))
    reports = trainer.reports()
    for key, values in short.reports.items():  # of the members that stopped before the pause
        if any(stopped):
            np.testing.assert_array_equal(reports[key][stopped], values[stopped], err_msg=key)
    np.testing.assert_array_equal(trainer.predict(X), short.predict(X))


def test_what_the_trainer_hands_out_is_the_callers_to_change():
    trainer = Trainer(ARCH, MIXED[:3], X, Y, **{**KW, "epochs": 3})
    trainer.step()
    trainer.history()["loss"][:] = 123.0
    trainer.params[0][:] = 123.0
    trainer.step()
    trainer.step()
    first = trainer.result()
    first.history["loss"][:] = 7.0
    first.epochs_run[:] = 7
    first.params[0][:] = 7.0
    _assert_same(trainer.result(), train(ARCH, MIXED[:3], X, Y, **{**KW, "epochs": 3}))


def test_the_trainer_refuses_to_step_past_the_end_or_give_a_result_before_it():
    trainer = Trainer(Architecture(n_inputs=2, hidden=(4,)), [Member(seed=0)], X, Y, epochs=2)
    with pytest.raises(RuntimeError, match="not finished"):
        trainer.result()
    trainer.step()
    trainer.step()
    assert trainer.done
    with pytest.raises(RuntimeError, match="finished"):
        trainer.step()
