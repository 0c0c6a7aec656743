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
same number of steps and ``t`` is one number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checks
from .pieces import member_view


def _per_member(values: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """A (K,) tensor viewed to broadcast against each parameter (K, ...)."""
    return [member_view(values, p) for p in like]


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

    def init(self, params: list[torch.Tensor]) -> dict:
        zeros = lambda: [torch.zeros_like(p, requires_grad=False) for p in params]  # noqa: E731
        # Every operation below writes in place (into the gradients and one scratch buffer): on a
        # CPU, allocating fresh (K, 128, 128) tensors each step costs more than the arithmetic.
        return {"t": 0, "m": zeros(), "v": zeros(), "scratch": zeros()}

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor], state: dict, lr: torch.Tensor) -> None:
        """One update; ``grads`` are consumed (overwritten)."""
        state["t"] += 1
        # Keras computes the bias correction on float32 scalar tensors with torch's pow and sqrt
        # (numpy's float32 pow rounds differently in the last bit for some steps). The scalars are
        # 0-dim CPU tensors, which torch combines with a tensor on any device without a transfer.
        f32 = torch.float32
        t = torch.tensor(float(state["t"]), dtype=f32)
        beta_1_power = torch.pow(torch.tensor(self.beta_1, dtype=f32), t)
        beta_2_power = torch.pow(torch.tensor(self.beta_2, dtype=f32), t)
        alpha = lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v, scratch = state["m"], state["v"], state["scratch"]
        torch._foreach_mul_(m, self.beta_1)
        torch._foreach_add_(m, grads, alpha=1 - self.beta_1)
        torch._foreach_mul_(grads, grads)  # g * g
        torch._foreach_mul_(v, self.beta_2)
        torch._foreach_add_(v, grads, alpha=1 - self.beta_2)
        for g, vi, mi, s, a in zip(grads, v, m, scratch, _per_member(alpha, m)):
            torch.sqrt(vi, out=g)
            torch.mul(mi, a, out=s)  # m * alpha
        torch._foreach_add_(grads, self.epsilon)  # sqrt(v) + epsilon
        torch._foreach_div_(scratch, grads)
        torch._foreach_sub_(params, scratch)

    def select(self, state: dict, index: torch.Tensor) -> dict:
        return {"t": state["t"], **{k: [x[index] for x in state[k]] for k in ("m", "v", "scratch")}}


@dataclass(frozen=True)
class SGD:
    momentum: float = 0.0
    nesterov: bool = False
    name = "sgd"

    def __post_init__(self) -> None:
        checks.number("optimizer.momentum", self.momentum, lo=0.0, hi=1.0)
        if not isinstance(self.nesterov, bool):
            checks.fail("optimizer.nesterov", self.nesterov, "true or false")

    def init(self, params: list[torch.Tensor]) -> dict:
        return {"t": 0, "m": [torch.zeros_like(p) for p in params]}

    @torch.no_grad()
    def step(self, params, grads, state, lr) -> None:
        state["t"] += 1
        scaled = torch._foreach_mul(grads, _per_member(-lr, grads))  # -lr * g
        if self.momentum == 0:
            torch._foreach_add_(params, scaled)
            return
        m = state["m"]
        torch._foreach_mul_(m, self.momentum)
        torch._foreach_add_(m, scaled)
        if self.nesterov:
            torch._foreach_add_(params, scaled)
            torch._foreach_add_(params, m, alpha=self.momentum)
        else:
            torch._foreach_add_(params, m)

    def select(self, state: dict, index: torch.Tensor) -> dict:
        return {"t": state["t"], "m": [x[index] for x in state["m"]]}


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def make_optimizer(optimizer) -> Adam | SGD:
    if isinstance(optimizer, (Adam, SGD)):
        return optimizer
    checks.choice("optimizer", optimizer, OPTIMIZERS)
    return OPTIMIZERS[optimizer]()
