"""One network, as a scikit-learn user meets it: reglab's MLPClassifier against scikit-learn's.

Workload: scikit-learn's breast-cancer data (569 rows, 30 features), standardized; two hidden
layers of 64 ReLU units, 200 epochs of mini-batches of 32, Adam at 0.001, an L2 penalty of 1e-4:

- reglab: ``reglab.sklearn.MLPClassifier(hidden=(64, 64), epochs=200, batch_size=32,
  learning_rate=0.001, l2=1e-4)``;
- scikit-learn: ``MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=200, batch_size=32,
  learning_rate_init=0.001, alpha=1e-4, n_iter_no_change=10**6, tol=0)`` (no early stop, so both
  train all 200 epochs; its ``alpha`` is scaled by the batch, ours is Keras's: the same cost
  either way).

Each fit is timed in CPU seconds of this process (all its threads: what the machine spends), the
two in turns, ``--rounds`` times, so that drift hits both; the medians are printed and their
ratio is the last line, ``reglab/sklearn = <r>`` (below 1: reglab is faster).

    python benchmarks/sklearn_k1.py             # 5 rounds
    python benchmarks/sklearn_k1.py --rounds 9
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.preprocessing import StandardScaler

from reglab.sklearn import MLPClassifier

X, Y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)


def reglab_fit(seed: int):
    return MLPClassifier(hidden=(64, 64), epochs=200, batch_size=32, learning_rate=0.001, l2=1e-4, random_state=seed).fit(X, Y)


def sklearn_fit(seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SkMLP(
            hidden_layer_sizes=(64, 64),
            max_iter=200,
            batch_size=32,
            learning_rate_init=0.001,
            alpha=1e-4,
            n_iter_no_change=10**6,
            tol=0,
            random_state=seed,
        ).fit(X, Y)


def cpu_seconds(fit, seed: int) -> tuple[float, float]:
    """CPU and wall seconds of one fit, and a check that it learned (training accuracy)."""
    cpu, wall = time.process_time(), time.perf_counter()
    model = fit(seed)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    accuracy = float((model.predict(X) == Y).mean())
    if accuracy < 0.95:
        raise SystemExit(f"{fit.__name__}: training accuracy {accuracy:.3f}; the fit did not learn")
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    reglab_fit(0), sklearn_fit(0)  # warm-up: imports, first allocations
    times: dict[str, list[tuple[float, float]]] = {"reglab": [], "sklearn": []}
    for r in range(args.rounds):
        for name, fit in (("reglab", reglab_fit), ("sklearn", sklearn_fit)) if r % 2 == 0 else (("sklearn", sklearn_fit), ("reglab", reglab_fit)):
            times[name].append(cpu_seconds(fit, r))
    print(f"{'':10}{'CPU s (median)':>16}{'wall s (median)':>17}   CPU s each round")
    medians = {}
    for name, runs in times.items():
        medians[name] = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"{name:10}{medians[name]:16.2f}{wall:17.2f}   {' '.join(f'{c:.2f}' for c, _ in runs)}")
    print(f"reglab/sklearn = {medians['reglab'] / medians['sklearn']:.2f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
