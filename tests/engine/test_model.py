import numpy as np
import pytest
import torch

from reglab.engine import Architecture, init_params
from reglab.engine.model import ACTIVATIONS, forward, glorot_limit


def test_shapes_follow_the_member_axis():
    arch = Architecture(n_inputs=3, hidden=(5, 7), task="multiclass", n_outputs=4)
    params = init_params(arch, torch.arange(6))
    assert [tuple(p.shape) for p in params] == [(6, 3, 5), (6, 5), (6, 5, 7), (6, 7), (6, 7, 4), (6, 4)]
    assert forward(arch, params, torch.randn(6, 11, 3)).shape == (6, 11, 4)


def test_glorot_uniform_like_keras(keras):
    arch = Architecture(n_inputs=300, hidden=(200,), task="binary")
    W = init_params(arch, torch.arange(4))[0]
    limit = glorot_limit(300, 200)
    ref = keras.initializers.GlorotUniform(seed=1)((300, 200))
    ref = keras.ops.convert_to_numpy(ref)
    # Same bounds as Keras's initializer and the moments of U(-limit, limit).
    assert float(W.abs().max()) <= limit
    assert float(np.abs(ref).max()) <= limit
    assert float(W.abs().max()) == pytest.approx(float(np.abs(ref).max()), rel=1e-3)
    assert float(W.mean()) == pytest.approx(0.0, abs=0.01 * limit)
    assert float(W.var()) == pytest.approx(limit**2 / 3, rel=0.01)
    assert float(ref.var()) == pytest.approx(limit**2 / 3, rel=0.02)


def test_biases_start_at_zero_and_seeds_differ():
    arch = Architecture(n_inputs=2, hidden=(8,))
    params = init_params(arch, torch.tensor([0, 1]))
    assert torch.count_nonzero(params[1]) == 0
    assert not torch.equal(params[0][0], params[0][1])
    assert torch.equal(init_params(arch, torch.tensor([1]))[0][0], params[0][1])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_keras(keras, name):
    x = torch.linspace(-6, 6, 101)
    ours = ACTIVATIONS[name](x)
    theirs = keras.ops.convert_to_numpy(keras.activations.get(name)(keras.ops.convert_to_tensor(x.numpy())))
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6, atol=1e-7)


def test_forward_matches_a_keras_model(keras):
    arch = Architecture(n_inputs=2, hidden=(16, 8), activation="tanh", task="binary")
    params = init_params(arch, torch.tensor([3]))
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(16, "tanh"), keras.layers.Dense(8, "tanh"), keras.layers.Dense(1, "sigmoid")]
    )
    model.set_weights([p[0].numpy() for p in params])
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    ours = torch.sigmoid(forward(arch, params, torch.from_numpy(x)[None]))[0].numpy()
    np.testing.assert_allclose(ours, model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("K", [1, 3, 40])
def test_buffered_dense_gradient_equals_the_plain_one_bit_for_bit(K):
    """The kernel gradient written into a reused buffer is the one computed without it, and both
    are autograd's gradient of ``h @ W + b`` (to rounding: autograd's products see other layouts)."""
    from reglab.engine.model import GradientBuffers, _Dense

    g = torch.Generator().manual_seed(K)
    h = torch.randn(K, 17, 64, generator=g, requires_grad=True)
    W = torch.randn(K, 64, 48, generator=g, requires_grad=True)
    b = torch.randn(K, 48, generator=g, requires_grad=True)
    upstream = torch.randn(K, 17, 48, generator=g)
    native = torch.autograd.grad(((torch.bmm(h, W) + b.unsqueeze(1)) * upstream).sum(), (h, W, b))
    plain = torch.autograd.grad((_Dense.apply(h, W, b, None, 0) * upstream).sum(), (h, W, b))
    for a, c in zip(native, plain):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
    buffers = GradientBuffers()
    for _ in range(2):  # the second call reuses the buffer
        custom = torch.autograd.grad((_Dense.apply(h, W, b, buffers, 0) * upstream).sum(), (h, W, b))
        for a, c in zip(plain, custom):
            assert torch.equal(a, c)


def test_kernels_of_equal_shape_get_their_own_gradient():
    """The aliasing bug: a gradient buffer keyed by shape handed two equal-shaped kernels one
    tensor, and Adam then squared it in place twice (seed 0 ended at val_loss 10.4 among four
    members and 0.16 alone). Each layer's gradient must be its own tensor, equal to autograd's."""
    from reglab.engine.model import BUFFERED_MIN_ELEMENTS, GradientBuffers

    arch = Architecture(n_inputs=3, hidden=(128, 128, 128), task="binary")
    K = -(-BUFFERED_MIN_ELEMENTS // (128 * 128))  # the smallest population that takes the buffered path
    params = [p.requires_grad_(True) for p in init_params(arch, torch.arange(K))]
    x = torch.randn(K, 9, 3, generator=torch.Generator().manual_seed(0))
    buffered = torch.autograd.grad(forward(arch, params, x, buffers=GradientBuffers()).sum(), params)
    plain = torch.autograd.grad(forward(arch, params, x).sum(), params)
    kernels = buffered[0::2]
    assert len({g.data_ptr() for g in kernels}) == len(kernels)
    for a, b in zip(buffered, plain):
        assert torch.equal(a, b)
