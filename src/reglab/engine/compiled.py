"""The compiled engine: a population trained by :func:`reglab.engine.kernel.train_epochs`, one call
for a run of epochs, behind the same :class:`~reglab.engine.trainer.Trainer` as the eager path.

What is compiled is the work inside an epoch (every step's forward and backward pass, penalties,
the optimizer and the update transforms); what happens between epochs (the history, stopping
rules, restoring the best weights, members leaving the population) is the trainer's, on torch
views of the same memory, exactly as on the eager path. Where a stopping rule is present the
kernel is called one epoch at a time; otherwise for as many epochs as fill about a fifth of a
second, which changes no bit (a member's arithmetic does not depend on where calls start).

The compiled path agrees with the eager one (and so with Keras) to float32 rounding, not bit for
bit: its sums run in another order and its transcendental functions round differently.
Row orders and dropout masks are the same bits. ``docs/speed.md`` gives the measured deviation.

A technique takes part through a :class:`Program`: the per-member strengths of the kernel's
generic operations, which its :meth:`~reglab.engine.technique.Technique.compile` sets.
"""

from __future__ import annotations

import threading
import time

import numba
import numpy as np
import torch

from . import kernel
from .architecture import Architecture

_ACTIVATIONS = {"relu": kernel.ACT_RELU, "tanh": kernel.ACT_TANH, "sigmoid": kernel.ACT_SIGMOID, "linear": kernel.ACT_LINEAR}
_METRICS = {("binary", "accuracy"): kernel.METRIC_BINARY_ACC, ("multiclass", "accuracy"): kernel.METRIC_CAT_ACC}
_CALL_SECONDS = 0.2  # a call's length, when nothing stops between epochs
# numba's default threading layer may not be entered by two threads at once (a playground's
# trainer and a notebook's, say): calls in one process take turns.
_KERNEL_LOCK = threading.Lock()


class Program:
    """Per-member strengths of the kernel's operations, ``(K, ...)`` arrays; zero is off.

    - ``l1``, ``l2`` ``(K, n_layers)``: ``c * sum|W|`` and ``c * sum W**2`` on each kernel, added
      to the loss (and their gradients);
    - ``drop_threshold`` ``(K, n_hidden)``: a Bernoulli mask on each hidden layer, a unit dropped
      where its 16 random bits fall below it, the kept ones divided by ``drop_keep``;
    - ``gd_std`` ``(K, n_hidden)``: hidden activations times ``1 + std * N(0, 1)``;
    - ``gn_std`` ``(K, 1 + n_hidden)``: plus ``std * N(0, 1)`` (column 0: the inputs);
    - ``decay`` ``(K,)``: every kernel (and bias, where ``decay_bias``) times ``1 - decay * lr``
      before the update;
    - ``max_norm`` ``(K, n_hidden)``: each unit's incoming weights scaled to a norm of at most it,
      after the update; ``prox`` ``(K, n_layers)``: ``sign(w) max(|w| - lr * prox, 0)`` after that;
    - ``smooth_keep``, ``smooth_add`` ``(K,)``: the loss sees ``y * keep + add``;
    - ``streams`` ``(3,)``: the random streams the mask, the multiplicative and the additive noise
      are keyed by (the techniques' own ``rng_stream``), the same for every member.
    """

    FIELDS = ("drop_threshold", "drop_keep", "gd_std", "gn_std", "l1", "l2", "decay", "decay_bias", "max_norm", "prox", "smooth_keep", "smooth_add")

    def __init__(self, K: int, arch: Architecture) -> None:
        H, L = len(arch.hidden), arch.n_layers
        f32 = np.float32
        self.drop_threshold = np.zeros((K, H), np.int64)
        self.drop_keep = np.ones((K, H), f32)
        self.gd_std = np.zeros((K, H), f32)
        self.gn_std = np.zeros((K, H + 1), f32)
        self.l1 = np.zeros((K, L), f32)
        self.l2 = np.zeros((K, L), f32)
        self.decay = np.zeros(K, f32)
        self.decay_bias = np.zeros(K, np.bool_)
        self.max_norm = np.zeros((K, H), f32)
        self.prox = np.zeros((K, L), f32)
        self.smooth_keep = np.ones(K, f32)
        self.smooth_add = np.zeros(K, f32)
        self.streams = np.zeros(3, np.int64)

    @classmethod
    def of(cls, technique_lists, arch: Architecture) -> Program:
        program = cls(len(technique_lists), arch)
        for k, techniques in enumerate(technique_lists):
            for t in techniques:
                if type(t).compiled == "steps":
                    t.compile(program, k, arch)
        return program

    def select(self, index: np.ndarray) -> Program:
        out = Program.__new__(Program)
        for name in self.FIELDS:
            setattr(out, name, np.ascontiguousarray(getattr(self, name)[index]))
        out.streams = self.streams
        return out

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, name) for name in self.FIELDS]


def _aligned(n: int) -> int:
    return -(-n // 16) * 16


class CompiledPopulation:
    """A population's weights and optimizer state in member-major numpy buffers ``(K, P)``, with
    torch views of them (:attr:`params`) for what the trainer does between epochs."""

    def __init__(self, arch, members, X, Y, Xv, Yv, params, optimizer, loss_name, clip_probabilities, metric_names, batch_size):
        K = len(members)
        self.arch, self.batch_size = arch, batch_size
        widths = arch.widths
        offsets, total = [], 0
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            offsets.append(total)
            total += _aligned(fan_in * fan_out)
            offsets.append(total)
            total += _aligned(fan_out)
        self._offsets = offsets
        self.widths = np.array(widths, np.int64)
        self.koff = np.array(offsets[0::2], np.int64)
        self.boff = np.array(offsets[1::2], np.int64)
        self.buffer = np.zeros((K, _aligned(total)), np.float32)
        self._views()
        with torch.no_grad():
            for view, p in zip(self.params, params):
                view.copy_(p.detach().to("cpu", torch.float32))
        self.m1 = np.zeros_like(self.buffer)
        self.m2 = np.zeros_like(self.buffer)
        self.seeds = np.array([m.seed for m in members], np.int64)
        self.lr = np.array([m.learning_rate for m in members], np.float32)
        self.program = Program.of([m.techniques for m in members], arch)
        # Each of the four shared by every member or one set per member, each on its own.
        self.X, self.xmap = _sets(X, K)
        self.Y, self.ymap = _sets(Y, K)
        if Xv is None:
            self.Xv, self.xvmap = np.zeros((1, 0, widths[0]), np.float32), np.zeros(K, np.int64)
            self.Yv, self.yvmap = np.zeros((1, 0, widths[-1]), np.float32), np.zeros(K, np.int64)
        else:
            self.Xv, self.xvmap = _sets(Xv, K)
            self.Yv, self.yvmap = _sets(Yv, K)
        self.n_columns = (1 + len(metric_names)) * (2 if Xv is not None else 1)
        self.loss_kind = _loss_code(loss_name, clip_probabilities)
        self.metrics = np.array([_METRICS.get((arch.task, name), kernel.METRIC_MSE if name == "mse" else kernel.METRIC_MAE) for name in metric_names], np.int64)
        self.optimizer = optimizer
        self.steps = -(-self.X.shape[1] // batch_size)
        self.seconds_per_epoch: float | None = None

    def _views(self) -> None:
        """``[W0, b0, W1, b1, ...]`` as torch tensors sharing the buffer's memory."""
        flat = torch.from_numpy(self.buffer)
        K, widths, views = self.buffer.shape[0], self.arch.widths, []
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            k, b = self._offsets[2 * layer], self._offsets[2 * layer + 1]
            views.append(flat[:, k : k + fan_in * fan_out].view(K, fan_in, fan_out))
            views.append(flat[:, b : b + fan_out])
        self.params = views

    def epochs_per_call(self, remaining: int) -> int:
        """As many epochs as fill about :data:`_CALL_SECONDS` (one until a call has been timed)."""
        if self.seconds_per_epoch is None:
            return 1
        return max(1, min(remaining, int(_CALL_SECONDS / max(self.seconds_per_epoch, 1e-6))))

    def run(self, epoch: int, n_epochs: int) -> tuple[np.ndarray, np.ndarray]:
        """Train ``n_epochs`` epochs from ``epoch``: the logs ``(K, n_epochs, columns)`` (NaN after
        a member's loss became non-finite) and the epochs each member trained."""
        K = self.buffer.shape[0]
        hist = np.full((K, n_epochs, self.n_columns), np.nan, np.float32)
        trained = np.zeros(K, np.int64)
        opt = self.optimizer
        adam = opt.name == "adam"
        f32 = np.float32
        start = time.perf_counter()
        with _KERNEL_LOCK:
            # As many threads as torch may use (a worker process is given one), members spread
            # over them; which thread trains a member changes none of its bits.
            numba.set_num_threads(max(1, min(K, torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
            kernel.train_epochs(
                self.X, self.xmap, self.Y, self.ymap, self.Xv, self.xvmap, self.Yv, self.yvmap, self.buffer, self.m1, self.m2,
                self.widths, self.koff, self.boff, self.seeds, self.lr, _ACTIVATIONS[self.arch.activation], self.loss_kind, self.metrics,
                self.batch_size, epoch, n_epochs, epoch * self.steps, kernel.OPT_ADAM if adam else kernel.OPT_SGD,
                f32(opt.beta_1 if adam else 0.0), f32(opt.beta_2 if adam else 0.0),
                # 1 - beta as Keras has it: a Python float, then float32 where it meets a tensor
                f32(1 - opt.beta_1 if adam else 0.0), f32(1 - opt.beta_2 if adam else 0.0), f32(opt.epsilon if adam else 0.0),
                f32(0.0 if adam else opt.momentum), bool(not adam and opt.nesterov), self.program.streams,
                *self.program.arrays(), hist, trained,
            )
        self.seconds_per_epoch = (time.perf_counter() - start) / n_epochs
        return hist, trained

    def select(self, keep: np.ndarray) -> None:
        """Keep only the members at ``keep`` (the others stopped)."""
        self.buffer = np.ascontiguousarray(self.buffer[keep])
        self.m1, self.m2 = np.ascontiguousarray(self.m1[keep]), np.ascontiguousarray(self.m2[keep])
        self.seeds, self.lr = self.seeds[keep], self.lr[keep]
        self.xmap, self.ymap, self.xvmap, self.yvmap = self.xmap[keep], self.ymap[keep], self.xvmap[keep], self.yvmap[keep]
        self.program = self.program.select(keep)
        self._views()


# The hooks the kernel does the work of; a technique whose compiled form is "epochs" has none.
STEP_HOOKS = ("penalty", "hidden", "targets", "before_update", "after_update")


def check_between_epochs(members, pieces) -> None:
    """Refuse a technique declared ``compiled = "epochs"`` whose piece acts inside a step: the
    kernel would skip that hook. ``pieces`` are ``stack_pieces``'s, one per technique by name."""
    kinds = sorted({type(t) for m in members for t in m.techniques}, key=lambda k: k.name)
    for kind, piece in zip(kinds, pieces):
        hooks = [hook for hook in STEP_HOOKS if piece.implements(hook)]
        if kind.compiled == "epochs" and hooks:
            raise ValueError(f"technique {kind.name!r}: declares compiled = 'epochs' (it acts between epochs), but its piece implements {', '.join(hooks)}; declare 'steps' and compile(), or no compiled form")


def _sets(t: torch.Tensor, K: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_sets, N, C)`` float32 and each member's set: one shared set, or one per member."""
    a = t.detach().cpu().numpy().astype(np.float32, copy=False)
    if a.ndim == 2:
        return np.ascontiguousarray(a[None]), np.zeros(K, np.int64)
    return np.ascontiguousarray(a), np.arange(K, dtype=np.int64)


def _loss_code(name: str, clip: bool) -> int:
    if name == "binary_crossentropy":
        return kernel.LOSS_BCE_CLIP if clip else kernel.LOSS_BCE_LOGITS
    if name == "categorical_crossentropy":
        return kernel.LOSS_CCE_CLIP if clip else kernel.LOSS_CCE_LOGITS
    return kernel.LOSS_MSE if name == "mse" else kernel.LOSS_MAE
