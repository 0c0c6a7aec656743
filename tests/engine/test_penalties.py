"""L1/L2 kernel penalties against keras.regularizers on the same weights."""

import pytest
import torch

from reglab.engine import L1, L2, Architecture, init_params
from reglab.engine.pieces import stack_pieces

ARCH = Architecture(n_inputs=2, hidden=(128, 64), task="binary")


def _penalty(techniques_per_member):
    params = init_params(ARCH, torch.arange(len(techniques_per_member)))
    pieces = stack_pieces(techniques_per_member, ARCH, torch.device("cpu"), {"loss": "min"})
    total = None
    for piece in pieces:
        term = piece.penalty(params)
        total = term if total is None else total + term
    return params, total


@pytest.mark.parametrize("l1,l2", [(1e-3, 0.0), (0.0, 1e-3), (1e-3, 1e-2), (0.5, 0.25)])
def test_penalty_equals_keras_regularizers_on_hidden_kernels(keras, l1, l2):
    techniques = []
    if l1:
        techniques.append(L1(l1))
    if l2:
        techniques.append(L2(l2))
    params, total = _penalty([tuple(techniques)] * 3)
    reg = keras.regularizers.L1L2(l1=l1, l2=l2)
    for k in range(3):
        expected = sum(float(keras.ops.convert_to_numpy(reg(params[2 * layer][k].numpy()))) for layer in (0, 1))
        assert float(total[k]) == pytest.approx(expected, rel=1e-6)


def test_keras_l1_and_l2_classes_agree_term_by_term(keras):
    params, total = _penalty([(L1(0.01),), (L2(0.02),)])
    W = [params[0], params[2]]
    l1 = sum(float(keras.ops.convert_to_numpy(keras.regularizers.L1(0.01)(w[0].numpy()))) for w in W)
    l2 = sum(float(keras.ops.convert_to_numpy(keras.regularizers.L2(0.02)(w[1].numpy()))) for w in W)
    assert float(total[0]) == pytest.approx(l1, rel=1e-6)
    assert float(total[1]) == pytest.approx(l2, rel=1e-6)


def test_biases_and_output_layer_are_not_penalised_by_default():
    params, total = _penalty([(L2(1.0),)])
    expected = float((params[0][0] ** 2).sum() + (params[2][0] ** 2).sum())
    assert float(total[0]) == pytest.approx(expected, rel=1e-6)


def test_per_layer_coefficients_include_the_output_layer():
    params, total = _penalty([(L1([0.0, 0.0, 2.0]),)])
    assert float(total[0]) == pytest.approx(2.0 * float(params[4][0].abs().sum()), rel=1e-6)


def test_members_without_a_penalty_get_exactly_zero():
    params, total = _penalty([(L1(0.1),), (), (L2(0.1),)])
    assert float(total[1]) == 0.0


@pytest.mark.parametrize("kind", [L1, L2])
def test_penalty_gradient_is_autograds(kind):
    """The loop adds the penalties' gradient by hand (add_penalty_gradient); it must be what
    autograd gives for the penalty written plainly, member by member, zero coefficients included."""
    settings = [(kind(1e-2),), (), (kind([0.0, 3e-3, 0.5]),), (kind(0.25),)]
    params = init_params(ARCH, torch.arange(len(settings)))
    pieces = stack_pieces(settings, ARCH, torch.device("cpu"), {"loss": "min"})
    grads = [torch.zeros_like(p) for p in params]
    for piece in pieces:
        piece.add_penalty_gradient(params, grads)
    for k, techniques in enumerate(settings):
        coefficients = [1e-2, 1e-2, 0.0] if k == 0 else [0.0] * 3 if k == 1 else [0.0, 3e-3, 0.5] if k == 2 else [0.25, 0.25, 0.0]
        own = [p[k].clone().requires_grad_(True) for p in params]
        reduce = (lambda w: w.abs().sum()) if kind is L1 else (lambda w: (w**2).sum())
        total = sum(c * reduce(own[2 * layer]) for layer, c in enumerate(coefficients))
        expected = torch.autograd.grad(total, own, allow_unused=True) if torch.is_tensor(total) else [None] * len(own)
        for i, (g, e) in enumerate(zip(grads, expected)):
            torch.testing.assert_close(g[k], torch.zeros_like(g[k]) if e is None else e, rtol=1e-6, atol=0, msg=f"member {k} parameter {i}")


@pytest.mark.parametrize("kind", [L1, L2])
def test_a_member_without_the_penalty_is_untouched_even_when_its_weights_overflowed(kind):
    """A diverged member without the penalty sits in a population where another has it: its term
    must stay exactly 0 and its gradient untouched, not 0 * inf = NaN (found by the generated suite)."""
    params = init_params(ARCH, torch.arange(2))
    params[0][1, 0, 0] = float("inf")
    pieces = stack_pieces([(kind(0.1),), ()], ARCH, torch.device("cpu"), {"loss": "min"})
    assert float(pieces[0].penalty(params)[1]) == 0.0
    grads = [torch.ones_like(p) for p in params]
    pieces[0].add_penalty_gradient(params, grads)
    assert all(torch.equal(g[1], torch.ones_like(g[1])) for g in grads)
