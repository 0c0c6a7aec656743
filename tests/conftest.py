import os

# The reference implementation runs on the torch backend; set before keras is first imported.
os.environ.setdefault("KERAS_BACKEND", "torch")
# Ray binds its nodes to the loopback address (not the machine's network address) when told
# multi-machine clusters are off; set before ray is first imported, and inherited by its processes.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster per session, on 127.0.0.1: a head node that runs no task and one
    worker node with 2 CPUs, joined by this process. Every chunk runs on a worker node, so a test
    that removes that node (and adds another) knows which node a running chunk was on."""
    import ray
    from ray.cluster_utils import Cluster

    store = 100 * 2**20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "object_store_memory": store, "include_dashboard": False})
    cluster.add_node(num_cpus=2, num_gpus=0, object_store_memory=store)
    ray.init(address=cluster.address, logging_level="error", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def eager_only_technique(name: str):
    """A technique that changes nothing and declares no compiled form (``compiled`` None), so
    that members with it train on the eager engine: for the tests of who takes which engine."""
    from dataclasses import dataclass

    from reglab.engine import Technique, checks, setting
    from reglab.engine.pieces import Inert

    @dataclass(frozen=True)
    class EagerOnly(Technique):
        """Changes nothing; declares no compiled form."""

        strength: float = setting(0.5, checks.NON_NEGATIVE, "nothing at all", key=name, off=0.0)
        reference = "a test"

        @classmethod
        def stack(cls, settings, arch, device, available_logs):
            return Inert()

    EagerOnly.name = name
    return EagerOnly
