"""reglab tune against scikit-learn, on held-out rows the search never saw.

For each table (scikit-learn's breast cancer, wine and diabetes), the rows are split 75/25 once
(stratified for classes, ``random_state=0``). On the 75 %:

- **sklearn default**: ``MLPClassifier()`` / ``MLPRegressor()`` with default settings, five
  ``random_state``s, each refit on all of the 75 % and scored on the 25 %; the mean;
- **sklearn grid**: ``GridSearchCV`` over ``alpha`` in ``logspace(-5, 1, 7)`` x
  ``hidden_layer_sizes`` in ``(32,), (64, 64), (128, 128)`` of ``StandardScaler`` + the MLP, ``cv=5``,
  refit, scored on the 25 %;
- **reglab tune** with ``--budget-minutes`` (default 4) on this machine; then ``best.toml`` with
  the 25 % as its ``test_path``, run by ``reglab run``: the winner's and its baseline's test
  scores, each the mean over its seeds x folds (each member trained on two folds of the 75 %).

Scores: accuracy for classes (higher is better), mean squared error for diabetes (lower is
better). Each search's member-epochs (every member of every run it made, the final comparison's
included) show how much training the budget bought. The table ends with how many of the answers
were "no gain over the baseline".

    python benchmarks/tune.py                        # 4-minute budgets: about 16 minutes
    python benchmarks/tune.py --budget-minutes 1 --datasets wine
    python benchmarks/tune.py --datasets breast-cancer --engines eager auto   # member-epochs, eager vs compiled
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DATASETS = {"breast-cancer": load_breast_cancer, "wine": load_wine, "diabetes": load_diabetes}


def sklearn_scores(X_train, y_train, X_test, y_test, classes: bool) -> tuple[float, float]:
    model = MLPClassifier if classes else MLPRegressor
    score = accuracy_score if classes else mean_squared_error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # default max_iter=200 rarely converges: as users meet it
        default = np.mean([score(y_test, model(random_state=s).fit(X_train, y_train).predict(X_test)) for s in range(5)])
        grid = GridSearchCV(
            make_pipeline(StandardScaler(), model(random_state=0)),
            {"mlpclassifier__alpha" if classes else "mlpregressor__alpha": np.logspace(-5, 1, 7),
             "mlpclassifier__hidden_layer_sizes" if classes else "mlpregressor__hidden_layer_sizes": [(32,), (64, 64), (128, 128)]},
            cv=5,
        ).fit(X_train, y_train)
    return float(default), float(score(y_test, grid.predict(X_test)))


def member_epochs(folder: Path) -> int:
    """Epochs trained by every member of every run the search made (its rungs and its final comparison)."""
    return int(sum(pd.read_csv(summary)["epochs_run"].sum() for summary in folder.rglob("summary.csv")))


def reglab_scores(frame_train, frame_test, budget: float, folder: Path, classes: bool, engine: str) -> tuple[float, float, str, float, int]:
    frame_train.to_csv(folder / "train.csv", index=False)
    frame_test.to_csv(folder / "test.csv", index=False)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reglab", "tune", str(folder / "train.csv"), "--target", "y", "--out", str(folder / "tuned"),
         "--budget-minutes", str(budget), "--quiet", "--task", "classification" if classes else "regression", "--engine", engine],
        capture_output=True, text=True, check=True,
    )
    seconds = time.perf_counter() - start
    trained = member_epochs(folder / "tuned")
    answer = done.stdout.strip().splitlines()[-1]
    best = (folder / "tuned" / "best.toml").read_text().replace("[data]\n", '[data]\ntest_path = "../test.csv"\n', 1)
    (folder / "tuned" / "best.toml").write_text(best)
    subprocess.run([sys.executable, "-m", "reglab", "run", str(folder / "tuned" / "best.toml"), "--out", str(folder / "run"), "--quiet"], check=True)
    summary = pd.read_csv(folder / "run" / "summary.csv")
    column = "test_accuracy" if classes else "test_mse"
    means = summary.groupby("variant", sort=False)[column].mean()
    return float(means.iloc[1]), float(means.iloc[0]), answer, seconds, trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=4.0)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--engines", nargs="+", default=["auto"], choices=["auto", "compiled", "eager"], help="tune's --engine; several: one search each, side by side")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; budget {args.budget_minutes:g} min")
    rows, no_gain = [], 0
    for name in args.datasets:
        data = DATASETS[name]()
        classes = name != "diabetes"
        X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=0, stratify=data.target if classes else None)
        default, grid = sklearn_scores(X_train, y_train, X_test, y_test, classes)
        columns = [f"x{i}" for i in range(X_train.shape[1])]
        with tempfile.TemporaryDirectory() as tmp:
            train = pd.DataFrame(X_train, columns=columns).assign(y=y_train)
            test = pd.DataFrame(X_test, columns=columns).assign(y=y_test)
            for engine in args.engines:
                folder = Path(tmp) / engine
                folder.mkdir()
                tuned, baseline, answer, seconds, trained = reglab_scores(train, test, args.budget_minutes, folder, classes, engine)
                no_gain += answer.startswith("no technique")
                metric = "accuracy" if classes else "MSE"
                rows.append((name, engine, metric, default, grid, tuned, baseline, seconds, trained, answer))
    print()
    print("| data | engine | held-out | sklearn default | sklearn grid (cv=5) | reglab tune: winner | its baseline | tune's wall time | member-epochs trained |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, engine, metric, default, grid, tuned, baseline, seconds, trained, _ in rows:
        print(f"| {name} | {engine} | {metric} | {default:.4g} | {grid:.4g} | {tuned:.4g} | {baseline:.4g} | {seconds:.0f} s | {trained:,} |")
    print()
    for name, engine, *_, answer in rows:
        print(f"{name} ({engine}): {answer}")
    print(f"answers 'no gain over the baseline': {no_gain} of {len(rows)}")


if __name__ == "__main__":
    main()
