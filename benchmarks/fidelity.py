"""How far the compiled engine's training runs are from the eager engine's (Keras's arithmetic)
and from Keras itself, over a whole notebook-length run.

Workload: the L1 notebook's, as ``benchmarks/engine.py`` trains it: make_moons(100, noise=0.25,
random_state=2), 2-128-128-1, Adam 0.01, batch 32, the last 20 % validating, ``l1(0.001)`` on the
hidden kernels, 2,000 epochs (the notebook's), seeds 0..S-1. With ``--keras N``, the first N
seeds also train in Keras 3 (torch backend) from the same initial weights, seeing reglab's row
order (one ``fit`` per epoch, ``shuffle=False``).

Printed per seed: the final ``val_loss`` and ``val_accuracy`` on each engine, and the largest
relative difference of ``val_loss`` over the epochs. Across seeds: the mean final ``val_loss`` per
engine, its seed-to-seed spread, and the paired difference compiled - eager with its 95 % CI:
the numbers a comparison across seeds reads.

    python benchmarks/fidelity.py                 # 10 seeds, no Keras: about a minute
    python benchmarks/fidelity.py --keras 3       # and Keras on 3 of them: about 3 minutes more
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import torch
from scipy import stats
from sklearn.datasets import make_moons

from reglab.engine import L1, Architecture, Member, init_params, rng, train

X, Y = make_moons(100, noise=0.25, random_state=2)
X, Y = X.astype(np.float32), Y.astype(np.float32)
SPLIT = 80
ARCH = Architecture(n_inputs=2, hidden=(128, 128), task="binary")


def reglab_runs(seeds: list[int], epochs: int, engine: str):
    members = [Member(seed=s, learning_rate=0.01, techniques=(L1(0.001),)) for s in seeds]
    return train(ARCH, members, X, Y, validation_split=0.2, epochs=epochs, engine=engine).history


def keras_run(seed: int, epochs: int) -> dict[str, np.ndarray]:
    import keras

    reg = keras.regularizers.L1(0.001)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(128, "relu", kernel_regularizer=reg), keras.layers.Dense(128, "relu", kernel_regularizer=reg), keras.layers.Dense(1, "sigmoid")]
    )
    model.set_weights([p[0].numpy() for p in init_params(ARCH, torch.tensor([seed]))])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    history: dict[str, list] = {}
    for epoch in range(epochs):
        order = rng.permutations(torch.tensor([seed]), epoch, SPLIT)[0].numpy()
        h = model.fit(X[:SPLIT][order], Y[:SPLIT][order], batch_size=32, epochs=1, shuffle=False, validation_data=(X[SPLIT:], Y[SPLIT:]), verbose=0)
        for name, values in h.history.items():
            history.setdefault(name, []).extend(values)
    return {name: np.array(v) for name, v in history.items()}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--keras", type=int, default=0, metavar="N", help="also train the first N seeds in Keras")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; {args.epochs} epochs, seeds 0..{args.seeds - 1}")
    compiled, eager = reglab_runs(seeds, args.epochs, "compiled"), reglab_runs(seeds, args.epochs, "eager")
    keras_histories = {s: keras_run(s, args.epochs) for s in seeds[: args.keras]}

    print()
    print(f"{'seed':>4} {'val_loss compiled':>18} {'eager':>9} {'Keras':>9} {'val_acc compiled':>17} {'eager':>6} {'Keras':>6}"
          f" {'max rel. diff compiled/eager':>29} {'eager/Keras':>12} {'compiled/Keras':>15}")
    for k, s in enumerate(seeds):
        c, e = compiled["val_loss"][k], eager["val_loss"][k]
        kh = keras_histories.get(s)
        keras_cols = (f"{kh['val_loss'][-1]:>9.4f}", f"{kh['val_accuracy'][-1]:>6.3f}", f"{relative(e, kh['val_loss']):>12.2g}", f"{relative(c, kh['val_loss']):>15.2g}") if kh else (f"{'-':>9}", f"{'-':>6}", f"{'-':>12}", f"{'-':>15}")
        print(f"{s:>4} {c[-1]:>18.4f} {e[-1]:>9.4f} {keras_cols[0]} {compiled['val_accuracy'][k, -1]:>17.3f} {eager['val_accuracy'][k, -1]:>6.3f} {keras_cols[1]}"
              f" {relative(c, e):>29.2g} {keras_cols[2]} {keras_cols[3]}")
    c, e = compiled["val_loss"][:, -1], eager["val_loss"][:, -1]
    diff = c - e
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    print()
    print(f"final val_loss over {len(seeds)} seeds: compiled {c.mean():.4f} (sd {c.std(ddof=1):.4f}), eager {e.mean():.4f} (sd {e.std(ddof=1):.4f})")
    print(f"paired difference compiled - eager: {diff.mean():+.4f}, 95 % CI [{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}]")
    print(f"first 100 epochs: largest relative difference of val_loss, compiled/eager: {max(relative(compiled['val_loss'][k, :100], eager['val_loss'][k, :100]) for k in range(len(seeds))):.2g}")


if __name__ == "__main__":
    main()
