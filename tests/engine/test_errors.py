"""Invalid settings raise ValueError naming the argument, the value received and what is allowed."""

import math

import numpy as np
import pytest

from reglab.engine import L1, L2, SGD, Adam, Architecture, Dropout, Member, train

ARCH = Architecture(n_inputs=2, hidden=(8, 8), task="binary")
X = np.random.default_rng(0).normal(size=(20, 2))
Y = (X[:, 0] > 0).astype(float)


def message(fn):
    with pytest.raises(ValueError) as err:
        fn()
    return str(err.value)


@pytest.mark.parametrize(
    "build,expected",
    [
        (lambda: Dropout(1.0), "dropout: must be a number in [0, 1), got 1.0"),
        (lambda: Dropout(-0.1), "dropout: must be a number in [0, 1), got -0.1"),
        (lambda: Dropout([0.1, 1.5]), "dropout[1]: must be a number in [0, 1), got 1.5"),
        (lambda: L1(-1), "l1: must be a number >= 0, got -1"),
        (lambda: L2(math.nan), "l2: must be a number >= 0, got nan"),
        (lambda: L2("big"), "l2: must be a number >= 0, got 'big'"),
        (lambda: Member(seed=-1), "seed: must be an integer in [0, 4294967295], got -1"),
        (lambda: Member(seed=1.5), "seed: must be an integer in [0, 4294967295], got 1.5"),
        (lambda: Member(seed=0, learning_rate=0), "learning_rate: must be a number > 0, got 0"),
        (lambda: Member(seed=0, techniques=["dropout"]), "techniques: must be a list of techniques such as Dropout(0.5) or L2(1e-4), got ['dropout']"),
        (lambda: Architecture(2, activation="swish"), "activation: must be one of 'relu', 'tanh', 'sigmoid', 'elu', 'gelu', 'linear', got 'swish'"),
        (lambda: Architecture(2, task="ranking"), "task: must be one of 'binary', 'multiclass', 'regression', got 'ranking'"),
        (lambda: Architecture(2, hidden=(8, 0)), "hidden: must be a list of positive layer widths, e.g. [128, 128], got (8, 0)"),
        (lambda: Architecture(2, task="multiclass", n_outputs=1), "n_outputs: must be the number of classes (>= 2) for a multiclass task, got 1"),
        (lambda: Adam(beta_1=1.0), "optimizer.beta_1: must be a number in [0, 1), got 1.0"),
        (lambda: SGD(momentum=-0.5), "optimizer.momentum: must be a number in [0, 1], got -0.5"),
    ],
)
def test_settings(build, expected):
    assert message(build) == expected


def fit(**kw):
    args = dict(x=X, y=Y, epochs=2)
    args.update(kw)
    members = args.pop("members", [Member(seed=0)])
    arch = args.pop("arch", ARCH)
    x, y = args.pop("x"), args.pop("y")
    return train(arch, members, x, y, **args)


@pytest.mark.parametrize(
    "kw,expected",
    [
        ({"optimizer": "rmsprop"}, "optimizer: must be one of 'adam', 'sgd', got 'rmsprop'"),
        ({"loss": "hinge"}, "loss: must be one of 'binary_crossentropy', got 'hinge'"),
        ({"metrics": ["auc"]}, "metrics: must be one of 'accuracy', got 'auc'"),
        ({"epochs": 0}, "epochs: must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size: must be an integer >= 1, got 0"),
        ({"validation_split": 1.0}, "validation_split: must be a number in [0, 1), got 1.0"),
        ({"validation_split": 0.99}, "validation_split: 0.99 of 20 rows leaves no training rows; use a fraction that keeps both"),
        ({"validation_split": 1e-17}, "validation_split: 1e-17 of 20 rows leaves no validation rows; use a fraction that keeps both"),
        ({"members": []}, "members: must be a non-empty list of Member, got []"),
        ({"members": [Member(0, techniques=[Dropout([0.1, 0.2, 0.3])])]}, "dropout: must be one number or a list of 2 (one per layer), got [0.1, 0.2, 0.3]"),
        ({"members": [Member(0, techniques=[L1([0.1])])]}, "l1: must be one number or a list of 3 (one per layer), got [0.1]"),
        ({"x": np.zeros((20, 3))}, "x: must have shape (rows, 2) or (1, rows, 2), got (20, 3)"),
        ({"y": Y[:19]}, "y: must have one row per row of x (20), got 19"),
        ({"y": Y * 2}, "y: must hold binary labels 0 or 1, got 2"),
        ({"x": np.where(np.arange(40).reshape(20, 2) == 7, np.nan, X)}, "x: must be finite, got nan at index (3, 1)"),
        ({"x": [["a", "b"]] * 20}, "x: must be numeric, got values of type <U1"),
        ({"validation_data": (X,)}, "validation_data: must be a pair (x_val, y_val), got 'tuple'"),
    ],
)
def test_training_arguments(kw, expected):
    assert message(lambda: fit(**kw)) == expected


def test_multiclass_labels_out_of_range():
    arch = Architecture(2, hidden=(4,), task="multiclass", n_outputs=3)
    assert message(lambda: fit(arch=arch, y=np.arange(20) % 4)) == "y: must hold class labels 0..2 or one-hot rows, got 3"


def test_a_technique_twice_in_one_member():
    members = [Member(0, techniques=[L2(0.1), L2(0.2)])]
    assert message(lambda: fit(members=members)) == "techniques: each technique may appear once per member, got l2 twice"


@pytest.mark.parametrize(
    "task,n_outputs,y,expected",
    [
        ("multiclass", 3, np.eye(2)[np.arange(20) % 2], "y: must be one-hot rows of 3 columns (the model's 3 classes) or integer labels 0..2, got 2 columns (shape (20, 2))"),
        ("multiclass", 3, np.full((20, 3), 1 / 3), "y: rows of 3 columns must be one-hot (a single 1), got [0.3333333333333333, 0.3333333333333333, 0.3333333333333333]"),
        ("binary", 1, np.eye(2)[np.arange(20) % 2], "y: must be 0/1 labels in one column (the model's one sigmoid unit), got 2 columns (shape (20, 2))"),
    ],
)
def test_targets_of_the_wrong_width_say_so(task, n_outputs, y, expected):
    arch = Architecture(n_inputs=2, hidden=(4,), task=task, n_outputs=n_outputs)
    assert message(lambda: train(arch, [Member(seed=0)], X, y, epochs=1)) == expected
