"""The techniques beyond the origin notebooks: weight decay, max-norm, Gaussian noise and dropout,
proximal L1, Prechelt's stopping criteria and MC dropout. Each against Keras where Keras has it,
against hand-derived cases where it does not."""

import math

import numpy as np
import pytest
import torch

from reglab.engine import (
    L1,
    L2,
    SGD,
    Architecture,
    Dropout,
    GaussianDropout,
    GaussianNoise,
    MaxNorm,
    Member,
    Prechelt,
    ProximalL1,
    WeightDecay,
    init_params,
    rng,
    train,
)
from reglab.engine.pieces import StepContext

from test_keras_reference import keras_fit_in_order  # tests/engine is on the path (rootdir-relative imports)

ARCH = Architecture(n_inputs=2, hidden=(16, 16), task="binary")


def ctx(k, lr=0.1, epoch=0, step=0):
    return StepContext(seeds=torch.arange(k), learning_rate=torch.full((k,), lr), epoch=epoch, step=step)


def stacked(technique_cls, settings, arch=ARCH):
    return technique_cls.stack(settings, arch, torch.device("cpu"), {"loss": "min", "val_loss": "min"})


# --- weight decay ------------------------------------------------------------------------------


def test_weight_decay_is_keras_adam_weight_decay(keras, moons):
    """A whole run against Keras's Adam(weight_decay=...), biases excluded as reglab's default."""
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(16,), task="binary")
    members = [Member(seed=4, learning_rate=0.01, techniques=(WeightDecay(0.05),))]
    ours = train(arch, members, X[:80], y[:80], validation_data=(X[80:], y[80:]), epochs=15)
    init = init_params(arch, torch.tensor([4]))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.set_weights([p[0].numpy() for p in init])
    opt = keras.optimizers.Adam(0.01, weight_decay=0.05)
    opt.exclude_from_weight_decay(var_names=["bias"])
    model.compile(opt, "binary_crossentropy", metrics=["accuracy"])
    hist = keras_fit_in_order(keras, model, 4, X[:80], y[:80], X[80:], y[80:], 15, 32)
    np.testing.assert_allclose(ours.history["loss"][0], hist["loss"], rtol=2e-4)
    for a, b in zip(ours.params, model.get_weights()):
        np.testing.assert_allclose(a[0].numpy(), b, rtol=1e-3, atol=1e-5)


def test_under_plain_sgd_weight_decay_2l_is_the_l2_penalty_l():
    """SGD with L2: w <- w - lr (g + 2 l w) = w - lr g - 2 lr l w. Decoupled decay wd:
    w <- (w - lr wd w) - lr g. Equal for wd = 2 l (up to float rounding); under Adam the penalty's
    gradient is rescaled by the second-moment estimate and the two part ways."""
    X, y = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32), (np.arange(64) % 2).astype(np.float32)
    lam = 0.01
    runs = {}
    for opt in ("sgd", "adam"):
        members = [Member(seed=1, learning_rate=0.05, techniques=(L2([lam] * 3),)), Member(seed=1, learning_rate=0.05, techniques=(WeightDecay(2 * lam),))]
        runs[opt] = train(ARCH, members, X, y, epochs=20, optimizer=SGD() if opt == "sgd" else "adam")
    sgd, adam = runs["sgd"], runs["adam"]
    for i in (0, 2, 4):  # kernels: L2 as a list covers the output kernel too, as decay does
        np.testing.assert_allclose(sgd.params[i][0].numpy(), sgd.params[i][1].numpy(), rtol=1e-4, atol=1e-6)
        gap = (adam.params[i][0] - adam.params[i][1]).abs().max().item()
        assert gap > 1e-3, f"under Adam, layer {i // 2}: L2 and weight decay should differ, max gap {gap}"


def test_weight_decay_spares_biases_unless_asked():
    params = [torch.ones(2, 2, 3), torch.ones(2, 3)]
    piece = stacked(WeightDecay, [WeightDecay(0.5), WeightDecay(0.5, biases=True)])
    piece.before_update(params, ctx(2, lr=0.1))
    assert torch.allclose(params[0], torch.full((2, 2, 3), 0.95))
    assert torch.equal(params[1][0], torch.ones(3)) and torch.allclose(params[1][1], torch.full((3,), 0.95))


# --- max-norm ----------------------------------------------------------------------------------


def test_max_norm_is_keras_max_norm(keras):
    g = torch.Generator().manual_seed(0)
    kernels = [torch.randn(3, 2, 16, generator=g) * 2, torch.randn(3, 16, 16, generator=g), torch.randn(3, 16, 1, generator=g)]
    params = [p for w in kernels for p in (w.clone(), torch.zeros(3, w.shape[-1]))]
    piece = stacked(MaxNorm, [MaxNorm(1.5), None, MaxNorm([0.5, 2.0])])
    before = [p.clone() for p in params]
    piece.after_update(params, ctx(3))
    for k, bounds in ((0, (1.5, 1.5)), (2, (0.5, 2.0))):
        for layer, bound in enumerate(bounds):
            expected = keras.ops.convert_to_numpy(keras.constraints.MaxNorm(bound, axis=0)(before[2 * layer][k]))
            np.testing.assert_allclose(params[2 * layer][k].numpy(), expected, rtol=1e-6, atol=1e-7)
            assert (params[2 * layer][k].norm(dim=0) <= bound * (1 + 1e-6)).all()
    assert all(torch.equal(a[1], b[1]) for a, b in zip(params, before))  # no constraint: untouched
    assert torch.equal(params[4], before[4])  # the output layer is never constrained


def test_max_norm_training_run_matches_keras(keras, moons):
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(16,), task="binary")
    ours = train(arch, [Member(seed=2, learning_rate=0.05, techniques=(MaxNorm(0.8),))], X[:80], y[:80], validation_data=(X[80:], y[80:]), epochs=10)
    init = init_params(arch, torch.tensor([2]))
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(16, activation="relu", kernel_constraint=keras.constraints.MaxNorm(0.8)), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.set_weights([p[0].numpy() for p in init])
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    hist = keras_fit_in_order(keras, model, 2, X[:80], y[:80], X[80:], y[80:], 10, 32)
    np.testing.assert_allclose(ours.history["val_loss"][0], hist["val_loss"], rtol=2e-4)
    assert ours.params[0][0].norm(dim=0).max() <= 0.8 * (1 + 1e-6)


# --- Gaussian noise and Gaussian dropout -------------------------------------------------------


def test_rng_normal_is_standard_normal_and_keyed():
    keys = rng.derive_keys(torch.arange(4), 99)
    z = rng.normal(keys, (50_000,))
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1) < 0.02
    assert abs(((z > 1.96).float().mean() - 0.025).item()) < 0.004
    assert torch.equal(rng.normal(keys[2:3], (50_000,))[0], z[2])  # a member's draws are its own
    assert torch.equal(rng.normal(keys, (7, 3))[1].flatten(), rng.normal(keys[1:2], (21,))[0])


@pytest.mark.parametrize("kind", ["noise", "dropout"])
def test_gaussian_layers_match_keras_in_distribution(keras, kind):
    x = np.full((1, 200, 64), 2.0, dtype=np.float32)
    if kind == "noise":
        piece = stacked(GaussianNoise, [GaussianNoise(0.3)])
        theirs = keras.layers.GaussianNoise(0.3, seed=1)(x[0], training=True)
    else:
        piece = stacked(GaussianDropout, [GaussianDropout(0.4)])
        theirs = keras.layers.GaussianDropout(0.4, seed=1)(x[0], training=True)
    ours = piece.hidden(torch.from_numpy(x), 0, ctx(1)).numpy()[0]
    theirs = keras.ops.convert_to_numpy(theirs)
    spread = 0.3 if kind == "noise" else 2.0 * math.sqrt(0.4 / 0.6)
    for sample in (ours, theirs):
        assert abs(sample.mean() - 2.0) < 0.02 and abs(sample.std() - spread) / spread < 0.03
    assert abs(ours.std() - theirs.std()) / spread < 0.05


def test_noise_on_inputs_only_where_asked_and_never_at_inference():
    piece = stacked(GaussianNoise, [GaussianNoise(0.0, input_stddev=0.5), None])
    x = torch.ones(2, 10, 2)
    noisy = piece.hidden(x, -1, ctx(2))
    assert not torch.equal(noisy[0], x[0]) and torch.equal(noisy[1], x[1])
    assert torch.equal(piece.hidden(torch.ones(2, 10, 16), 0, ctx(2)), torch.ones(2, 10, 16))  # stddev 0 on hidden
    m = [Member(seed=0, learning_rate=0.01, techniques=(GaussianNoise(0.5, input_stddev=0.5), GaussianDropout(0.5)))]
    X, y = np.ones((8, 2), np.float32), np.ones(8, np.float32)
    result = train(ARCH, m, X, y, epochs=1)
    assert np.ptp(result.predict(X)) == 0  # inference is deterministic: the noise is off


def test_gaussian_settings_are_checked():
    with pytest.raises(ValueError, match=r"gaussian_dropout: must be a number in \[0, 1\), got 1"):
        GaussianDropout(1)
    with pytest.raises(ValueError, match=r"input_noise: must be a number >= 0, got -0.1"):
        GaussianNoise(0.1, input_stddev=-0.1)
    with pytest.raises(ValueError, match=r"gaussian_noise\[1\]: must be a number >= 0, got -1"):
        GaussianNoise([0.1, -1])


# --- proximal L1 -------------------------------------------------------------------------------


def test_proximal_l1_soft_thresholds_by_lr_times_l1():
    w = torch.tensor([[[0.5, -0.003, 0.001, -0.002]]]).expand(2, 1, 4).clone()  # two members
    params = [w, torch.zeros(2, 4)]
    arch = Architecture(n_inputs=1, hidden=(4,), task="binary")
    piece = ProximalL1.stack([ProximalL1([0.02, 0.0]), None], arch, torch.device("cpu"), {})
    piece.after_update(params + [torch.zeros(2, 4, 1), torch.zeros(2, 1)], ctx(2, lr=0.1))
    # threshold lr * l1 = 0.002: sign(w) * max(|w| - 0.002, 0)
    np.testing.assert_allclose(params[0][0, 0].numpy(), [0.498, -0.001, 0.0, 0.0], atol=1e-7)
    assert (params[0][0, 0, 2:] == 0).all()
    assert torch.equal(params[0][1], torch.tensor([[0.5, -0.003, 0.001, -0.002]]))  # no technique: untouched


def test_proximal_l1_gives_exact_zeros_where_subgradient_l1_does_not(moons):
    X, y = moons
    members = [Member(seed=0, learning_rate=0.1, techniques=(ProximalL1(0.05),)), Member(seed=0, learning_rate=0.1, techniques=(L1(0.05),))]
    result = train(ARCH, members, X, y, epochs=40, optimizer=SGD())
    zeros = [(result.params[0][k] == 0).float().mean().item() for k in range(2)]
    assert zeros[0] > 0.2 and zeros[1] == 0, zeros


# --- Prechelt's criteria -----------------------------------------------------------------------


def run_rule(rule, val, train_loss):
    """Feed one member's losses epoch by epoch; return the (0-based) epoch it stops after, and why."""
    piece = stacked(Prechelt, [rule])
    params = [torch.zeros(1, 2, 2)]
    for epoch, (v, t) in enumerate(zip(val, train_loss)):
        decision = piece.on_epoch_end(epoch, {"val_loss": torch.tensor([v]), "loss": torch.tensor([t])}, params)
        if decision.stop.item():
            return epoch, int(decision.reason.item())
    return None, None


def test_gl_stops_when_the_generalization_loss_exceeds_alpha():
    # E_opt = 0.8 after epoch 1; GL(2) = 100 (0.86 / 0.8 - 1) = 7.5 <= 10; GL(3) = 12.5 > 10.
    epoch, reason = run_rule(Prechelt("GL", alpha=10), [1.0, 0.8, 0.86, 0.9, 0.7], [1.0] * 5)
    assert (epoch, reason) == (3, 5)


def test_pq_stops_at_a_strip_end_when_gl_over_progress_exceeds_alpha():
    # Strips of k=2. Epoch 3 ends strip 2: train losses (0.51, 0.50): P = 1000 (1.01 / 1.0 - 1) = 10;
    # GL = 100 (0.9 / 0.8 - 1) = 12.5; PQ = 1.25 > 1. Epoch 2's GL is larger, but it ends no strip.
    val = [1.0, 0.8, 0.95, 0.9, 0.9]
    train_loss = [1.0, 0.9, 0.51, 0.50, 0.49]
    assert run_rule(Prechelt("PQ", alpha=1.0, strip=2), val, train_loss) == (3, 6)
    assert run_rule(Prechelt("PQ", alpha=2.0, strip=2), val, train_loss) == (None, None)


def test_up_stops_after_s_successive_strips_with_a_rise():
    # k=2: strip ends at epochs 1, 3, 5, 7 with values 0.8, 0.85, 0.9, 0.95 -> rises at 3, 5, 7.
    val = [1.0, 0.8, 0.7, 0.85, 0.6, 0.9, 0.6, 0.95]
    assert run_rule(Prechelt("UP", strips=2, strip=2), val, [1.0] * 8) == (5, 7)
    assert run_rule(Prechelt("UP", strips=3, strip=2), val, [1.0] * 8) == (7, 7)
    assert run_rule(Prechelt("UP", strips=4, strip=2), val, [1.0] * 8) == (None, None)


def test_prechelt_restores_the_best_weights_and_reports_why(moons):
    X, y = moons
    members = [Member(seed=s, learning_rate=0.05, techniques=(Prechelt(c, alpha=1.0, strips=2, strip=3, restore_best_weights=True),)) for s, c in enumerate(CRITERIA)]
    result = train(Architecture(n_inputs=2, hidden=(64, 64), task="binary"), members, X, y, validation_split=0.2, epochs=300)
    assert sorted(set(result.stop_reason)) == sorted(CRITERIA), result.stop_reason
    assert result.restored.all()
    for k in range(3):
        best = result.best_epoch[k]
        assert result.history["val_loss"][k, best] == np.nanmin(result.history["val_loss"][k])
        assert best < result.epochs_run[k] - 1


CRITERIA = ("GL", "PQ", "UP")


def test_prechelt_settings_are_checked():
    with pytest.raises(ValueError, match=r"prechelt.criterion: must be one of 'GL', 'PQ', 'UP', got 'XY'"):
        Prechelt("XY")
    with pytest.raises(ValueError, match=r"prechelt.strip: must be an integer >= 1, got 0"):
        Prechelt("UP", strip=0)
    with pytest.raises(ValueError, match=r"prechelt.monitor"):
        train(ARCH, [Member(seed=0, learning_rate=0.01, techniques=(Prechelt(),))], np.ones((8, 2)), np.ones(8), epochs=1)


# --- MC dropout --------------------------------------------------------------------------------


def test_mc_dropout_is_batched_pure_and_deterministic(moons):
    X, y = moons
    members = [
        Member(seed=0, learning_rate=0.01, techniques=(Dropout(0.5),)),
        Member(seed=1, learning_rate=0.01),
        Member(seed=2, learning_rate=0.01, techniques=(GaussianDropout(0.3),)),
    ]
    result = train(ARCH, members, X, y, epochs=5)
    mean, std = result.mc_predict(X, samples=30)
    assert mean.shape == (3, 100, 1) and std.shape == (3, 100, 1)
    assert (std[0] > 0).any() and (std[2] > 0).any() and (std[1] == 0).all()
    np.testing.assert_allclose(mean[1], result.predict(X)[1], rtol=1e-6)  # no dropout: the plain prediction
    again = result.mc_predict(X, samples=30)
    assert np.array_equal(again[0], mean)  # keyed, not drawn from a global stream
    alone = train(ARCH, [members[0]], X, y, epochs=5).mc_predict(X, samples=30)
    np.testing.assert_array_equal(alone[0][0], mean[0])
    assert not np.allclose(result.mc_predict(X, samples=31)[0][0], mean[0])  # more passes, another average
    without = train(ARCH, [members[1], Member(seed=3, techniques=(Dropout(0.0),))], X, y, epochs=1)
    with pytest.raises(ValueError, match="^mc_predict: no member has dropout or gaussian_dropout above 0"):
        without.mc_predict(X)
