"""Members are pure: a member's trajectory depends only on its own settings and seed.

A mixed population (dropout, L1, L2, early stopping with and without restore, different learning
rates, two seeds shared by several members) is trained together, then every member alone and in
other groupings. Final weights, histories and stop records must be equal bit for bit, on both
engines (the ``engine`` fixture).
"""

import numpy as np
import pytest
import torch

from reglab.engine.paths import COMPILED_ACTIVATIONS
from reglab.engine import (
    L1,
    L2,
    SGD,
    Architecture,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    MaxNorm,
    Member,
    Prechelt,
    ProximalL1,
    WeightDecay,
    train,
)

MIXED = [
    Member(seed=0, learning_rate=0.01),
    Member(seed=0, learning_rate=0.01, techniques=(Dropout(0.5),)),
    Member(seed=1, learning_rate=0.01, techniques=(L1(1e-3),)),
    Member(seed=2, learning_rate=0.005, techniques=(L2(1e-2), Dropout([0.2, 0.0]))),
    Member(seed=3, learning_rate=0.02, techniques=(EarlyStopping(patience=3, restore_best_weights=True),)),
    Member(seed=1, learning_rate=0.01, techniques=(EarlyStopping(monitor="val_accuracy", patience=2), Dropout(0.3))),
    Member(seed=4, learning_rate=0.001, techniques=(L1([1e-3, 0.0, 1e-2]), L2(1e-3))),
    Member(seed=5, learning_rate=0.05, techniques=(EarlyStopping(patience=0, start_from_epoch=4, min_delta=1e-3),)),
    Member(seed=6, learning_rate=0.01, techniques=(Dropout(0.1), EarlyStopping(stopping_threshold=0.3, patience=50))),
    Member(seed=7, learning_rate=0.01, techniques=(WeightDecay(0.05), MaxNorm(1.0))),
    Member(seed=8, learning_rate=0.01, techniques=(ProximalL1(1e-2), GaussianNoise(0.1, input_stddev=0.05))),
    Member(seed=2, learning_rate=0.01, techniques=(GaussianDropout([0.3, 0.1]), Prechelt("GL", alpha=2.0, restore_best_weights=True))),
    Member(seed=9, learning_rate=0.02, techniques=(Prechelt("PQ", alpha=0.5, strip=3), Dropout(0.2))),
    Member(seed=3, learning_rate=0.02, techniques=(Prechelt("UP", strips=2, strip=2), EarlyStopping(patience=5))),
]
ARCH = Architecture(n_inputs=2, hidden=(32, 16), task="binary")


@pytest.fixture(scope="module", params=["eager", "compiled"])
def engine(request):
    return request.param


def _train(members, X, y, **kw):
    kw.setdefault("epochs", 25)
    kw.setdefault("arch", ARCH)
    return train(kw.pop("arch"), members, X, y, validation_split=0.2, batch_size=12, **kw)


def _assert_same_member(together, i, alone, j):
    for a, b in zip(together.params, alone.params):
        assert torch.equal(a[i], b[j]), f"weights of member {i} differ"
    for name in together.history:
        np.testing.assert_array_equal(together.history[name][i], alone.history[name][j], err_msg=name)
    assert together.epochs_run[i] == alone.epochs_run[j]
    assert together.stop_reason[i] == alone.stop_reason[j]
    assert together.best_epoch[i] == alone.best_epoch[j]


@pytest.fixture(scope="module")
def data(moons):
    # 68 training rows in batches of 12: the last batch of each epoch is a ragged 8 rows.
    X, y = moons
    return X[:86], y[:86]


@pytest.fixture(scope="module")
def together(data, engine):
    return _train(MIXED, *data, engine=engine)


def test_the_mixed_population_really_is_mixed(together):
    reasons = set(together.stop_reason)
    assert "max_epochs" in reasons and len(reasons) >= 2, reasons
    assert len(set(together.epochs_run.tolist())) >= 3


@pytest.mark.parametrize("i", range(len(MIXED)))
def test_each_member_alone_equals_its_run_in_the_population(data, together, i, engine):
    alone = _train([MIXED[i]], *data, engine=engine)
    _assert_same_member(together, i, alone, 0)


@pytest.mark.parametrize("order", [[13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0], [4, 1, 9], [2, 3, 5, 11, 12], [0, 6, 7, 8, 2, 10, 13]])
def test_other_groupings_and_orders_change_nothing(data, together, order, engine):
    grouped = _train([MIXED[i] for i in order], *data, engine=engine)
    for j, i in enumerate(order):
        _assert_same_member(together, i, grouped, j)


def test_population_size_does_not_matter_with_per_member_data(moons, engine):
    # Each member its own rows (as a fresh split per seed gives), K = 5 versus K = 1.
    X, y = moons
    rng = np.random.default_rng(0)
    idx = np.stack([rng.permutation(100)[:70] for _ in range(5)])
    members = [Member(seed=s, learning_rate=0.01, techniques=(Dropout(0.2),)) for s in range(5)]
    together = train(ARCH, members, X[idx], y[idx], epochs=8, validation_data=(X[90:], y[90:]), engine=engine)
    for k in (0, 3):
        alone = train(ARCH, [members[k]], X[idx[k : k + 1]], y[idx[k : k + 1]], epochs=8, validation_data=(X[90:], y[90:]), engine=engine)
        _assert_same_member(together, k, alone, 0)


def test_sgd_and_regression_are_pure_too(engine):
    g = np.random.default_rng(1)
    X = g.uniform(-1, 1, size=(40, 1)).astype(np.float32)
    y = np.sin(3 * X[:, 0]).astype(np.float32)
    arch = Architecture(n_inputs=1, hidden=(24,), activation="tanh", task="regression")
    members = [Member(seed=s, learning_rate=lr, techniques=t) for s, lr, t in [(0, 0.1, ()), (1, 0.05, (Dropout(0.3),)), (0, 0.1, (L2(1e-3),))]]
    together = train(arch, members, X, y, epochs=15, optimizer=SGD(momentum=0.9, nesterov=True), validation_split=0.25, engine=engine)
    for k in range(3):
        alone = train(arch, [members[k]], X, y, epochs=15, optimizer=SGD(momentum=0.9, nesterov=True), validation_split=0.25, engine=engine)
        for a, b in zip(together.params, alone.params):
            assert torch.equal(a[k], b[0])


@pytest.mark.parametrize("activation", ["gelu", "tanh", "elu", "sigmoid"])
def test_every_activation_is_pure_with_a_one_row_last_batch(moons, activation, engine):
    # 61 training rows in batches of 12: the last batch of each epoch is a single row.
    X, y = moons
    arch = Architecture(n_inputs=2, hidden=(24, 10), activation=activation, task="binary")
    members = [Member(seed=s, learning_rate=0.01, techniques=t) for s, t in [(0, ()), (1, (Dropout(0.3),)), (2, (L2(1e-3),))]]
    kw = dict(epochs=6, batch_size=12, validation_data=(X[80:], y[80:]), engine=engine if activation in COMPILED_ACTIVATIONS else "eager")
    together = train(arch, members, X[:61], y[:61], **kw)
    for k in range(3):
        _assert_same_member(together, k, train(arch, [members[k]], X[:61], y[:61], **kw), 0)


def test_multiclass_is_pure(engine):
    g = np.random.default_rng(2)
    X = g.normal(size=(90, 4)).astype(np.float32)
    y = g.integers(0, 3, size=90)
    arch = Architecture(n_inputs=4, hidden=(20,), task="multiclass", n_outputs=3)
    members = [Member(seed=s, learning_rate=0.01, techniques=(Dropout(0.1 * s),)) for s in range(4)]
    together = train(arch, members, X, y, epochs=5, validation_split=0.3, engine=engine)
    for k in (0, 3):
        _assert_same_member(together, k, train(arch, [members[k]], X, y, epochs=5, validation_split=0.3, engine=engine), 0)


def test_a_member_alone_equals_itself_in_a_pair_under_a_one_unit_layer(engine):
    """Found by the generated suite: under a one-unit hidden layer the gradient reached the layers
    below in a strided layout for a population and a contiguous one for a member alone, and BLAS
    rounds the two differently (layer 0's bias differed in its last bits)."""
    arch = Architecture(n_inputs=1, hidden=(20, 20, 1), activation="linear", task="binary")
    g = np.random.default_rng(0)
    X, y = g.normal(size=(4, 1)).astype(np.float32), np.array([0, 1, 1, 0], dtype=np.float32)
    members = [Member(seed=0, learning_rate=0.001)] * 2
    kw = dict(epochs=1, batch_size=1, validation_split=0.25, engine=engine)
    pair, alone = train(arch, members, X, y, **kw), train(arch, members[:1], X, y, **kw)
    _assert_same_member(pair, 0, alone, 0)


def test_another_members_dropout_does_not_change_a_members_bits(engine):
    """Found by the generated suite's deep profile: with another member's dropout active, the
    gradient reached a layer in another layout (strides of size-1 dimensions) and BLAS rounded it
    differently; now every product sees canonical strides."""
    arch = Architecture(n_inputs=2, hidden=(128, 128, 128, 1), activation="linear", task="binary")
    g = np.random.default_rng(3)
    X, y = g.normal(size=(12, 2)).astype(np.float32), (g.random(12) > 0.5).astype(np.float32)
    plain = Member(seed=1, learning_rate=0.01)
    kw = dict(epochs=2, batch_size=1, validation_split=0.25, engine=engine)
    with_dropout = train(arch, [plain, Member(seed=0, learning_rate=0.001, techniques=(Dropout(0.1),))], X, y, **kw)
    without = train(arch, [plain, Member(seed=0, learning_rate=0.001)], X, y, **kw)
    _assert_same_member(with_dropout, 0, without, 0)
