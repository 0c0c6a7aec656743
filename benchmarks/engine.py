"""How fast is the population engine? Model-epochs per second on the seed's L1 workload.

Workload: make_moons(100, noise=0.25, random_state=2); Dense(128, relu) -> Dense(128, relu) ->
Dense(1, sigmoid); Adam(0.01); batch 32; validation_split=0.2 (the last 20 rows validate); with
``kernel_regularizer=l1(0.001)`` on both hidden layers as in the notebook. One model-epoch is one
network trained for one epoch (3 steps of 32/32/16 rows, then a validation pass on 20 rows).

Compared, in the same run:
- reglab at K = 1, 10, 100, 400 networks per population;
- a plain one-model-at-a-time PyTorch loop (nn.Sequential, torch.optim.Adam, the same batching);
- Keras 3 on the torch backend (fewer epochs than the others, scaled; it says so);
- the machine's batched-matmul FLOP/s for the same shapes, measured here, and the share of it
  reglab reaches (one model-epoch is about 8.7 MFLOP with validation).

    python benchmarks/engine.py            # the full table
    python benchmarks/engine.py --quick    # under a minute; last line is the summary
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch
from sklearn.datasets import make_moons

from reglab.engine import L1, Architecture, Member, train

X, Y = make_moons(100, noise=0.25, random_state=2)
X = X.astype(np.float32)
Y = Y.astype(np.float32)
SPLIT = 80
HIDDEN = 128


def model_epoch_flops() -> float:
    """Multiply-adds x 2 of one model-epoch: forward+backward on 80 rows, forward on 20."""
    per_row = 2 * (2 * HIDDEN + HIDDEN * HIDDEN + HIDDEN)
    return 3 * per_row * SPLIT + per_row * (len(X) - SPLIT)


def reglab_rate(K: int, epochs: int) -> float:
    arch = Architecture(n_inputs=2, hidden=(HIDDEN, HIDDEN), task="binary")
    members = [Member(seed=s, learning_rate=0.01, techniques=(L1(0.001),)) for s in range(K)]
    train(arch, members, X, Y, validation_split=0.2, epochs=2)  # warm-up
    start = time.perf_counter()
    train(arch, members, X, Y, validation_split=0.2, epochs=epochs)
    return K * epochs / (time.perf_counter() - start)


def plain_torch_rate(epochs: int) -> float:
    """One model at a time, the way a tutorial writes it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01, eps=1e-7)
    x, y = torch.from_numpy(X[:SPLIT]), torch.from_numpy(Y[:SPLIT, None])
    xv, yv = torch.from_numpy(X[SPLIT:]), torch.from_numpy(Y[SPLIT:, None])
    hidden = [model[0].weight, model[2].weight]
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def run(n):
        for _ in range(n):
            perm = torch.randperm(SPLIT)
            for start in range(0, SPLIT, 32):
                idx = perm[start : start + 32]
                loss = loss_fn(model(x[idx]), y[idx]) + 0.001 * sum(w.abs().sum() for w in hidden)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                loss_fn(model(xv), yv)

    run(2)
    start = time.perf_counter()
    run(epochs)
    return epochs / (time.perf_counter() - start)


def keras_rate(epochs: int) -> float:
    import keras

    keras.utils.set_random_seed(0)
    reg = keras.regularizers.l1(0.001)
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(HIDDEN, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(HIDDEN, activation="relu", kernel_regularizer=reg),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=2, validation_split=0.2, verbose=0)
    start = time.perf_counter()
    model.fit(X, Y, epochs=epochs, validation_split=0.2, verbose=0)
    return epochs / (time.perf_counter() - start)


def matmul_peak(K: int = 100, repeats: int = 30) -> float:
    """FLOP/s of the batched matmuls one training step does, at the population size K."""
    h = torch.randn(K, 32, HIDDEN)
    W = torch.randn(K, HIDDEN, HIDDEN)
    g = torch.randn(K, 32, HIDDEN)
    ops = [lambda: torch.bmm(h, W), lambda: torch.bmm(h.transpose(1, 2), g), lambda: torch.bmm(g, W.transpose(1, 2))]
    for op in ops:
        op()
    start = time.perf_counter()
    for _ in range(repeats):
        for op in ops:
            op()
    elapsed = time.perf_counter() - start
    return repeats * len(ops) * 2 * K * 32 * HIDDEN * HIDDEN / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description="reglab engine benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer epochs; finishes in under a minute")
    args = parser.parse_args()
    quick = args.quick
    torch.manual_seed(0)

    sizes = {1: 60, 10: 60, 100: 30, 400: 10} if quick else {1: 300, 10: 300, 100: 200, 400: 60}
    plain_epochs = 60 if quick else 300
    keras_epochs = 5 if quick else 30

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_peak()
    ceiling = peak / model_epoch_flops()
    print(f"batched matmul, these shapes: {peak / 1e9:.0f} GFLOP/s -> ceiling {ceiling:,.0f} model-epochs/s")
    plain = plain_torch_rate(plain_epochs)
    print(f"plain PyTorch loop, one model at a time ({plain_epochs} epochs): {plain:,.0f} model-epochs/s")
    ker = keras_rate(keras_epochs)
    print(f"Keras 3, torch backend ({keras_epochs} epochs only, scaled): {ker:,.0f} model-epochs/s")
    print()
    print(f"{'K':>5} {'epochs':>7} {'model-epochs/s':>15} {'vs plain':>9} {'vs Keras':>9} {'% of matmul peak':>17}")
    rates = {}
    for K, epochs in sizes.items():
        rate = reglab_rate(K, epochs)
        rates[K] = rate
        print(f"{K:>5} {epochs:>7} {rate:>15,.0f} {rate / plain:>8.1f}x {rate / ker:>8.0f}x {100 * rate / ceiling:>16.0f}%")
    r = rates[100]
    print(f"K=100: {r / plain:.1f}x plain PyTorch, {r / ker:.0f}x Keras, {100 * r / ceiling:.0f}% of matmul peak")


if __name__ == "__main__":
    main()
