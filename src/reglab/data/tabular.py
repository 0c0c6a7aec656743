"""The user's own data: a CSV or Parquet file with a target column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from .builtin import Dataset, classification, regression

MAX_CLASSES_INFERRED = 20


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise UserError(f"data.path: file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # the file itself is broken: say so in one line
        raise UserError(f"{path}: cannot be read as {path.suffix[1:]}: {str(err).splitlines()[0]}") from None
    raise UserError(f"data.path: must be a .csv or .parquet file, got {path.name}")


def _where(path: Path, i: int) -> str:
    # CSV: the header is line 1, so data row i (0-based) is on line i + 2. Parquet: row i + 1.
    return f"line {i + 2}" if path.suffix.lower() == ".csv" else f"row {i + 1}"


def _numeric(path: Path, df: pd.DataFrame, column: str) -> np.ndarray:
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        text = str(raw.iloc[i]).strip()
        try:
            float(text)
            is_number = True
        except ValueError:
            is_number = False
        what = "missing" if text == "" else ("not finite" if is_number else "not a number")
        raise UserError(f"{path}: {_where(path, i)}, column {column!r}: {what}: {text!r}; features must be finite numbers")
    return values


def load_table(
    path: str | Path,
    target: str,
    features: list[str] | None = None,
    task: str = "auto",
    exclude: tuple[str, ...] = (),
    single_class_ok: bool = False,
) -> Dataset:
    """Load ``path``; ``task`` is ``auto``, ``classification`` or ``regression``. Without a list
    of ``features``, every column but the target and ``exclude`` is one. A training table needs
    two classes; a test table (``single_class_ok``) may hold one."""
    path = Path(path)
    df = _read(path)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if target not in columns:
        raise UserError(f"{path}: no target column {target!r}; columns are " + ", ".join(columns))
    features = features or [c for c in columns if c != target and c not in exclude]
    for c in features:
        if c not in columns:
            raise UserError(f"{path}: no feature column {c!r}; columns are " + ", ".join(columns))
    if not features:
        raise UserError(f"{path}: no feature columns besides the target {target!r}")
    X = np.column_stack([_numeric(path, df, c) for c in features])

    labels = df[target]
    text = labels.astype(str).str.strip()
    missing = (text == "") | labels.isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise UserError(f"{path}: {_where(path, i)}, column {target!r}: missing target value")
    numeric = pd.to_numeric(text, errors="coerce")
    if task == "auto":
        is_int = numeric.notna().all() and np.all(np.mod(numeric.to_numpy(dtype=float), 1) == 0)
        if numeric.isna().any() or (is_int and numeric.nunique() <= MAX_CLASSES_INFERRED):
            task = "classification"
        else:
            task = "regression"
    if task == "regression":
        y = _numeric(path, df.assign(**{target: text}), target)
        return regression(path.stem, X, y, features, description=f"{path.name}, target {target!r}")
    values = numeric.to_numpy() if numeric.notna().all() else text.to_numpy()
    if len(np.unique(values)) < 2 and not single_class_ok:
        only = values[0].item() if hasattr(values[0], "item") else values[0]
        raise UserError(f"{path}: column {target!r} has a single class ({only!r}); classification needs at least two")
    return classification(path.stem, X, values, features, description=f"{path.name}, target {target!r}")
