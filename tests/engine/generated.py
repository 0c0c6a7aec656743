"""Generated training cases for the differential suite (``test_generated.py``).

A :class:`Case` is everything one call of ``train`` needs: an architecture, a population of
members with their own seeds, learning rates and techniques, data (shared or one set per member),
validation by split or by ``validation_data``, the optimizer, the epochs and batch size. Data are drawn from
``data_seed``, so a case's ``repr`` is all it takes to rebuild it::

    case = Case(arch=..., members=[...], data_seed=3, ...)   # as hypothesis prints it
    case.train(range(len(case.members)))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from reglab.engine.paths import why_not_compiled
from reglab.engine import (
    L1,
    L2,
    SGD,
    Adam,
    Architecture,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    MaxNorm,
    Member,
    Prechelt,
    ProximalL1,
    WeightDecay,
    train,
)

ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "linear")
DIVERGING = 1e30  # a learning rate that sends a member's weights to infinity within a few steps


@dataclass
class Case:
    arch: Architecture
    members: list[Member]
    data_seed: int
    rows: int
    per_member_data: bool
    validation: str  # "split", "data" or "none"
    epochs: int
    batch_size: int
    optimizer: Adam | SGD
    groups: list[list[int]] = field(default_factory=list)  # a regrouping of all members
    alone: list[int] = field(default_factory=list)  # members also trained on their own
    x: np.ndarray = field(init=False, repr=False)
    y: np.ndarray = field(init=False, repr=False)
    x_val: np.ndarray | None = field(init=False, repr=False)
    y_val: np.ndarray | None = field(init=False, repr=False)

    VALIDATION_SPLIT = 0.25

    def __post_init__(self):
        g = np.random.default_rng(self.data_seed)
        lead = (len(self.members),) if self.per_member_data else ()
        self.x, self.y = _data(g, self.arch, (*lead, self.rows))
        self.x_val = self.y_val = None
        if self.validation == "data":
            self.x_val, self.y_val = _data(g, self.arch, (*lead, max(2, self.rows // 3)))

    def _kwargs(self, indices):
        pick = (lambda a: a[list(indices)]) if self.per_member_data else (lambda a: a)
        kw = dict(epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer)
        if self.validation == "split":
            kw["validation_split"] = self.VALIDATION_SPLIT
        elif self.validation == "data":
            kw["validation_data"] = (pick(self.x_val), pick(self.y_val))
        return pick(self.x), pick(self.y), kw

    def train(self, indices, engine="auto"):
        """The members at ``indices`` trained as one population, on ``engine``: "eager", or
        "compiled" (where a member has no compiled form, "auto": it trains eager)."""
        indices = list(indices)
        x, y, kw = self._kwargs(indices)
        members = [self.members[i] for i in indices]
        if engine == "compiled" and any(why_not_compiled(m.techniques, self.arch) for m in members):
            engine = "auto"
        return train(self.arch, members, x, y, engine=engine, **kw)

    def member_data(self, i):
        """Member ``i``'s training and validation rows as float32 arrays, targets as columns
        (0/1, one-hot or values): what Keras's ``fit`` would be given."""
        x = self.x[i] if self.per_member_data else self.x
        y = self.y[i] if self.per_member_data else self.y
        if self.validation == "split":
            cut = int(np.floor(len(x) * (1 - self.VALIDATION_SPLIT)))
            x, y, xv, yv = x[:cut], y[:cut], x[cut:], y[cut:]
        elif self.validation == "data":
            xv = self.x_val[i] if self.per_member_data else self.x_val
            yv = self.y_val[i] if self.per_member_data else self.y_val
        else:
            xv = yv = None
        columns = lambda t: None if t is None else _columns(self.arch, t)  # noqa: E731
        return x, columns(y), xv, columns(yv)


def _data(g, arch, lead):
    x = g.normal(size=(*lead, arch.n_inputs)).astype(np.float32)
    signal = np.tanh(x @ g.normal(size=(arch.n_inputs, max(arch.n_outputs, 2))))
    if arch.task == "binary":
        y = (signal[..., 0] + 0.3 * g.normal(size=lead) > 0).astype(np.float32)
    elif arch.task == "multiclass":
        y = (signal @ g.normal(size=(signal.shape[-1], arch.n_outputs)) + 0.3 * g.normal(size=(*lead, arch.n_outputs))).argmax(-1)
    else:
        y = (signal[..., : arch.n_outputs] + 0.1 * g.normal(size=(*lead, arch.n_outputs))).astype(np.float32)
    return x, y


def _columns(arch, y):
    if arch.task == "binary":
        return y.reshape(-1, 1).astype(np.float32)
    if arch.task == "multiclass":
        return np.eye(arch.n_outputs, dtype=np.float32)[y]
    return y.astype(np.float32)


# --- strategies ---------------------------------------------------------------------------------

# Widths that put a member's blocks off 64-byte boundaries (not multiples of 8 or 16) are drawn at
# least as often as the round ones: the one width class the fixed examples once never drew.
AWKWARD_WIDTHS = [1, 3, 5, 7, 9, 15, 17, 22, 31, 33, 87, 127, 129, 255]
WIDTHS = st.one_of(st.sampled_from(AWKWARD_WIDTHS), st.integers(1, 256), st.sampled_from([2, 8, 16, 32, 64, 128, 256]))


@st.composite
def architectures(draw):
    depth = draw(st.integers(0, 4))
    base = draw(WIDTHS)
    # Equal widths often: each hidden layer repeats the base width unless a coin says otherwise.
    hidden = tuple(base if draw(st.booleans()) else draw(WIDTHS) for _ in range(depth))
    task = draw(st.sampled_from(["binary", "multiclass", "regression"]))
    n_outputs = {"binary": 1, "multiclass": draw(st.integers(2, 5)), "regression": draw(st.integers(1, 3))}[task]
    return Architecture(draw(st.integers(1, 5)), hidden, draw(st.sampled_from(ACTIVATIONS)), task, n_outputs)


def _rate_or_rates(draw, n_hidden, values):
    if n_hidden and draw(st.booleans()):
        return tuple(draw(st.sampled_from(values)) for _ in range(n_hidden))
    return draw(st.sampled_from(values))


def _coefficients(draw, arch, values):
    """One number (hidden kernels) or one per Dense layer, the output's included."""
    if draw(st.booleans()):
        return tuple(draw(st.sampled_from(values)) for _ in range(arch.n_layers))
    return draw(st.sampled_from(values))


@st.composite
def techniques(draw, arch, monitors, validation_losses):
    n = len(arch.hidden)
    makers = {
        "dropout": lambda: Dropout(_rate_or_rates(draw, n, [0.0, 0.1, 0.5, 0.9])),
        "l1": lambda: L1(_coefficients(draw, arch, [0.0, 1e-4, 1e-3, 1e-2])),
        "l2": lambda: L2(_coefficients(draw, arch, [0.0, 1e-4, 1e-3, 1e-2])),
        "weight_decay": lambda: WeightDecay(draw(st.sampled_from([0.01, 0.1, 2.0])), biases=draw(st.booleans())),
        "max_norm": lambda: MaxNorm(_rate_or_rates(draw, n, [0.1, 0.5, 1.0, 3.0])),
        "gaussian_noise": lambda: GaussianNoise(_rate_or_rates(draw, n, [0.0, 0.1, 1.0]), input_stddev=draw(st.sampled_from([0.0, 0.05, 0.5]))),
        "gaussian_dropout": lambda: GaussianDropout(_rate_or_rates(draw, n, [0.0, 0.2, 0.6])),
        "proximal_l1": lambda: ProximalL1(_coefficients(draw, arch, [0.0, 1e-3, 1e-1])),
        "early_stopping": lambda: EarlyStopping(
            monitor=draw(st.sampled_from(monitors)),
            patience=draw(st.integers(0, 3)),
            min_delta=draw(st.sampled_from([0.0, 0.0, 1e-3, 0.05])),
            restore_best_weights=draw(st.booleans()),
            start_from_epoch=draw(st.integers(0, 2)),
            baseline=draw(st.sampled_from([None, None, 0.5])),
            stopping_threshold=draw(st.sampled_from([None, None, None, 0.3])),
        ),
    }
    if validation_losses:
        makers["prechelt"] = lambda: Prechelt(
            criterion=draw(st.sampled_from(["GL", "PQ", "UP"])),
            alpha=draw(st.sampled_from([0.1, 1.0, 5.0])),
            strips=draw(st.integers(1, 2)),
            strip=draw(st.integers(1, 3)),
            restore_best_weights=draw(st.booleans()),
        )
    chosen = draw(st.lists(st.sampled_from(sorted(makers)), max_size=4, unique=True))
    return tuple(makers[name]() for name in chosen)


@st.composite
def cases(draw, max_members=70, max_epochs=5):
    arch = draw(architectures())
    validation = draw(st.sampled_from(["split", "data", "none"]))
    metrics = ["accuracy"] if arch.task != "regression" else ["mse", "mae"]
    monitors = ["loss", *metrics] + ([f"val_{m}" for m in ["loss", *metrics]] if validation != "none" else [])
    # Keep the work bounded: K x (weights) x rows x epochs stays under a few hundred million.
    weights = sum(a * b for a, b in zip(arch.widths[:-1], arch.widths[1:]))
    rows = draw(st.integers(4, 48))
    epochs = draw(st.integers(1, max_epochs))
    room = max(1, 300_000_000 // (weights * rows * epochs * 4))
    K = draw(st.one_of(st.integers(1, 6), st.integers(1, max_members)).map(lambda k: min(k, room, max_members)))
    seeds = st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1))
    rates = st.one_of(st.sampled_from([1e-3, 1e-2, 0.05, 0.2]), st.just(DIVERGING))
    members = [
        Member(seed=draw(seeds), learning_rate=draw(rates), techniques=draw(techniques(arch, monitors, validation != "none")))
        for _ in range(K)
    ]
    optimizer = draw(
        st.one_of(
            st.just(Adam()),
            st.builds(Adam, st.sampled_from([0.5, 0.9]), st.sampled_from([0.9, 0.999]), st.sampled_from([1e-7, 1e-3])),
            st.builds(SGD, st.sampled_from([0.0, 0.5, 0.9]), st.booleans()),
        )
    )
    training_rows = int(np.floor(rows * (1 - Case.VALIDATION_SPLIT))) if validation == "split" else rows
    divisors = [d for d in range(1, training_rows + 1) if training_rows % d == 0]
    batch_size = draw(st.one_of(st.just(1), st.integers(1, training_rows + 3), st.sampled_from(divisors)))
    order = draw(st.permutations(range(K)))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, K - 1)), max_size=3))) if K > 1 else []
    groups = [list(order[a:b]) for a, b in zip([0, *cuts], [*cuts, K]) if a < b]
    # The last member is always also trained alone (with K > 1, an index >= 1: member 0 sits where
    # a member alone sits, and proves nothing about offsets), and one or two more.
    alone = sorted({K - 1, *draw(st.lists(st.integers(0, K - 1), min_size=1, max_size=2, unique=True))})
    return Case(
        arch=arch,
        members=members,
        data_seed=draw(st.integers(0, 2**16)),
        rows=rows,
        per_member_data=draw(st.booleans()),
        validation=validation,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        groups=groups,
        alone=alone,
    )
