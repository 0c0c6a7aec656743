"""Label smoothing against the real Keras (torch backend), and where it does not apply."""

import numpy as np
import pytest
import torch

from reglab.engine import Architecture, Member, init_params, rng, train
from reglab.engine.losses import make_loss, make_metric
from reglab.engine.results import evaluate_params
from reglab.engine.techniques.label_smoothing import LabelSmoothing
from reglab.errors import UserError
from reglab.sklearn import MLPClassifier, MLPRegressor
from reglab.spec import Experiment


def _keras_model(keras, arch, params, k, head):
    layers = [keras.Input((arch.n_inputs,))] + [keras.layers.Dense(w, activation=arch.activation) for w in arch.hidden]
    model = keras.Sequential([*layers, keras.layers.Dense(arch.n_outputs, activation=head)])
    model.set_weights([p[k].detach().numpy() for p in params])
    return model


def test_a_binary_training_run_matches_keras(keras, moons):
    """Same weights, same row order: every epoch's loss, val_loss and accuracy as Keras's."""
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(16, 16), task="binary")
    seeds, share, epochs = [2, 5], 0.2, 12
    ours = train(arch, [Member(seed=s, learning_rate=0.01, techniques=[LabelSmoothing(share)]) for s in seeds], X[:80], y[:80], validation_data=(X[80:], y[80:]), epochs=epochs)
    init = init_params(arch, torch.tensor(seeds))
    for k, seed in enumerate(seeds):
        model = _keras_model(keras, arch, init, k, "sigmoid")
        model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(label_smoothing=share), metrics=["accuracy"])
        history: dict = {}
        for epoch in range(epochs):
            order = rng.permutations(torch.tensor([seed]), epoch, 80)[0].numpy()
            h = model.fit(X[:80][order], y[:80][order], batch_size=32, epochs=1, shuffle=False, validation_data=(X[80:], y[80:]), verbose=0)
            for name, values in h.history.items():
                history.setdefault(name, []).extend(values)
        for name in ("loss", "val_loss", "accuracy", "val_accuracy"):
            np.testing.assert_allclose(ours.history[name][k], history[name], rtol=2e-4, atol=1e-5, err_msg=name)


def test_multiclass_loss_on_the_same_weights_is_keras_categorical_crossentropy(keras):
    g = np.random.default_rng(1)
    X = g.normal(size=(50, 3)).astype(np.float32)
    labels = g.integers(0, 4, size=50)
    arch = Architecture(n_inputs=3, hidden=(8,), task="multiclass", n_outputs=4)
    params = init_params(arch, torch.tensor([0, 1]))
    result = train(arch, [Member(seed=0, techniques=[LabelSmoothing(0.3)]), Member(seed=1)], X, labels, epochs=1, initial_params=params)
    ours = result.evaluate(X, labels)
    for k, share in enumerate((0.3, 0.0)):
        model = _keras_model(keras, arch, result.params, k, "softmax")
        model.compile("adam", keras.losses.CategoricalCrossentropy(label_smoothing=share), metrics=["accuracy"])
        theirs = model.evaluate(X, np.eye(4)[labels], batch_size=50, verbose=0, return_dict=True)
        assert ours["loss"][k] == pytest.approx(theirs["loss"], rel=1e-6)
        assert ours["accuracy"][k] == pytest.approx(theirs["accuracy"], abs=1e-7)  # metrics see the true labels


def test_the_summarys_data_loss_is_on_the_true_labels(moons):
    """Variants compare on the plain loss: ``data_loss`` is the unsmoothed one, ``loss`` Keras's."""
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(8,), task="binary")
    params = init_params(arch, torch.tensor([0, 0]))
    result = train(arch, [Member(seed=0, techniques=[LabelSmoothing(0.2)]), Member(seed=0)], X, y, epochs=1, initial_params=params)
    scores = result.evaluate(X, y)
    plain = evaluate_params(arch, [p[:1] for p in result.params], X, y, make_loss("binary_crossentropy", "binary"), [])
    assert scores["data_loss"][0] == pytest.approx(plain["data_loss"][0], rel=1e-6)
    assert scores["loss"][0] > scores["data_loss"][0]  # smoothed: higher on a fitting model


def test_smoothing_raises_the_loss_of_a_confident_correct_model():
    """What it is for: a saturated, correct sigmoid costs nothing unsmoothed and a lot smoothed."""
    arch = Architecture(n_inputs=1, hidden=(1,), task="binary")
    params = [torch.ones(1, 1, 1), torch.zeros(1, 1), torch.full((1, 1, 1), 50.0), torch.zeros(1, 1)]
    x, y = np.array([[1.0], [2.0]], dtype=np.float32), np.array([1.0, 1.0], dtype=np.float32)
    loss = make_loss("binary_crossentropy", "binary")
    plain = evaluate_params(arch, params, x, y, loss, [make_metric("accuracy", "binary")])["loss"][0]
    piece = LabelSmoothing.stack([LabelSmoothing(0.2)], arch, torch.device("cpu"), {})
    smoothed = evaluate_params(arch, params, x, y, loss, [], target_pieces=[piece])["loss"][0]
    assert plain < 1e-6 and smoothed > 1.0  # 0.1 * -log(1e-7) ~ 1.6


def test_regression_is_refused_in_an_experiment_file_and_in_train(tmp_path):
    raw = {"name": "r", "seeds": 1, "data": {"dataset": "seed-dropout-regression"}, "variant": [{"name": "s", "label_smoothing": 0.1}]}
    experiment = Experiment.from_dict(raw, "r.toml")
    from reglab.plan import make_plan

    with pytest.raises(UserError, match=r"^r\.toml: variant\[0\]\.label_smoothing: applies to binary and multiclass tasks only, got a regression task$"):
        make_plan(experiment)
    with pytest.raises(ValueError, match="^label_smoothing: applies to binary and multiclass tasks only, got a regression task$"):
        train(Architecture(n_inputs=1, hidden=(4,), task="regression"), [Member(seed=0, techniques=[LabelSmoothing(0.1)])], np.zeros((4, 1)), np.zeros(4), epochs=1)


def test_a_classifier_parameter_not_a_regressor_one():
    assert MLPClassifier().get_params()["label_smoothing"] == 0.0
    assert "label_smoothing" not in MLPRegressor().get_params()
    assert MLPClassifier(label_smoothing=0.1)._techniques() == (LabelSmoothing(0.1),)
