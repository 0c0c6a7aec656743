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
