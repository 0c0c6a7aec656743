import os

# The reference implementation runs on the torch backend; set before keras is first imported.
os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
from sklearn.datasets import make_moons


@pytest.fixture(scope="session")
def moons():
    """The seed's L1/L2 workload: make_moons(100, noise=0.25, random_state=2), float32."""
    X, y = make_moons(100, noise=0.25, random_state=2)
    return X.astype(np.float32), y.astype(np.float32)


@pytest.fixture(scope="session")
def keras():
    import keras

    assert keras.backend.backend() == "torch"
    return keras
