"""The compiled engine: its randomness is reglab's, its bits do not depend on threads or on how
training is cut into calls, it agrees with the eager engine, and each member takes the engine its
own settings allow (the purity and reference suites run on both engines: test_purity.py,
test_every_width.py, test_generated.py, test_keras_reference.py)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from reglab.engine import (
    L1,
    L2,
    SGD,
    Architecture,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    LabelSmoothing,
    MaxNorm,
    Member,
    Prechelt,
    ProximalL1,
    Technique,
    Trainer,
    WeightDecay,
    paths,
    rng,
    train,
)
from reglab.engine import kernel
from reglab.engine.techniques.mc_dropout import MCDropout

from conftest import eager_only_technique

EVERY_TECHNIQUE = [
    (),
    (L1(1e-3),),
    (L2([1e-2, 0.0, 1e-3]),),
    (Dropout([0.3, 0.1]),),
    (GaussianDropout(0.2),),
    (GaussianNoise(0.1, input_stddev=0.05),),
    (WeightDecay(0.05, biases=True),),
    (MaxNorm([1.0, 0.5]),),
    (ProximalL1(1e-2),),
    (EarlyStopping(patience=1, restore_best_weights=True),),
    (Prechelt("GL", alpha=0.5),),
    (Dropout(0.2), L1(1e-3), MaxNorm(2.0), WeightDecay(0.01)),
]


def _data(task, rows=45, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(rows, 3)).astype(np.float32)
    if task == "binary":
        return x, (x[:, 0] > 0).astype(np.float32)
    if task == "multiclass":
        return x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, np.stack([x[:, 0] - x[:, 1], x[:, 2]], axis=1)


def _arch(task, activation="relu", hidden=(7, 5)):
    return Architecture(n_inputs=3, hidden=hidden, activation=activation, task=task, n_outputs={"binary": 1, "multiclass": 3, "regression": 2}[task])


def _same(a, b):
    assert all(torch.equal(p, q) for p, q in zip(a.params, b.params))
    for name in a.history:
        np.testing.assert_array_equal(a.history[name], b.history[name], err_msg=name)
    assert a.epochs_run.tolist() == b.epochs_run.tolist() and a.stop_reason == b.stop_reason


# -- randomness: the same bits as rng.py's ------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 31, 32, 33, 100])
def test_row_orders_are_rngs(n):
    for seed, epoch in [(0, 0), (3, 7), (2**32 - 1, 123)]:
        out, bits = np.zeros(n, np.int64), np.zeros(n, np.int64)
        kernel._permutation(seed, epoch, n, out, bits)
        assert out.tolist() == rng.permutations(torch.tensor([seed]), epoch, n)[0].tolist()


@pytest.mark.parametrize("n", [1, 2, 5, 64, 129])
def test_dropout_masks_and_noise_are_rngs(n):
    seed, stream, epoch, step, layer = 5, 1, 3, 2, 1
    key = kernel._noise_key(seed, stream, epoch, step, layer)
    keys = rng.derive_keys(torch.tensor([seed]), rng.STREAM_NOISE, stream, epoch, step, layer)
    assert int(key) == int(keys[0])
    for rate in (0.1, 0.5, 0.9):
        mask = np.zeros(n, np.float32)
        kernel._keep_mask(key, n, round(float(np.float32(rate)) * 65536), mask)
        np.testing.assert_array_equal(mask, rng.keep_mask(keys, (n,), torch.tensor([rate]))[0].numpy())
    normal = np.zeros(n, np.float32)
    kernel._normal(key, n, normal)
    # The same uniforms; the logarithm and cosine may round their last bit differently.
    np.testing.assert_allclose(normal, rng.normal(keys, (n,))[0].numpy(), rtol=1e-6, atol=1e-6)


# -- what does not change a member's bits ---------------------------------------------------------------


def test_threads_do_not_change_the_bits(moons):
    X, y = moons
    arch = Architecture(2, (33, 17), "tanh", "binary")
    members = [Member(seed=s, learning_rate=0.01, techniques=EVERY_TECHNIQUE[s % 9]) for s in range(7)]
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(train(arch, members, X, y, validation_split=0.2, epochs=6, engine="compiled"))
    finally:
        torch.set_num_threads(before)
    _same(*runs)


def test_epochs_per_call_do_not_change_the_bits(moons):
    X, y = moons
    arch = Architecture(2, (16, 16), "relu", "binary")
    members = [Member(seed=s, learning_rate=0.02, techniques=(Dropout(0.2),)) for s in range(3)]
    kw = dict(validation_split=0.2, epochs=12, engine="compiled")
    stepped = Trainer(arch, members, X, y, **kw)
    while not stepped.done:
        stepped.step()
    called = Trainer(arch, members, X, y, **kw)
    called._compiled.seconds_per_epoch = 1e-9  # as many epochs per call as are left
    assert called.advance() == 0 and called.done and called.epoch == 12
    _same(stepped.result(), called.result())


def test_a_member_whose_loss_stops_being_finite_in_a_long_call_stops_there(moons):
    X, y = moons
    arch = Architecture(2, (16,), "relu", "binary")
    members = [Member(seed=0, learning_rate=0.01), Member(seed=1, learning_rate=1e38)]
    t = Trainer(arch, members, X, y, validation_split=0.2, epochs=10, engine="compiled")
    t._compiled.seconds_per_epoch = 1e-9
    t.advance()
    r = t.result()
    assert r.stop_reason == ["max_epochs", "non_finite"] and r.epochs_run.tolist() == [10, 1]
    assert np.isnan(r.history["loss"][1, 1:]).all()
    alone = train(arch, members[:1], X, y, validation_split=0.2, epochs=10, engine="compiled")
    assert all(torch.equal(p[0], q[0]) for p, q in zip(r.params, alone.params))


# -- the compiled engine agrees with the eager one ----------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
@pytest.mark.parametrize("optimizer", ["adam", SGD(momentum=0.9, nesterov=True), SGD()], ids=["adam", "nesterov", "sgd"])
def test_every_technique_agrees_with_the_eager_engine(task, activation, optimizer):
    """Three epochs of every technique: the two engines differ by float32 rounding only."""
    x, y = _data(task)
    arch = _arch(task, activation)
    cases = EVERY_TECHNIQUE + ([(LabelSmoothing(0.1),)] if task != "regression" else [])
    members = [Member(seed=i, learning_rate=0.01, techniques=t) for i, t in enumerate(cases)]
    kw = dict(epochs=3, batch_size=16, validation_split=0.2, optimizer=optimizer)
    ours, eager = train(arch, members, x, y, engine="compiled", **kw), train(arch, members, x, y, engine="eager", **kw)
    assert ours.epochs_run.tolist() == eager.epochs_run.tolist() and ours.stop_reason == eager.stop_reason
    for name in ours.history:
        np.testing.assert_allclose(ours.history[name], eager.history[name], rtol=1e-4, atol=1e-5, err_msg=name)
    for p, q in zip(ours.params, eager.params):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-4, atol=1e-5)


def test_unclipped_losses_agree_too():
    for task in ("binary", "multiclass"):
        x, y = _data(task)
        kw = dict(epochs=3, validation_split=0.2, clip_probabilities=False)
        members = [Member(seed=s, learning_rate=0.05) for s in range(2)]
        ours, eager = (train(_arch(task), members, x, y, engine=e, **kw) for e in ("compiled", "eager"))
        np.testing.assert_allclose(ours.history["val_loss"], eager.history["val_loss"], rtol=1e-4, atol=1e-6)


def test_mae_and_chosen_metrics():
    x, y = _data("regression")
    kw = dict(epochs=3, validation_split=0.2, loss="mae", metrics=["mae"])
    ours, eager = (train(_arch("regression"), [Member(seed=1, learning_rate=0.01)], x, y, engine=e, **kw) for e in ("compiled", "eager"))
    assert list(ours.history) == ["loss", "mae", "val_loss", "val_mae"]
    for name in ours.history:
        np.testing.assert_allclose(ours.history[name], eager.history[name], rtol=1e-4, atol=1e-6)


def test_initial_params_and_per_member_data(moons):
    X, y = moons
    arch = Architecture(2, (8,), "relu", "binary")
    g = np.random.default_rng(4)
    idx = np.stack([g.permutation(100)[:60] for _ in range(3)])
    initial = [torch.full_like(p, 0.1) for p in train(arch, [Member(seed=s) for s in range(3)], X, y, epochs=1).params]
    kw = dict(epochs=4, validation_data=(X[idx[:, :10]], y[idx[:, :10]]), initial_params=initial)
    ours, eager = (train(arch, [Member(seed=s, learning_rate=0.01) for s in range(3)], X[idx], y[idx], engine=e, **kw) for e in ("compiled", "eager"))
    for p, q in zip(ours.params, eager.params):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-4, atol=1e-5)


# -- which engine a member takes --------------------------------------------------------------------------


def test_auto_takes_compiled_where_a_member_can():
    arch = _arch("binary")
    assert paths.member_engine("auto", (Dropout(0.5), EarlyStopping(), MCDropout()), arch) == "compiled"
    assert paths.member_engine("auto", (), _arch("binary", "gelu")) == "eager"
    assert paths.member_engine("auto", (), arch, device="cuda") == "eager"
    assert paths.member_engine("eager", (Dropout(0.5),), arch) == "eager"


def test_compiled_where_a_member_cannot_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^engine: must be 'auto' or 'eager' here: activation 'elu' has no compiled form \(compiled: relu, tanh, sigmoid, linear\), got 'compiled'$"):
        paths.member_engine("compiled", (), _arch("binary", "elu"))
    with pytest.raises(ValueError, match=r"^engine: must be one of 'auto', 'compiled', 'eager', got 'fast'$"):
        paths.member_engine("fast", (), _arch("binary"))


def test_without_numba_one_line_says_so_and_training_runs_eager(monkeypatch, capsys):
    monkeypatch.setattr(paths, "numba_available", lambda: False)
    monkeypatch.setattr(paths, "_warned", False)
    assert paths.member_engine("auto", (), _arch("binary")) == "eager"
    assert paths.member_engine("auto", (), _arch("binary")) == "eager"
    assert capsys.readouterr().err == "reglab: numba is not installed, so training runs on the slower eager engine; pip install numba\n"
    with pytest.raises(ValueError, match=r"numba is not installed \(pip install numba\)"):
        paths.member_engine("compiled", (), _arch("binary"))


def test_a_population_on_two_engines_trains_each_member_as_alone(moons):
    """train() groups members by engine; a Trainer takes one engine."""
    Untouched = eager_only_technique("untouched")
    X, y = moons
    arch = Architecture(2, (8,), "relu", "binary")
    members = [Member(seed=0, techniques=(Untouched(),)), Member(seed=1, techniques=(L1(1e-3),)), Member(seed=2, techniques=(Untouched(), EarlyStopping(patience=1)))]
    kw = dict(validation_split=0.2, epochs=5)
    with pytest.raises(ValueError, match="some members train compiled and some eager"):
        Trainer(arch, members, X, y, **kw)
    mixed = train(arch, members, X, y, **kw)
    for k, m in enumerate(members):
        alone = train(arch, [m], X, y, **kw)
        assert all(torch.equal(p[k], q[0]) for p, q in zip(mixed.params, alone.params))
        for name in alone.history:
            np.testing.assert_array_equal(mixed.history[name][k], alone.history[name][0])
        assert mixed.stop_reason[k] == alone.stop_reason[0] and mixed.best_epoch[k] == alone.best_epoch[0]
    scores = mixed.evaluate(X, y)
    for k, m in enumerate(members):
        np.testing.assert_array_equal(scores["loss"][k], train(arch, [m], X, y, **kw).evaluate(X, y)["loss"][0])


@pytest.mark.parametrize("shared", ["x", "y"])
def test_shared_features_with_per_member_targets_and_the_reverse(moons, shared):
    """x and y are each shared or per member on their own (integer labels (K, N), say)."""
    X, y = moons
    K = 3
    xs = X[:60] if shared == "x" else np.stack([X[:60]] * K)
    ys = y[:60] if shared == "y" else np.stack([np.roll(y[:60], k) for k in range(K)])
    arch = Architecture(2, (8,), "relu", "binary")
    members = [Member(seed=s, learning_rate=0.01) for s in range(K)]
    kw = dict(epochs=3, validation_data=(xs, ys))
    ours, eager = (train(arch, members, xs, ys, engine=e, **kw) for e in ("compiled", "eager"))
    for name in ours.history:
        np.testing.assert_allclose(ours.history[name], eager.history[name], rtol=1e-4, atol=1e-5, err_msg=name)
    if shared == "x":  # the members saw their own targets
        assert not np.allclose(ours.history["loss"][0], ours.history["loss"][1])


def test_a_subclass_that_stacks_its_own_piece_inherits_no_compiled_form():
    class MyDropout(Dropout):
        @classmethod
        def stack(cls, settings, arch, device, available_logs):
            return Dropout.stack(settings, arch, device, available_logs)

    assert paths.has_compiled_form(Dropout) and not paths.has_compiled_form(MyDropout)
    assert paths.member_engine("auto", (MyDropout(0.5),), _arch("binary")) == "eager"


def test_a_technique_between_epochs_may_not_act_inside_a_step(moons):
    from reglab.engine import checks, setting

    @dataclass(frozen=True)
    class Sneaky(Technique):
        """Says it acts between epochs; acts on the targets."""

        share: float = setting(0.1, checks.RATE, "a share", off=0.0)
        name = "sneaky"
        reference = "a test"
        compiled = "epochs"

        @classmethod
        def stack(cls, settings, arch, device, available_logs):
            return LabelSmoothing.stack([LabelSmoothing(0.1) if s else None for s in settings], arch, device, available_logs)

    X, y = moons
    with pytest.raises(ValueError, match=r"^technique 'sneaky': declares compiled = 'epochs' \(it acts between epochs\), but its piece implements targets"):
        train(Architecture(2, (4,)), [Member(seed=0, techniques=(Sneaky(),))], X, y, epochs=1, engine="compiled")
