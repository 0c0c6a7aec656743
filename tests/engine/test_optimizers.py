"""Optimizer updates against keras.optimizers on the same gradients, step after step."""

import numpy as np
import pytest
import torch

from reglab.engine import SGD, Adam
from reglab.engine.stacked import Stacked

SHAPES = [(2, 16), (16,), (16, 1), (1,)]
STEPS = 150


def _gradients(K, seed=0):
    g = np.random.default_rng(seed)
    # Gradients of very different scales over time, and some exact zeros (dead units).
    out = []
    for step in range(STEPS):
        scale = 10.0 ** g.uniform(-6, 1)
        grads = [(g.normal(size=(K, *s)) * scale).astype(np.float32) for s in SHAPES]
        grads[0][:, :, :3] = 0.0
        out.append(grads)
    return out


def _ours(optimizer, lrs, grads_seq, init):
    params = Stacked.of([torch.from_numpy(p) for p in init])
    state = optimizer.init(params)
    lr = torch.tensor(lrs, dtype=torch.float32)
    for grads in grads_seq:
        optimizer.step(params, Stacked.of([torch.from_numpy(g) for g in grads]), state, lr)
    return [p.numpy() for p in params.views]


def _keras(keras, make_optimizer, lr, grads_seq, init, k):
    variables = [keras.Variable(p[k].copy()) for p in init]
    opt = make_optimizer(lr)
    for grads in grads_seq:
        opt.apply([keras.ops.convert_to_tensor(g[k]) for g in grads], variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _init(K):
    g = np.random.default_rng(42)
    return [g.normal(size=(K, *s)).astype(np.float32) for s in SHAPES]


def test_adam_matches_keras_adam_bit_for_bit(keras):
    lrs = [0.01, 0.001, 0.1, 0.01]
    init, grads = _init(4), _gradients(4)
    ours = _ours(Adam(), lrs, grads, init)
    for k, lr in enumerate(lrs):
        theirs = _keras(keras, lambda lr: keras.optimizers.Adam(learning_rate=lr), lr, grads, init, k)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a[k], b)


def test_adam_with_other_betas_matches_keras(keras):
    opt = Adam(beta_1=0.5, beta_2=0.9, epsilon=1e-3)
    init, grads = _init(2), _gradients(2, seed=1)
    ours = _ours(opt, [0.05, 0.05], grads, init)
    theirs = _keras(keras, lambda lr: keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9, epsilon=1e-3), 0.05, grads, init, 1)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a[1], b)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_keras_sgd(keras, momentum, nesterov):
    lrs = [0.01, 0.001]
    init, grads = _init(2), _gradients(2, seed=2)
    ours = _ours(SGD(momentum=momentum, nesterov=nesterov), lrs, grads, init)
    for k, lr in enumerate(lrs):
        theirs = _keras(keras, lambda lr: keras.optimizers.SGD(lr, momentum=momentum, nesterov=nesterov), lr, grads, init, k)
        for a, b in zip(ours, theirs):
            # Keras folds -lr into a fused multiply-add; we scale the gradient first: last-bit differences.
            np.testing.assert_allclose(a[k], b, rtol=1e-5, atol=1e-6)


def test_adam_bias_correction_is_computed_once_per_step_count(monkeypatch):
    """A run longer than any cache bound must not recompute every step's values for every
    population (it did: an lru_cache of 4,096 entries, scanned in order by 6,000-step runs)."""
    from reglab.engine import optimizers

    calls = []
    compute = optimizers._compute_bias_correction
    monkeypatch.setattr(optimizers, "_BIAS_TABLES", {})
    monkeypatch.setattr(optimizers, "_compute_bias_correction", lambda *a: calls.append(a[2]) or compute(*a))
    first = [optimizers._bias_correction_values(0.9, 0.999, t) for t in range(1, 6001)]
    again = [optimizers._bias_correction_values(0.9, 0.999, t) for t in range(1, 6001)]
    assert calls == list(range(1, 6001))
    assert again == first
    assert first[4999] == compute(0.9, 0.999, 5000)
    optimizers._bias_correction_values(0.9, 0.99, 3)  # other betas: a table of their own
    assert calls[-3:] == [1, 2, 3]
