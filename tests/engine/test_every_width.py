"""Members are pure at every width and every position: the exhaustive check.

Whether a member's numbers reach a kernel at an address BLAS treats like member 0's depends on its
index times its layer sizes, and whether its elements fall in a vector loop's tail depends on the
population's total size: both are small, enumerable spaces, so they are enumerated here rather
than sampled. Every hidden width from 1 to 130 and a few above, two and three equal layers, with
and without a final one-unit hidden layer, populations of 2, 3, 7 and 33, batch sizes 1, 7 and
the full batch: every member of every population equals its run alone, bit for bit. The members
cycle through three kinds (plain, dropout, an L2 penalty), so that the kinds sit at every index
and beside each other; the activation and the task cycle with the width. Both engines: the
compiled one is pure by construction (each member its own loop), and this checks the construction.
"""

import numpy as np
import pytest
import torch

from reglab.engine import L2, Architecture, Dropout, Member, train
from reglab.engine.model import ACTIVATIONS
from reglab.engine.paths import COMPILED_ACTIVATIONS

WIDTHS = [*range(1, 131), 131, 137, 200, 255, 257]
POPULATIONS = (2, 3, 7, 33)
# (rows, batch size): one row at a time, 7 rows then a ragged 1, and the full batch; one epoch.
BATCHES = ((4, 1), (8, 7), (4, 4))
KINDS = (
    Member(seed=0, learning_rate=0.01),
    Member(seed=1, learning_rate=0.01, techniques=(Dropout(0.5),)),
    Member(seed=2, learning_rate=0.01, techniques=(L2(1e-2),)),
)
TASKS = (("binary", 1), ("multiclass", 3), ("regression", 2))


def _shapes(width):
    """Two and three equal hidden layers, each with and without a final one-unit layer."""
    return [(width,) * depth + tail for depth in (2, 3) for tail in ((), (1,))]


def _data(arch, rows):
    g = np.random.default_rng(arch.hidden[0])
    x = g.normal(size=(rows, arch.n_inputs)).astype(np.float32)
    if arch.task == "binary":
        return x, (x[:, 0] > 0).astype(np.float32)
    if arch.task == "multiclass":
        return x, np.arange(rows) % arch.n_outputs
    return x, g.normal(size=(rows, arch.n_outputs)).astype(np.float32)


def _same(together, i, alone):
    return all(torch.equal(p[i], q[0]) for p, q in zip(together.params, alone.params)) and all(
        np.array_equal(together.history[name][i], alone.history[name][0]) for name in alone.history
    )


@pytest.mark.parametrize("engine", ["eager", "compiled"])
@pytest.mark.parametrize("width", WIDTHS)
def test_every_member_equals_its_run_alone(width, engine):
    task, n_outputs = TASKS[width % len(TASKS)]
    activations = sorted(ACTIVATIONS if engine == "eager" else COMPILED_ACTIVATIONS)
    activation = activations[width % len(activations)]
    failures = []
    for hidden in _shapes(width):
        arch = Architecture(n_inputs=3, hidden=hidden, activation=activation, task=task, n_outputs=n_outputs)
        for rows, batch_size in BATCHES:
            x, y = _data(arch, rows)
            fit = lambda members: train(arch, members, x, y, epochs=1, batch_size=batch_size, engine=engine)  # noqa: E731
            alone = [fit([kind]) for kind in KINDS]
            for K in POPULATIONS:
                together = fit([KINDS[i % len(KINDS)] for i in range(K)])
                failures += [(hidden, batch_size, K, i) for i in range(K) if not _same(together, i, alone[i % len(KINDS)])]
    assert not failures, f"{activation} {task}: (hidden, batch size, population, member) differing from the member alone: {failures}"
