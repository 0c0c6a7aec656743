"""PopulationSearchCV against scikit-learn's GridSearchCV over the same estimator.

A 24-candidate grid (dropout x L2 x learning rate), 5-fold cross-validation, on the seed's moons
(make_moons(100, noise=0.25, random_state=2), the L1/L2 notebook's data), a 2-128-128-1 network
as in the notebook, Adam, batch 32. GridSearchCV fits the 120 (candidate, fold) models one after
the other; PopulationSearchCV trains them as one population. Both refit the best candidate on all
the data. The scores are the same (a test checks them to the bit); the script checks it too.

    python benchmarks/search.py            # 200 epochs per model
    python benchmarks/search.py --quick    # 20 epochs
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import GridSearchCV, KFold

from reglab.sklearn import MLPClassifier, PopulationSearchCV

GRID = {"dropout": [0.0, 0.2, 0.5], "l2": [0.0, 1e-4, 1e-3, 1e-2], "learning_rate": [0.01, 0.001]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 epochs instead of 200")
    args = parser.parse_args(argv)
    epochs = 20 if args.quick else 200
    X, y = make_moons(100, noise=0.25, random_state=2)
    estimator = MLPClassifier(hidden=(128, 128), epochs=epochs, batch_size=32, random_state=0)
    cv = KFold(5, shuffle=True, random_state=0)
    n = int(np.prod([len(v) for v in GRID.values()]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"grid: {n} candidates x 5 folds = {5 * n} models of 2-128-128-1, {epochs} epochs each")

    times = {}
    start = time.perf_counter()
    ours = PopulationSearchCV(estimator, GRID, cv=cv).fit(X, y)
    times["PopulationSearchCV"] = time.perf_counter() - start
    start = time.perf_counter()
    theirs = GridSearchCV(estimator, GRID, cv=cv).fit(X, y)
    times["GridSearchCV"] = time.perf_counter() - start

    same = np.array_equal(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"])
    print(f"\n{'search':<20} {'seconds':>8} {'models/s':>9}")
    for name, seconds in times.items():
        print(f"{name:<20} {seconds:8.1f} {5 * n / seconds:9.1f}")
    print(f"\nsame scores: {same}; best: {ours.best_params_} ({ours.best_score_:.3f})")
    print(f"PopulationSearchCV: {times['GridSearchCV'] / times['PopulationSearchCV']:.1f}x faster than GridSearchCV")
    if not same:
        raise SystemExit("the two searches disagree")


if __name__ == "__main__":
    main()
