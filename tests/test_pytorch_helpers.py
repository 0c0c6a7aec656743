"""reglab.pytorch inside ordinary PyTorch training loops."""

import numpy as np
import pytest
import torch
from torch import nn

from reglab.pytorch import EarlyStopping, mc_dropout_predict, penalty


def net(seed=0, p=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 1))


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 2, generator=g)
    y = (X[:, :1] * X[:, 1:] > 0).float()
    return X[:90], y[:90], X[90:], y[90:]


def test_early_stopping_in_a_loop_stops_restores_and_agrees_with_keras_rule(data, keras):
    X, y, Xv, yv = data
    model = net()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    stop = EarlyStopping(patience=5, restore_best_weights=True)
    losses = []
    for epoch in range(300):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(X), y).backward()
        opt.step()
        with torch.no_grad():
            val = nn.functional.binary_cross_entropy_with_logits(model(Xv), yv).item()
        losses.append(val)
        if stop(val, model):
            break
    assert stop.stopped_epoch == epoch < 299
    assert stop.best_epoch == int(np.argmin(losses)) and stop.best == pytest.approx(min(losses))
    with torch.no_grad():  # the restored weights give the best epoch's validation loss
        assert nn.functional.binary_cross_entropy_with_logits(model(Xv), yv).item() == pytest.approx(min(losses), rel=1e-6)
    # Keras's callback on the same sequence of values stops at the same epoch.
    cb = keras.callbacks.EarlyStopping(patience=5)
    cb.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    cb.on_train_begin()
    keras_stop = None
    for i, value in enumerate(losses):
        cb.on_epoch_end(i, {"val_loss": value})
        if getattr(cb.model, "stop_training", False):
            keras_stop = i
            break
    assert keras_stop == stop.stopped_epoch


def test_penalty_is_keras_l1l2_on_kernels_only(keras):
    model = net()
    value = penalty(model, l1=1e-3, l2=1e-2)
    reg = keras.regularizers.L1L2(l1=1e-3, l2=1e-2)
    expected = sum(float(keras.ops.convert_to_numpy(reg(m.weight.detach().numpy().T))) for m in model if isinstance(m, nn.Linear))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    assert model[0].weight.grad is not None and model[0].bias.grad is None  # biases are not penalised
    assert penalty(model).item() == 0
    with pytest.raises(ValueError, match=r"penalty: l1 and l2 must be numbers >= 0, got l1=-1, l2=0.0"):
        penalty(model, l1=-1)


def test_penalty_in_a_training_loop_shrinks_weights(data):
    X, y, _, _ = data
    norms = []
    for l2 in (0.0, 0.05):
        model = net(seed=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(100):
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(X), y) + penalty(model, l2=l2)
            loss.backward()
            opt.step()
        norms.append(model[0].weight.norm().item())
    assert norms[1] < 0.8 * norms[0]


def test_mc_dropout_predict(data):
    X, _, _, _ = data
    model = net(p=0.3)
    model.train()
    mean, std = mc_dropout_predict(model, X, T=40, seed=3)
    assert mean.shape == (90, 1) and (std > 0).all() and model.training  # mode restored
    again, _ = mc_dropout_predict(model, X, T=40, seed=3)
    assert torch.equal(mean, again)
    model.eval()
    with torch.no_grad():
        plain = model(X)
    assert not torch.allclose(mean, plain) and (mean - plain).abs().mean() < 0.2
    with pytest.raises(ValueError, match="has no dropout layer"):
        mc_dropout_predict(nn.Linear(2, 1), X, T=3)
