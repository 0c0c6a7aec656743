"""Train / validation / test splits, one per seed (and fold), never shared state between seeds.

- ``fixed``: the dataset's own split (the seed-* datasets reproduce their notebooks').
- ``tail``: Keras's ``validation_split``: the last fraction of the rows as given (test, if asked
  for, is carved off the end first). The same for every seed.
- ``random`` / ``stratified``: a fresh split per seed (``random_state=seed``), so the spread across
  seeds includes the split's variance; ``stratified`` keeps class proportions.
- ``kfold``: per seed, shuffled (stratified for classification) k folds; member (seed, fold)
  validates on fold ``fold``.

An explicit test set (rows listed in ``test_rows``: from a test file or a split column) is taken
out before any of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .builtin import Dataset

METHODS = ("fixed", "tail", "random", "stratified", "kfold")


@dataclass(frozen=True)
class SplitSpec:
    method: str = "tail"
    validation: float = 0.2
    test: float = 0.0
    folds: int = 5


def _tail(rows: np.ndarray, fraction: float, what: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    split_at = int(math.floor(n * (1.0 - fraction)))
    if split_at == 0 or split_at == n:
        side = "no training" if split_at == 0 else f"no {what}"
        raise UserError(f"{field}: {fraction:g} of {n} rows leaves {side} rows; use a fraction that keeps both")
    return rows[:split_at], rows[split_at:]


def _random(rows, fraction, seed, stratify, what, field):
    n = len(rows)
    n_out = math.ceil(n * fraction)
    if n_out == 0 or n_out >= n:
        side = f"no {what}" if n_out == 0 else "no training"
        raise UserError(f"{field}: {fraction:g} of {n} rows leaves {side} rows; use a fraction that keeps both")
    from sklearn.model_selection import train_test_split  # here, not at the top: fixed and tail splits need no scikit-learn

    try:
        keep, out = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as err:
        raise UserError(f"{field}: a stratified split of {n} rows is impossible: {err}") from None
    return np.sort(keep), np.sort(out)


def split_indices(data: Dataset, spec: SplitSpec, seed: int, fold: int | None = None, test_rows=None) -> dict[str, np.ndarray]:
    """Index arrays ``train``, ``val`` and (when there is one) ``test`` for one member."""
    if spec.method == "fixed":
        if data.fixed is None:
            raise UserError(
                f"data.split: 'fixed' needs a dataset with its own split (the seed-* datasets), "
                f"{data.name!r} has none; use tail, random, stratified or kfold"
            )
        return dict(data.fixed)
    n = len(data.X)
    rows = np.arange(n)
    out: dict[str, np.ndarray] = {}
    if test_rows is not None:
        test_rows = np.asarray(test_rows)
        out["test"] = test_rows
        rows = np.setdiff1d(rows, test_rows)
    classes = data.y if data.task != "regression" else None
    stratified = spec.method in ("stratified", "kfold") and classes is not None
    if spec.test > 0:
        if spec.method == "tail":
            rows, out["test"] = _tail(rows, spec.test, "test", "data.test")
        else:
            rows, out["test"] = _random(rows, spec.test, seed, classes[rows] if stratified else None, "test", "data.test")
    if spec.method == "kfold":
        if len(rows) < spec.folds:
            raise UserError(f"{spec.folds} folds need at least {spec.folds} rows, got {len(rows)}", field="data.folds")
        from sklearn.model_selection import KFold, StratifiedKFold

        splitter = (StratifiedKFold if stratified else KFold)(n_splits=spec.folds, shuffle=True, random_state=seed)
        try:
            folds = list(splitter.split(rows, classes[rows] if stratified else None))
        except ValueError as err:
            raise UserError(f"{spec.folds} stratified folds are impossible here: {err}", field="data.folds") from None
        train, val = folds[fold or 0]
        out["train"], out["val"] = rows[train], rows[val]
    elif spec.method == "tail":
        out["train"], out["val"] = _tail(rows, spec.validation, "validation", "data.validation")
    else:
        stratify = classes[rows] if spec.method == "stratified" else None
        out["train"], out["val"] = _random(rows, spec.validation, seed, stratify, "validation", "data.validation")
    if data.task != "regression" and len(np.unique(data.y[out["train"]])) < 2:
        raise UserError(f"seed {seed}'s training rows hold a single class; classification needs at least two", field="data.split")
    return out


def standardizer(X: np.ndarray, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` fitted on a member's own training rows; ``(X - mean) / scale`` applies it.
    A constant column keeps scale 1."""
    train = X[train_rows]
    std = train.std(0)
    return train.mean(0), np.where(std > 0, std, 1.0)
