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


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``reglab demo --quick`` once per session: four run folders and report.html."""
    from reglab.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "reglab-demo"
    messages = []
    report = run_demo(out, seeds=3, quick=True, workers=2, say=messages.append)
    return out, report, messages
