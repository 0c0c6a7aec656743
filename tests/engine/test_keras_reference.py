"""Whole training runs against the real Keras 3 (torch backend), on both engines.

The eager engine follows Keras operation for operation; the compiled engine computes the same
formulas with its sums in other orders and products fused with them (FMA). Over these 30-epoch
runs both stay within float32 rounding of Keras, at the same tolerances (``docs/speed.md`` gives
how far 2,000 epochs carry the difference).

A member trained without dropout from given initial weights, seeing its rows in a given order,
must end where a Keras model with the same weights and the same row order ends, with the same
per-epoch history. The row order is reglab's own (``rng.permutations``); Keras gets it as data
with ``shuffle=False``, one ``fit`` call per epoch (its Adam state carries over between calls).
"""

import numpy as np
import pytest
import torch

from reglab.engine import L1, L2, SGD, Architecture, Member, init_params, rng, train
from reglab.engine.losses import make_loss, make_metric
from reglab.engine.results import evaluate_params


def keras_model(keras, arch, params, k, l1=0.0, l2=0.0, head="sigmoid"):
    reg = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    layers = [keras.Input((arch.n_inputs,))]
    layers += [keras.layers.Dense(w, activation=arch.activation, kernel_regularizer=reg) for w in arch.hidden]
    layers += [keras.layers.Dense(arch.n_outputs, activation=head)]
    model = keras.Sequential(layers)
    model.set_weights([p[k].detach().numpy() for p in params])
    return model


def keras_fit_in_order(keras, model, seed, X, y, Xv, yv, epochs, batch_size):
    history = {}
    for epoch in range(epochs):
        order = rng.permutations(torch.tensor([seed]), epoch, len(X))[0].numpy()
        h = model.fit(X[order], y[order], batch_size=batch_size, epochs=1, shuffle=False, validation_data=(Xv, yv), verbose=0)
        for name, values in h.history.items():
            history.setdefault(name, []).extend(values)
    return {name: np.array(v) for name, v in history.items()}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["eager", "compiled"])
@pytest.mark.parametrize(
    "l1,l2,lr",
    [(0.0, 0.0, 0.01), (0.001, 0.0, 0.01), (0.0, 0.01, 0.005)],
)
def test_binary_training_run_matches_keras(keras, moons, l1, l2, lr, engine):
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(32, 32), task="binary")
    seeds = [3, 7]
    techniques = tuple(t for t in (L1(l1) if l1 else None, L2(l2) if l2 else None) if t)
    members = [Member(seed=s, learning_rate=lr, techniques=techniques) for s in seeds]
    epochs = 30
    ours = train(arch, members, X[:80], y[:80], validation_data=(X[80:], y[80:]), epochs=epochs, engine=engine)
    init = init_params(arch, torch.tensor(seeds))
    for k, seed in enumerate(seeds):
        model = keras_model(keras, arch, init, k, l1=l1, l2=l2)
        model.compile(keras.optimizers.Adam(lr), "binary_crossentropy", metrics=["accuracy"])
        hist = keras_fit_in_order(keras, model, seed, X[:80], y[:80], X[80:], y[80:], epochs, 32)
        for name in ("loss", "val_loss", "accuracy", "val_accuracy"):
            np.testing.assert_allclose(ours.history[name][k], hist[name], rtol=2e-4, atol=1e-5, err_msg=name)
        for ours_p, theirs_p in zip(ours.params, model.get_weights()):
            np.testing.assert_allclose(ours_p[k].numpy(), theirs_p, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["eager", "compiled"])
def test_regression_with_sgd_momentum_matches_keras(keras, engine):
    g = np.random.default_rng(0)
    X = np.linspace(-1, 1, 20, dtype=np.float32)[:, None]
    y = (X[:, 0] ** 3 + g.normal(scale=0.1, size=20)).astype(np.float32)
    arch = Architecture(n_inputs=1, hidden=(16, 16), activation="tanh", task="regression")
    member = Member(seed=11, learning_rate=0.05)
    ours = train(arch, [member], X, y, validation_data=(X, y), epochs=40, optimizer=SGD(momentum=0.9), batch_size=8, engine=engine)
    init = init_params(arch, torch.tensor([11]))
    model = keras_model(keras, arch, init, 0, head="linear")
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse", metrics=["mse", "mae"])
    hist = keras_fit_in_order(keras, model, 11, X, y, X, y, 40, 8)
    for name in ("loss", "val_loss", "mae", "val_mae"):
        np.testing.assert_allclose(ours.history[name][0], hist[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_overconfident_model_reports_what_keras_reports(keras, moons):
    """val_loss drives early stopping, and the origin models overfit hard: saturated sigmoids and
    softmaxes must cost exactly what Keras says they cost."""
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(64,), task="binary")
    params = init_params(arch, torch.tensor([0, 1]))
    params[2] = params[2] * 60.0  # output kernel: logits in the hundreds, probabilities exactly 0 or 1
    loss = make_loss("binary_crossentropy", "binary")
    ours = evaluate_params(arch, params, X, y, loss, [make_metric("accuracy", "binary")])
    for k in range(2):
        model = keras_model(keras, arch, params, k)
        model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        theirs = model.evaluate(X, y, batch_size=len(X), verbose=0, return_dict=True)
        assert ours["loss"][k] == pytest.approx(theirs["loss"], rel=1e-6)
        assert ours["accuracy"][k] == pytest.approx(theirs["accuracy"], abs=1e-7)
        assert ours["loss"][k] > 1.0  # really overconfident


def test_overconfident_softmax_reports_what_keras_reports(keras):
    g = np.random.default_rng(5)
    X = g.normal(size=(60, 3)).astype(np.float32)
    y = g.integers(0, 4, size=60)
    arch = Architecture(n_inputs=3, hidden=(16,), task="multiclass", n_outputs=4)
    params = init_params(arch, torch.tensor([4]))
    params[2] = params[2] * 80.0
    ours = evaluate_params(arch, params, X, y, make_loss("categorical_crossentropy", "multiclass"), [make_metric("accuracy", "multiclass")])
    model = keras_model(keras, arch, params, 0, head="softmax")
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    theirs = model.evaluate(X, np.eye(4)[y], batch_size=60, verbose=0, return_dict=True)
    assert ours["loss"][0] == pytest.approx(theirs["loss"], rel=1e-6)
    assert ours["accuracy"][0] == pytest.approx(theirs["accuracy"], abs=1e-7)


def test_validation_split_takes_the_last_rows_like_keras(keras):
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    from reglab.engine.arrays import keras_validation_split

    for n, frac in [(100, 0.2), (211, 0.2), (7, 0.3), (50, 0.33)]:
        X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
        y = np.arange(n, dtype=np.float32)[:, None]
        (kx, ky), (kvx, kvy) = train_validation_split((X, y), validation_split=frac)
        ox, oy, ovx, ovy = keras_validation_split(torch.from_numpy(X), torch.from_numpy(y), frac)
        np.testing.assert_array_equal(ox.numpy(), np.asarray(kx))
        np.testing.assert_array_equal(ovx.numpy(), np.asarray(kvx))


@pytest.mark.slow
def test_training_from_keras_initial_weights_matches_keras(keras, moons):
    """Start from the weights Keras itself drew, handed to reglab as ``initial_params``."""
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(16, 16), task="binary")
    keras.utils.set_random_seed(123)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(16, "relu"), keras.layers.Dense(1, "sigmoid")])
    initial = [torch.from_numpy(w)[None] for w in model.get_weights()]
    ours = train(arch, [Member(seed=9, learning_rate=0.01)], X[:80], y[:80], validation_data=(X[80:], y[80:]), epochs=20, initial_params=initial)
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    hist = keras_fit_in_order(keras, model, 9, X[:80], y[:80], X[80:], y[80:], 20, 32)
    np.testing.assert_allclose(ours.history["val_loss"][0], hist["val_loss"], rtol=2e-4, atol=1e-5)
    for ours_p, theirs_p in zip(ours.params, model.get_weights()):
        np.testing.assert_allclose(ours_p[0].numpy(), theirs_p, rtol=1e-3, atol=1e-5)
