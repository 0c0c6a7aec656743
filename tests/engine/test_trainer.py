"""Training-loop behaviour: Keras-like fit, stopping bookkeeping, isolation, prediction, devices."""

import numpy as np
import pytest
import torch

from reglab.engine import L2, SGD, Architecture, Dropout, EarlyStopping, Member, train
from reglab.engine import results as results_module

ARCH = Architecture(n_inputs=2, hidden=(32, 32), task="binary")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def fit(moons, members, **kw):
    X, y = moons
    kw.setdefault("epochs", 40)
    return train(kw.pop("arch", ARCH), members, X, y, validation_split=0.2, **kw)


def test_history_names_and_shapes(moons):
    r = fit(moons, [Member(0, 0.01), Member(1, 0.01)], epochs=5)
    assert sorted(r.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(v.shape == (2, 5) for v in r.history.values())
    assert r.stop_reason == ["max_epochs", "max_epochs"]
    assert r.epochs_run.tolist() == [5, 5]
    # Training loss goes down on this easy problem.
    assert (r.history["loss"][:, -1] < r.history["loss"][:, 0]).all()


def test_regression_history_names():
    X = np.linspace(-1, 1, 30)[:, None]
    arch = Architecture(n_inputs=1, hidden=(8,), task="regression")
    r = train(arch, [Member(0, 0.01)], X, X[:, 0] ** 2, epochs=3, validation_data=(X, X[:, 0] ** 2))
    assert sorted(r.history) == ["loss", "mae", "mse", "val_loss", "val_mae", "val_mse"]
    # Without a penalty, the MSE loss and the mse metric are the same number.
    np.testing.assert_allclose(r.history["val_loss"], r.history["val_mse"], rtol=1e-6)


def test_a_stopped_member_takes_no_further_update(moons):
    es = Member(2, 0.02, techniques=(EarlyStopping(patience=2, min_delta=0.01),))
    r = fit(moons, [es, Member(3, 0.01)], epochs=60)
    stopped = int(r.epochs_run[0])
    assert r.stop_reason[0] == "patience" and stopped < 60
    assert np.isnan(r.history["loss"][0, stopped:]).all()
    assert not np.isnan(r.history["loss"][0, :stopped]).any()
    # Exactly the weights of the same member trained for that many epochs, without the rule.
    plain = fit(moons, [Member(2, 0.02)], epochs=stopped)
    for a, b in zip(r.params, plain.params):
        assert torch.equal(a[0], b[0])


def test_restore_best_weights_restores_the_best_epoch(moons):
    member = Member(4, 0.05, techniques=(EarlyStopping(patience=5, restore_best_weights=True),))
    r = fit(moons, [member], epochs=80)
    best = int(r.best_epoch[0])
    assert r.restored[0] and best < r.epochs_run[0] - 1
    assert r.history["val_loss"][0, best] == np.nanmin(r.history["val_loss"][0])
    plain = fit(moons, [Member(4, 0.05)], epochs=best + 1)
    for a, b in zip(r.params, plain.params):
        assert torch.equal(a[0], b[0])


def test_restore_happens_even_when_patience_never_runs_out(moons):
    member = Member(4, 0.05, techniques=(EarlyStopping(patience=1000, restore_best_weights=True),))
    r = fit(moons, [member], epochs=30)
    assert r.stop_reason == ["max_epochs"] and r.restored[0]
    plain = fit(moons, [Member(4, 0.05)], epochs=int(r.best_epoch[0]) + 1)
    assert torch.equal(r.params[2][0], plain.params[2][0])


def test_best_epoch_without_a_rule_is_the_lowest_val_loss(moons):
    r = fit(moons, [Member(0, 0.01)], epochs=30)
    assert r.best_epoch[0] == np.argmin(r.history["val_loss"][0])


def test_a_diverging_member_is_stopped_and_flagged_alone():
    g = np.random.default_rng(0)
    X = g.normal(size=(40, 3))
    y = X.sum(1)
    arch = Architecture(n_inputs=3, hidden=(16,), task="regression")
    good = [Member(1, 0.001), Member(2, 0.01, techniques=(L2(1e-3),))]
    bad = Member(3, 1e20)
    kw = dict(epochs=20, optimizer=SGD(momentum=0.9), validation_split=0.25)
    mixed = train(arch, [good[0], bad, good[1]], X, y, **kw)
    assert mixed.stop_reason[1] == "non_finite" and mixed.epochs_run[1] < 20
    assert mixed.stop_reason[0] == mixed.stop_reason[2] == "max_epochs"
    alone = train(arch, good, X, y, **kw)
    for a, b in zip(mixed.params, alone.params):
        assert torch.equal(a[[0, 2]], b)
    assert np.isfinite(mixed.history["loss"][[0, 2]]).all()


@pytest.mark.parametrize("penalty", [(), (L2(1e-3),)])
def test_a_diverging_member_of_a_binary_task_stops_alone(moons, penalty):
    """torch's binary cross-entropy refused the diverged member's NaN probabilities and aborted the
    whole population; and a member without a penalty got 0 * inf = NaN from its neighbour's."""
    X, y = moons
    arch = Architecture(2, (16,), "relu", "binary")
    members = [Member(seed=0, learning_rate=0.01, techniques=penalty), Member(seed=1, learning_rate=1e38)]
    r = train(arch, members, X, y, validation_split=0.2, epochs=20)
    assert r.stop_reason == ["max_epochs", "non_finite"] and r.epochs_run[1] < 20
    for k in range(2):
        alone = train(arch, members[k : k + 1], X, y, validation_split=0.2, epochs=20)
        for name in r.history:
            np.testing.assert_array_equal(r.history[name][k], alone.history[name][0], err_msg=name)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(r.params, train(arch, members[:1], X, y, validation_split=0.2, epochs=20).params))


def test_population_ends_when_everyone_has_stopped(moons):
    calls = []
    members = [Member(s, 0.05, techniques=(EarlyStopping(monitor="loss", stopping_threshold=0.5, patience=100),)) for s in range(3)]
    r = fit(moons, members, epochs=500, on_epoch_end=lambda epoch, n: calls.append((epoch, n)))
    assert set(r.stop_reason) == {"stopping_threshold"}
    assert len(calls) == r.epochs_run.max() < 500
    assert calls[-1][1] == 0 and [n for _, n in calls] == sorted((n for _, n in calls), reverse=True)


def test_dropout_only_acts_at_training_time(moons):
    X, _ = moons
    r = fit(moons, [Member(0, 0.01, techniques=(Dropout(0.5),))], epochs=3)
    # Inference is the plain network on the trained weights: no mask, no 1 / (1 - rate) scaling.
    W0, b0, W1, b1, W2, b2 = (p[0].double().numpy() for p in r.params)
    relu = lambda t: np.maximum(t, 0.0)  # noqa: E731
    plain = 1.0 / (1.0 + np.exp(-(relu(relu(X @ W0 + b0) @ W1 + b1) @ W2 + b2)))
    np.testing.assert_allclose(r.predict(X)[0], plain, rtol=1e-5, atol=1e-6)
    a = fit(moons, [Member(0, 0.01, techniques=(Dropout(0.5),))], epochs=3)
    b = fit(moons, [Member(0, 0.01)], epochs=3)
    assert not torch.equal(a.params[0], b.params[0])


def test_dropout_keeps_the_expected_share_and_scales():
    from reglab.engine.techniques.dropout import DropoutPiece
    from reglab.engine.pieces import StepContext

    piece = DropoutPiece(torch.tensor([[0.0], [0.25], [0.5], [0.9]]))
    ctx = StepContext(seeds=torch.arange(4), learning_rate=torch.ones(4), epoch=0, step=0)
    out = piece.hidden(torch.ones(4, 200, 100), 0, ctx)
    kept = (out != 0).float().mean(dim=(1, 2))
    np.testing.assert_allclose(kept.numpy(), [1.0, 0.75, 0.5, 0.1], atol=0.01)
    for k, p in enumerate([0.0, 0.25, 0.5, 0.9]):
        assert torch.allclose(out[k][out[k] != 0], torch.tensor(1 / (1 - p)))
    # A new step gives a new mask.
    other = piece.hidden(torch.ones(4, 200, 100), 0, StepContext(ctx.seeds, ctx.learning_rate, 0, 1))
    assert not torch.equal(out[2], other[2])


def test_predict_on_a_large_grid_in_one_batched_call(moons, monkeypatch):
    members = [Member(s, 0.01) for s in range(3)]
    r = fit(moons, members, epochs=2)
    xx, yy = np.meshgrid(np.linspace(-2, 3, 400), np.linspace(-1.5, 2, 250))
    grid = np.c_[xx.ravel(), yy.ravel()]  # 100,000 points
    p = r.predict(grid)
    assert p.shape == (3, 100_000, 1) and ((p >= 0) & (p <= 1)).all()
    # Chunking rows to bound memory changes nothing.
    monkeypatch.setattr(results_module, "PREDICT_BUDGET_BYTES", 4096)
    np.testing.assert_array_equal(r.predict(grid[:5000]), p[:, :5000])
    proba = r.predict_proba(grid[:10])
    np.testing.assert_allclose(proba.sum(-1), 1.0, rtol=1e-6)
    assert r.predict_labels(grid[:10]).shape == (3, 10)


def test_evaluate_separates_the_penalty(moons):
    X, y = moons
    r = fit(moons, [Member(0, 0.01, techniques=(L2(0.01),)), Member(0, 0.01)], epochs=3)
    e = r.evaluate(X, y)
    assert e["loss"][0] > e["data_loss"][0]
    assert e["loss"][1] == e["data_loss"][1]


def test_multiclass_training_learns():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    arch = Architecture(n_inputs=4, hidden=(16,), task="multiclass", n_outputs=3)
    order = np.random.default_rng(0).permutation(150)
    r = train(arch, [Member(s, 0.01) for s in range(3)], X[order], y[order], epochs=60, validation_split=0.2)
    assert (r.history["val_accuracy"][:, -1] > 0.8).all()


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_every_available_device(moons, device):
    members = [Member(s, 0.01, techniques=(Dropout(0.2), EarlyStopping(patience=3))) for s in range(4)]
    r = fit(moons, members, epochs=10, device=device)
    assert r.params[0].device.type == device
    cpu = fit(moons, members, epochs=10)
    # Same keys, same masks and row orders on any device; kernels may round differently.
    np.testing.assert_allclose(r.history["loss"], cpu.history["loss"], rtol=1e-3, atol=1e-4)


def test_per_member_labels_are_not_mistaken_for_one_hot_rows():
    """Per-member integer labels (K, N) with N equal to the number of classes looked like shared
    one-hot rows (N, C) and were refused (found by the generated suite); the same for a one-row
    regression target per member."""
    g = np.random.default_rng(0)
    arch = Architecture(3, (4,), task="multiclass", n_outputs=2)
    x, y = g.normal(size=(3, 2, 3)), np.array([[0, 1], [1, 0], [0, 1]])
    r = train(arch, [Member(s, 0.01) for s in range(3)], x, y, epochs=2, validation_data=(x, y))
    alone = train(arch, [Member(1, 0.01)], x[1:2], y[1:2], epochs=2, validation_data=(x[1:2], y[1:2]))
    np.testing.assert_array_equal(r.history["val_loss"][1], alone.history["val_loss"][0])
    one_row = Architecture(3, (4,), task="regression")
    r = train(one_row, [Member(s, 0.01) for s in range(2)], g.normal(size=(2, 1, 3)), np.array([[0.5], [-1.0]]), epochs=2)
    assert r.history["loss"].shape == (2, 2)
