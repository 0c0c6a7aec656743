"""An independent, plain trainer for one network: the reference the engine is compared with.

Written for the tests from Keras's documentation and formulas, not from the engine: one model at a
time, 2-D tensors, ``x @ W + b`` per layer, autograd for every gradient (penalties included), no
padding, no member axis, no gradient buffers, no one-unit special case, no in-place optimizer
tricks, and the stopping rules in plain Python floats. What it shares with the engine is only the
source of randomness: the counter-based keys of :mod:`reglab.engine.rng` (initial weights, row
order, dropout masks, noise), which are pure functions of (seed, purpose, counters) and are checked
against a pure-Python reference in ``test_rng.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from reglab.engine import (
    L1,
    L2,
    SGD,
    Adam,
    Dropout,
    EarlyStopping,
    GaussianDropout,
    GaussianNoise,
    MaxNorm,
    Prechelt,
    ProximalL1,
    WeightDecay,
    rng,
)

EPSILON = 1e-7  # keras.config.epsilon()

ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": torch.nn.functional.elu,
    "gelu": torch.nn.functional.gelu,
    "linear": lambda h: h,
}


def one_key(seed: int, *words: int) -> torch.Tensor:
    return rng.derive_keys(torch.tensor([seed]), *words)


# --- the model -----------------------------------------------------------------------------------


def initial_weights(arch, seed: int) -> list[torch.Tensor]:
    """Keras's Dense defaults: Glorot-uniform kernels in [-limit, limit), zero biases."""
    params = []
    for layer, (fan_in, fan_out) in enumerate(zip(arch.widths[:-1], arch.widths[1:])):
        u = rng.uniform(one_key(seed, rng.STREAM_INIT, layer), (fan_in, fan_out))[0]
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params += [(u * 2.0 - 1.0) * limit, torch.zeros(fan_out)]
    return params


@dataclass
class Noise:
    """The training-time layers after each hidden Dense, in Keras's order for a model that stacks
    Dropout, GaussianDropout and GaussianNoise; GaussianNoise on the inputs."""

    dropout: tuple[float, ...] = ()
    gaussian_dropout: tuple[float, ...] = ()
    gaussian_noise: tuple[float, ...] = ()
    input_noise: float = 0.0

    def inputs(self, x, seed, epoch, step):
        if self.input_noise > 0:
            z = rng.normal(one_key(seed, rng.STREAM_NOISE, 2, epoch, step, 0), tuple(x.shape))[0]
            x = x + z.to(x.dtype) * self.input_noise
        return x

    def hidden(self, h, layer, seed, epoch, step):
        if self.dropout and self.dropout[layer] > 0:
            rate = self.dropout[layer]
            mask = rng.keep_mask(one_key(seed, rng.STREAM_NOISE, 1, epoch, step, layer), tuple(h.shape), torch.tensor([rate]))[0]
            h = torch.where(mask > 0, h / (1.0 - rate), torch.zeros_like(h))  # keras.layers.Dropout
        if self.gaussian_dropout and self.gaussian_dropout[layer] > 0:
            rate = self.gaussian_dropout[layer]
            z = rng.normal(one_key(seed, rng.STREAM_NOISE, 3, epoch, step, layer + 1), tuple(h.shape))[0]
            h = h * (1.0 + z.to(h.dtype) * math.sqrt(rate / (1.0 - rate)))  # keras.layers.GaussianDropout
        if self.gaussian_noise and self.gaussian_noise[layer] > 0:
            z = rng.normal(one_key(seed, rng.STREAM_NOISE, 2, epoch, step, layer + 1), tuple(h.shape))[0]
            h = h + z.to(h.dtype) * self.gaussian_noise[layer]  # keras.layers.GaussianNoise
        return h


def logits(arch, params, x, noise: Noise | None = None, seed=0, epoch=0, step=0):
    act = ACTIVATIONS[arch.activation]
    h = noise.inputs(x, seed, epoch, step) if noise else x
    n = arch.n_layers
    for layer in range(n):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < n - 1:
            h = act(h)
            if noise:
                h = noise.hidden(h, layer, seed, epoch, step)
    return h


# --- losses and metrics, Keras's formulas --------------------------------------------------------


def data_loss(task, z, y):
    """Mean over rows of Keras's per-sample loss (clipped probabilities, no logits path)."""
    if task == "binary":
        p = torch.sigmoid(z).clamp(EPSILON, 1 - EPSILON)
        return (-(y * torch.log(p) + (1 - y) * torch.log(1 - p))).mean()
    if task == "multiclass":
        p = torch.softmax(z, dim=-1)
        p = (p / p.sum(-1, keepdim=True)).clamp(EPSILON, 1 - EPSILON)
        return (-(y * torch.log(p)).sum(-1)).mean()
    return ((y - z) ** 2).mean()


def metric_values(task, z, y) -> dict[str, torch.Tensor]:
    """Per-sample metrics (Keras's names): accuracy, or mse and mae."""
    if task == "binary":
        return {"accuracy": ((torch.sigmoid(z) > 0.5).float() == y).float()[:, 0]}
    if task == "multiclass":
        return {"accuracy": (torch.softmax(z, dim=-1).argmax(-1) == y.argmax(-1)).float()}
    return {"mse": ((y - z) ** 2).mean(-1), "mae": (y - z).abs().mean(-1)}


# --- the member's settings, read from its techniques ---------------------------------------------


def _per_layer(value, n):
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),) * n


def _kernel_coefficients(value, arch):
    """A number covers the hidden kernels (not the output's); a list gives every Dense layer one."""
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    return (float(value),) * len(arch.hidden) + (0.0,)


@dataclass
class Settings:
    l1: tuple[float, ...]
    l2: tuple[float, ...]
    proximal_l1: tuple[float, ...]
    max_norm: tuple[float, ...]
    weight_decay: float
    decay_biases: bool
    noise: Noise
    early_stopping: EarlyStopping | None
    prechelt: Prechelt | None

    @classmethod
    def of(cls, arch, techniques):
        by_type = {type(t): t for t in techniques}
        n_hidden, n_layers = len(arch.hidden), arch.n_layers
        zeros = (0.0,) * n_layers
        get = by_type.get
        noise = Noise(
            dropout=_per_layer(get(Dropout).rate, n_hidden) if get(Dropout) else (),
            gaussian_dropout=_per_layer(get(GaussianDropout).rate, n_hidden) if get(GaussianDropout) else (),
            gaussian_noise=_per_layer(get(GaussianNoise).stddev, n_hidden) if get(GaussianNoise) else (),
            input_noise=float(get(GaussianNoise).input_stddev) if get(GaussianNoise) else 0.0,
        )
        return cls(
            l1=_kernel_coefficients(get(L1).l1, arch) if get(L1) else zeros,
            l2=_kernel_coefficients(get(L2).l2, arch) if get(L2) else zeros,
            proximal_l1=_kernel_coefficients(get(ProximalL1).proximal_l1, arch) if get(ProximalL1) else zeros,
            max_norm=_per_layer(get(MaxNorm).max_norm, n_hidden) if get(MaxNorm) else (),
            weight_decay=get(WeightDecay).weight_decay if get(WeightDecay) else 0.0,
            decay_biases=get(WeightDecay).biases if get(WeightDecay) else False,
            noise=noise,
            early_stopping=get(EarlyStopping),
            prechelt=get(Prechelt),
        )

    def penalty(self, params):
        total = torch.zeros((), dtype=params[0].dtype)
        for layer in range(len(params) // 2):
            W = params[2 * layer]
            if self.l1[layer]:
                total = total + self.l1[layer] * W.abs().sum()
            if self.l2[layer]:
                total = total + self.l2[layer] * (W**2).sum()
        return total


# --- the stopping rules, in plain Python --------------------------------------------------------


class KerasEarlyStopping:
    """``keras.callbacks.EarlyStopping`` (Keras 3), with PyTorch Lightning's three extras."""

    def __init__(self, es: EarlyStopping, direction: str):
        self.es = es
        self.sign = 1.0 if (es.mode if es.mode != "auto" else direction) == "min" else -1.0
        self.best = None
        self.best_epoch = -1
        self.best_weights = None
        self.wait = 0

    def _improves(self, value, reference):
        # Keras: monitor_op(current - min_delta, reference), min_delta negated in min mode.
        if reference is None:
            return True
        with np.errstate(over="ignore"):  # a diverging member's values overflow float32
            return np.float32(self.sign * value + abs(self.es.min_delta)) < np.float32(self.sign * reference)

    def end_of_epoch(self, epoch, logs, params):
        es, current = self.es, logs[self.es.monitor]
        reason = None
        if epoch >= es.start_from_epoch:
            self.wait += 1
            if self._improves(current, self.best):
                self.best, self.best_epoch = current, epoch
                if es.restore_best_weights:
                    self.best_weights = [p.detach().clone() for p in params]
                if es.baseline is None or self._improves(current, es.baseline):
                    self.wait = 0
            elif self.wait >= es.patience and epoch > 0:
                reason = "patience"
            if es.divergence_threshold is not None and self.sign * current > self.sign * es.divergence_threshold:
                reason = "divergence"
            if es.stopping_threshold is not None and self.sign * current < self.sign * es.stopping_threshold:
                reason = "stopping_threshold"
        if es.check_finite and not math.isfinite(current):
            reason = "non_finite"
        return reason


class PrecheltRule:
    """Prechelt (1998): GL_alpha, PQ_alpha and UP_s from their definitions."""

    def __init__(self, rule: Prechelt):
        self.rule = rule
        self.best, self.best_epoch, self.best_weights = math.inf, -1, None
        self.train_losses: list[float] = []
        self.last_strip_value = None
        self.rises = 0

    def end_of_epoch(self, epoch, logs, params):
        r, e_va = self.rule, logs[self.rule.monitor]
        self.train_losses.append(logs["loss"])
        if e_va < self.best:
            self.best, self.best_epoch = e_va, epoch
            if r.restore_best_weights:
                self.best_weights = [p.detach().clone() for p in params]
        gl = 100.0 * (e_va / self.best - 1.0)
        strip_end = (epoch + 1) % r.strip == 0
        if strip_end:
            rose = self.last_strip_value is not None and e_va > self.last_strip_value
            self.rises = self.rises + 1 if rose else 0
            self.last_strip_value = e_va
        if r.criterion == "GL" and gl > r.alpha:
            return "GL"
        if r.criterion == "PQ" and strip_end:
            strip = self.train_losses[-r.strip :]
            progress = 1000.0 * (sum(strip) / (r.strip * min(strip)) - 1.0)
            # No training progress at all: any generalization loss is infinitely many times it.
            quotient = gl / progress if progress else (math.inf if gl > 0 else math.nan)
            if quotient > r.alpha:
                return "PQ"
        if r.criterion == "UP" and self.rises >= r.strips:
            return "UP"
        return None


# --- the training run -----------------------------------------------------------------------------


@dataclass
class Trajectory:
    params: list[torch.Tensor]
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    stop_reason: str = "max_epochs"
    best_epoch: int = -1


def train_one(arch, member, X, Y, Xv, Yv, *, epochs, batch_size, optimizer, dtype=torch.float32) -> Trajectory:
    """Keras's ``fit`` for one member: ``X`` (N, d), ``Y`` (N, C) (one-hot or 0/1 columns);
    ``Xv``/``Yv`` the validation rows or None. Computed in ``dtype`` (the random draws are float32,
    as the engine's, and converted)."""
    s = Settings.of(arch, member.techniques)
    X, Y = X.to(dtype), Y.to(dtype)
    if Xv is not None:
        Xv, Yv = Xv.to(dtype), Yv.to(dtype)
    seed, lr = member.seed, torch.tensor(member.learning_rate, dtype=dtype)
    params = [p.to(dtype).requires_grad_(True) for p in initial_weights(arch, seed)]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    metric_names = list(metric_values(arch.task, torch.zeros(1, arch.n_outputs), torch.zeros(1, arch.n_outputs)))
    directions = {"loss": "min", "accuracy": "max", "mse": "min", "mae": "min"}
    names = ["loss", *metric_names] + ([f"val_{n}" for n in ["loss", *metric_names]] if Xv is not None else [])
    rules = []
    if s.early_stopping:
        rules.append(KerasEarlyStopping(s.early_stopping, directions[s.early_stopping.monitor.removeprefix("val_")]))
    if s.prechelt:
        rules.append(PrecheltRule(s.prechelt))
    out = Trajectory(params=params, history={n: [] for n in names})
    N, t = len(X), 0
    for epoch in range(epochs):
        order = torch.sort(rng.random_bits(one_key(seed, rng.STREAM_SHUFFLE, epoch), (N,))[0], stable=True).indices
        loss_sum, metric_sums = 0.0, {n: 0.0 for n in metric_names}
        for step, start in enumerate(range(0, N, batch_size)):
            rows = order[start : start + batch_size]
            z = logits(arch, params, X[rows], s.noise, seed, epoch, step)
            loss = data_loss(arch.task, z, Y[rows]) + s.penalty(params)
            grads = torch.autograd.grad(loss, params)
            loss_sum += float(loss.detach()) * len(rows)
            for name, values in metric_values(arch.task, z.detach(), Y[rows]).items():
                metric_sums[name] += float(values.sum())
            with torch.no_grad():
                t += 1
                _update(params, grads, m, v, t, lr, optimizer, s)
        logs = {"loss": loss_sum / N, **{n: metric_sums[n] / N for n in metric_names}}
        if Xv is not None:
            with torch.no_grad():
                z = logits(arch, params, Xv)
                logs["val_loss"] = float(data_loss(arch.task, z, Yv) + s.penalty(params))
                logs.update({f"val_{n}": float(values.mean()) for n, values in metric_values(arch.task, z, Yv).items()})
        for n in names:
            out.history[n].append(logs[n])
        reason = "non_finite" if not all(math.isfinite(logs[n]) for n in names if n.endswith("loss")) else None
        for rule in rules:
            said = rule.end_of_epoch(epoch, logs, params)
            reason = reason or said
        out.epochs_run = epoch + 1
        if reason:
            out.stop_reason = reason
            break
    final = [p.detach() for p in params]
    for rule in rules:  # early stopping restores first, Prechelt's restore (if any) last
        if rule.best_weights is not None:
            final = rule.best_weights
    out.params = final
    if rules:
        out.best_epoch = max(rule.best_epoch for rule in rules)
    if out.best_epoch < 0:
        monitor = np.array(out.history.get("val_loss", out.history["loss"]))
        out.best_epoch = int(np.argmin(np.where(np.isnan(monitor), np.inf, monitor)))
    return out


def _update(params, grads, m, v, t, lr, optimizer, s: Settings):
    """Decoupled weight decay, the optimizer step, then max-norm and the proximal L1 step."""
    if s.weight_decay:
        factor = 1 - s.weight_decay * lr
        for i, p in enumerate(params):
            if i % 2 == 0 or s.decay_biases:
                p.mul_(factor)
    for i, (p, g) in enumerate(zip(params, grads)):
        if isinstance(optimizer, Adam):
            # Keras casts the betas to the variables' dtype before the bias correction.
            b1, b2 = optimizer.beta_1, optimizer.beta_2
            beta_1, beta_2 = torch.tensor(b1, dtype=p.dtype), torch.tensor(b2, dtype=p.dtype)
            alpha = lr * torch.sqrt(1 - beta_2**t) / (1 - beta_1**t)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            p.sub_(m[i] * alpha / (torch.sqrt(v[i]) + optimizer.epsilon))
        elif isinstance(optimizer, SGD):
            if optimizer.momentum == 0:
                p.sub_(lr * g)
                continue
            m[i] = optimizer.momentum * m[i] - lr * g
            p.add_(optimizer.momentum * m[i] - lr * g if optimizer.nesterov else m[i])
    for layer, bound in enumerate(s.max_norm):  # keras.constraints.MaxNorm(bound, axis=0)
        W = params[2 * layer]
        norms = torch.sqrt((W**2).sum(0, keepdim=True))
        W.copy_(W * (norms.clamp(0, bound) / (EPSILON + norms)))
    for layer, strength in enumerate(s.proximal_l1):
        if strength:
            W = params[2 * layer]
            W.copy_(torch.sign(W) * torch.clamp(W.abs() - lr * strength, min=0.0))
