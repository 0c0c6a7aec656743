"""Optimizers with Keras 3's update rules and a learning rate per member.

The arithmetic follows Keras's torch backend (``keras/src/backend/torch/optimizers``) operation for
operation, so that a member updates exactly as a Keras model does on the same gradients:

Adam (note where epsilon goes: outside the bias correction, unlike ``torch.optim.Adam``)::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m = m * beta_1 + g * (1 - beta_1)
    v = v * beta_2 + g * g * (1 - beta_2)
    w = w - (m * alpha) / (sqrt(v) + epsilon)

SGD with momentum (``m`` starts at zero)::

    m = momentum * m - lr * g
    w = w + m                            # plain momentum
    w = w - lr * g + momentum * m        # nesterov=True

Stopped members are removed from the population, so every member still training has taken the
same number of steps and ``t`` is one number. Parameters, gradients and moments are
:class:`~reglab.engine.stacked.Stacked`: each elementwise operation runs once over all layers.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass

from . import checks
from .lazy import no_grad, torch
from .pieces import member_view
from .stacked import Stacked


def _scale(x: Stacked, values: torch.Tensor, out: Stacked) -> None:
    """``out = x * values[k]`` for each member k (``values`` is ``(K,)``): one pass per layer, or
    one over the whole buffer for a population of one (the same products: a multiplication by
    the same number rounds alike wherever it is made)."""
    if values.shape[0] == 1:
        torch.mul(x.flat, values.view(()), out=out.flat)
        return
    for xi, o in zip(x.views, out.views):
        torch.mul(xi, member_view(values, xi), out=o)


def _bias_correction(beta_1: float, beta_2: float, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``sqrt(1 - beta_2**t)`` and ``1 - beta_1**t`` as 0-dim float32 CPU tensors, which torch
    combines with a tensor on any device without a transfer."""
    root, denominator = _bias_correction_values(beta_1, beta_2, t)
    return torch.tensor(root, dtype=torch.float32), torch.tensor(denominator, dtype=torch.float32)


def _bias_correction_values(beta_1: float, beta_2: float, t: int) -> tuple[float, float]:
    """The two float32 values for step ``t`` (as exact Python floats), from a table per pair of
    betas that grows to the largest step asked for: every population with these betas shares it,
    so a step count is computed once per process however long the runs are."""
    table = _BIAS_TABLES.get((beta_1, beta_2))
    if table is None:
        table = _BIAS_TABLES.setdefault((beta_1, beta_2), (array("d"), array("d")))
    roots, denominators = table
    if len(roots) < t:
        with _BIAS_LOCK:
            for step in range(len(roots) + 1, t + 1):
                root, denominator = _compute_bias_correction(beta_1, beta_2, step)
                roots.append(root)
                denominators.append(denominator)
    return roots[t - 1], denominators[t - 1]


_BIAS_TABLES: dict[tuple[float, float], tuple[array, array]] = {}
_BIAS_LOCK = threading.Lock()


def _compute_bias_correction(beta_1: float, beta_2: float, t: int) -> tuple[float, float]:
    """Computed as Keras does: on float32 scalar tensors with torch's pow and sqrt (numpy's
    float32 pow rounds differently in the last bit for some steps)."""
    f32 = torch.float32
    tt = torch.tensor(float(t), dtype=f32)
    beta_1_power = torch.pow(torch.tensor(beta_1, dtype=f32), tt)
    beta_2_power = torch.pow(torch.tensor(beta_2, dtype=f32), tt)
    return torch.sqrt(1 - beta_2_power).item(), (1 - beta_1_power).item()


@dataclass(frozen=True)
class Adam:
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    name = "adam"

    def __post_init__(self) -> None:
        checks.number("optimizer.beta_1", self.beta_1, lo=0.0, hi=1.0, hi_open=True)
        checks.number("optimizer.beta_2", self.beta_2, lo=0.0, hi=1.0, hi_open=True)
        checks.number("optimizer.epsilon", self.epsilon, lo=0.0)

    def init(self, params: Stacked) -> dict:
        # Every operation below writes in place (into the gradients and one scratch buffer): on a
        # CPU, allocating fresh (K, 128, 128) tensors each step costs more than the arithmetic.
        return {"t": 0, "m": Stacked.zeros(params.views), "v": Stacked.zeros(params.views), "scratch": Stacked.zeros(params.views)}

    @no_grad
    def step(self, params: Stacked, grads: Stacked, state: dict, lr: torch.Tensor) -> None:
        """One update; ``grads`` are consumed (overwritten)."""
        state["t"] += 1
        root, denominator = _bias_correction(self.beta_1, self.beta_2, state["t"])
        alpha = lr * root / denominator
        m, v, scratch, g = state["m"].flat, state["v"].flat, state["scratch"], grads.flat
        m.mul_(self.beta_1)
        m.add_(g, alpha=1 - self.beta_1)
        g.mul_(g)  # g * g
        v.mul_(self.beta_2)
        v.add_(g, alpha=1 - self.beta_2)
        torch.sqrt(v, out=g)
        _scale(state["m"], alpha, scratch)  # m * alpha
        g.add_(self.epsilon)  # sqrt(v) + epsilon
        scratch.flat.div_(g)
        params.flat.sub_(scratch.flat)

    def select(self, state: dict, index: torch.Tensor) -> dict:
        m = state["m"].select(index)
        return {"t": state["t"], "m": m, "v": state["v"].select(index), "scratch": Stacked.zeros(m.views)}


@dataclass(frozen=True)
class SGD:
    momentum: float = 0.0
    nesterov: bool = False
    name = "sgd"

    def __post_init__(self) -> None:
        checks.number("optimizer.momentum", self.momentum, lo=0.0, hi=1.0)
        if not isinstance(self.nesterov, bool):
            checks.fail("optimizer.nesterov", self.nesterov, "true or false")

    def init(self, params: Stacked) -> dict:
        return {"t": 0, "m": Stacked.zeros(params.views)}

    @no_grad
    def step(self, params: Stacked, grads: Stacked, state: dict, lr: torch.Tensor) -> None:
        state["t"] += 1
        _scale(grads, -lr, grads)  # -lr * g
        scaled = grads.flat
        if self.momentum == 0:
            params.flat.add_(scaled)
            return
        m = state["m"].flat
        m.mul_(self.momentum)
        m.add_(scaled)
        if self.nesterov:
            params.flat.add_(scaled)
            params.flat.add_(m, alpha=self.momentum)
        else:
            params.flat.add_(m)

    def select(self, state: dict, index: torch.Tensor) -> dict:
        return {"t": state["t"], "m": state["m"].select(index)}


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(optimizer) -> Adam | SGD:
    if isinstance(optimizer, (Adam, SGD)):
        return optimizer
    checks.choice("optimizer", optimizer, OPTIMIZERS)
    return OPTIMIZERS[optimizer]()
