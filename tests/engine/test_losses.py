"""Loss and metric values against Keras 3 (torch backend) on the same predictions."""

import numpy as np
import pytest
import torch

from reglab.engine.losses import (
    binary_accuracy,
    binary_crossentropy,
    categorical_accuracy,
    categorical_crossentropy,
    mean_absolute_error,
    mean_squared_error,
    member_sum,
)


def _np(keras, t):
    return keras.ops.convert_to_numpy(t)


@pytest.fixture
def logits():
    g = np.random.default_rng(0)
    # From ordinary to wildly overconfident: probabilities that round to exactly 0 or 1 in float32.
    z = np.concatenate([g.normal(size=200), g.normal(scale=30, size=200), [0.0, 1e-8, -1e-8, 16.0, -16.0, 17.0, 90.0, -90.0]])
    return z.astype(np.float32)


def test_binary_crossentropy_matches_keras_including_saturated_probabilities(keras, logits):
    y = (np.arange(len(logits)) % 2).astype(np.float32)
    p = _np(keras, keras.activations.sigmoid(keras.ops.convert_to_tensor(logits[:, None])))
    theirs = _np(keras, keras.losses.binary_crossentropy(y[:, None], p))
    ours = binary_crossentropy()(torch.from_numpy(logits)[None, :, None], torch.from_numpy(y)[None, :, None])[0]
    np.testing.assert_array_equal(ours.numpy(), theirs)
    assert theirs.max() < 16.2  # the clip at epsilon = 1e-7 bounds the loss


def test_unclipped_binary_crossentropy_is_exact_from_logits(logits):
    y = (np.arange(len(logits)) % 2).astype(np.float32)
    ours = binary_crossentropy(clip_probabilities=False)(torch.from_numpy(logits)[None, :, None], torch.from_numpy(y)[None, :, None])[0]
    z = logits.astype(np.float64)
    exact = np.logaddexp(0, z) - y * z
    np.testing.assert_allclose(ours.numpy(), exact, rtol=1e-5, atol=1e-6)
    assert np.isfinite(ours.numpy()).all()


def test_categorical_crossentropy_matches_keras(keras):
    g = np.random.default_rng(1)
    z = np.concatenate([g.normal(size=(50, 4)), g.normal(scale=40, size=(50, 4))]).astype(np.float32)
    labels = g.integers(0, 4, size=100)
    y = np.eye(4, dtype=np.float32)[labels]
    p = _np(keras, keras.activations.softmax(keras.ops.convert_to_tensor(z)))
    theirs = _np(keras, keras.losses.categorical_crossentropy(y, p))
    ours = categorical_crossentropy()(torch.from_numpy(z)[None], torch.from_numpy(y)[None])[0]
    np.testing.assert_array_equal(ours.numpy(), theirs)


def test_regression_losses_match_keras(keras):
    g = np.random.default_rng(2)
    pred, y = g.normal(size=(30, 2)).astype(np.float32), g.normal(size=(30, 2)).astype(np.float32)
    t = lambda a: torch.from_numpy(a)[None]  # noqa: E731
    np.testing.assert_array_equal(mean_squared_error(t(pred), t(y))[0].numpy(), _np(keras, keras.losses.mean_squared_error(y, pred)))
    np.testing.assert_array_equal(mean_absolute_error(t(pred), t(y))[0].numpy(), _np(keras, keras.losses.mean_absolute_error(y, pred)))


def test_accuracies_match_keras(keras, logits):
    y = (np.arange(len(logits)) % 2).astype(np.float32)
    p = _np(keras, keras.activations.sigmoid(keras.ops.convert_to_tensor(logits[:, None])))
    theirs = _np(keras, keras.metrics.binary_accuracy(y[:, None], p)).reshape(-1)
    ours = binary_accuracy(torch.from_numpy(logits)[None, :, None], torch.from_numpy(y)[None, :, None])[0]
    np.testing.assert_array_equal(ours.numpy(), theirs)

    z = np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32)
    onehot = np.eye(3, dtype=np.float32)[np.arange(40) % 3]
    pc = _np(keras, keras.activations.softmax(keras.ops.convert_to_tensor(z)))
    theirs = _np(keras, keras.metrics.categorical_accuracy(onehot, pc))
    ours = categorical_accuracy(torch.from_numpy(z)[None], torch.from_numpy(onehot)[None])[0]
    np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize("M", [5, 1000, 1025, 40000, 300000])
def test_member_sum_does_not_depend_on_how_many_members_share_the_tensor(M):
    x = torch.randn(6, M, generator=torch.Generator().manual_seed(M))
    together = member_sum(x)
    for k in range(6):
        assert torch.equal(member_sum(x[k : k + 1]), together[k : k + 1])
    assert torch.equal(member_sum(x[1:4]), together[1:4])
    # And it is a sum: float32 rounding of M terms of size ~1 stays far below 1e-4 * M.
    np.testing.assert_allclose(together.numpy(), x.double().sum(1).numpy(), rtol=0, atol=1e-4 * M**0.5 + 1e-5)
