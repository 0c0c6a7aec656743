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


def _plain_gradients(arch, params, x, y, mask):
    """An independent float64 network: torch.matmul per member, plain autograd, ``mask`` (or
    None) multiplied into every hidden layer's activation."""
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "elu": torch.nn.functional.elu,
           "gelu": torch.nn.functional.gelu, "linear": lambda t: t}[arch.activation]
    p64 = [p.double().requires_grad_(True) for p in params]
    h = x.double()
    for layer in range(arch.n_layers):
        h = torch.matmul(h, p64[2 * layer]) + p64[2 * layer + 1].unsqueeze(1)
        if layer < arch.n_layers - 1:
            h = act(h)
            if mask is not None:
                h = h * mask[layer].double()
    loss = ((h - y.double()) ** 2).mean(dim=(1, 2)).sum()
    return torch.autograd.grad(loss, p64)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("hooked", [False, True])
def test_gradients_are_those_of_an_independent_network(activation, n_outputs, hooked):
    """The written-out backward pass against autograd on a plain float64 network: every layer's
    gradient (two hidden layers of equal shape each get their own), with and without a hook that
    changes the hidden activations, for every activation and both kinds of head."""
    from reglab.engine.model import gradients
    from reglab.engine.stacked import Stacked

    K, B = 3, 7
    arch = Architecture(n_inputs=4, hidden=(9, 9), activation=activation, task="regression", n_outputs=n_outputs)
    params = init_params(arch, torch.arange(K))
    gen = torch.Generator().manual_seed(n_outputs)
    x = torch.randn(K, B, 4, generator=gen)
    y = torch.randn(K, B, n_outputs, generator=gen)
    mask = [(torch.rand(K, B, 9, generator=gen) > 0.3).float() * 1.5 for _ in range(2)] if hooked else None
    hook = (lambda h, layer: h if layer < 0 else h * mask[layer]) if hooked else None
    out = Stacked.zeros(params).views
    with torch.no_grad():
        logits, loss = gradients(arch, params, x, lambda z: ((z - y) ** 2).mean(dim=(1, 2)), out, hook)
    expected = _plain_gradients(arch, params, x, y, mask)
    assert len({g.data_ptr() for g in out}) == len(out)
    for ours, theirs in zip(out, expected):
        torch.testing.assert_close(ours.double(), theirs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(logits, forward(arch, params, x, hook), rtol=0, atol=0)
