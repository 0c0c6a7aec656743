"""The user's own data: a CSV or Parquet file with a target column.

pandas is imported by the functions that read a file, not with the module: built-in datasets
(``reglab validate`` on the shipped examples) never need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError
from .builtin import FLOAT32_MAX, Dataset, classification, regression

if TYPE_CHECKING:
    import pandas as pd

MAX_CLASSES_INFERRED = 20
# Cells that mean "no value" in a column of numbers: an error, never a class of their own. In a
# column of text labels they are labels like any other ("none" may be a severity).
MISSING = {"na", "n/a", "nan", "none", "null", "<na>"}


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.exists():
        raise UserError(f"file not found: {path}", field="data.path")
    if path.suffix.lower() == ".csv":
        _check_header(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # the file itself is broken: say so in one line
        raise UserError(f"cannot be read as {path.suffix[1:]}: {str(err).splitlines()[0]}", file=str(path)) from None
    raise UserError(f"must be a .csv or .parquet file, got {path.name}", field="data.path")


def _check_header(path: Path) -> None:
    """pandas renames a repeated column ("y", "y.1"), which would turn a copy of the target into a
    feature: a repeated name is an error instead."""
    import csv

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    _check_unique(path, header)


def _check_unique(path: Path, columns: list[str]) -> None:
    seen = set()
    for c in columns:
        if c in seen:
            raise UserError(f"column {c!r} appears twice in the header; give every column its own name", file=str(path))
        seen.add(c)


def _where(path: Path, i: int) -> str:
    # CSV: the header is line 1, so data row i (0-based) is on line i + 2. Parquet: row i + 1.
    return f"line {i + 2}" if path.suffix.lower() == ".csv" else f"row {i + 1}"


def _numeric(path: Path, df: pd.DataFrame, column: str) -> np.ndarray:
    import pandas as pd

    raw = df[column]
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_timedelta64_dtype(raw) or isinstance(raw.dtype, pd.PeriodDtype):
        raise UserError(f"column {column!r} holds dates or times; features must be numbers (convert it, or leave it out of data.features)", file=str(path))
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~(np.abs(values) <= FLOAT32_MAX)  # NaN compares False; the engine computes in float32
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        text = str(raw.iloc[i]).strip()
        if np.isfinite(values[i]):  # finite in float64, infinite in float32
            raise UserError(
                f"{_where(path, i)}, column {column!r}: too large: {text!r}; features must fit float32 (|x| <= {FLOAT32_MAX:.4g})", file=str(path)
            )
        try:
            float(text)
            is_number = True
        except ValueError:
            is_number = False
        what = "missing" if text == "" else ("not finite" if is_number else "not a number")
        raise UserError(f"{_where(path, i)}, column {column!r}: {what}: {text!r}; features must be finite numbers", file=str(path))
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
    import pandas as pd

    path = Path(path)
    df = _read(path)
    columns = [str(c) for c in df.columns]
    _check_unique(path, columns)
    df.columns = columns
    if target not in columns:
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in ";\t|"):
            sep = next(sep for sep in ";\t|" if sep in columns[0])
            hint = f" (the header looks separated by {sep!r}; reglab reads comma-separated CSV: save the file with commas)"
        raise UserError(f"no target column {target!r}; columns are " + ", ".join(columns) + hint, file=str(path))
    if len(df) == 0:
        raise UserError("has a header but no rows", file=str(path))
    if features:
        for i, c in enumerate(features):
            if c == target:
                raise UserError(f"is the target column {target!r}; a target among the features leaks the answer", field=f"data.features[{i}]")
            if c in exclude:
                raise UserError(f"is the split column {c!r}; it says where a row goes, it is not a feature", field=f"data.features[{i}]")
            if features.count(c) > 1:
                raise UserError(f"lists {c!r} {features.count(c)} times; give each feature once", field="data.features")
    features = features or [c for c in columns if c != target and c not in exclude]
    for c in features:
        if c not in columns:
            raise UserError(f"no feature column {c!r}; columns are " + ", ".join(columns), file=str(path))
    if not features:
        raise UserError(f"no feature columns besides the target {target!r}", file=str(path))
    X = np.column_stack([_numeric(path, df, c) for c in features])

    labels = df[target]
    text = labels.astype(str).str.strip()
    marker = text.str.lower().isin(MISSING).to_numpy()
    numbers = pd.to_numeric(text[~marker], errors="coerce").notna().all()
    missing = (text == "").to_numpy() | labels.isna().to_numpy() | (marker & numbers)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise UserError(f"{_where(path, i)}, column {target!r}: missing target value {text.iloc[i]!r}; every row needs a target", file=str(path))
    numeric = pd.to_numeric(text, errors="coerce")
    task, reason = infer_task(task, numeric, target)
    if task == "regression":
        y = _numeric(path, df.assign(**{target: text}), target)
        return regression(path.stem, X, y, features, description=f"{path.name}, target {target!r}", task_reason=reason)
    values = numeric.to_numpy() if numeric.notna().all() else text.to_numpy()
    if len(np.unique(values)) < 2 and not single_class_ok:
        only = values[0].item() if hasattr(values[0], "item") else values[0]
        raise UserError(f"column {target!r} has a single class ({only!r}); classification needs at least two", file=str(path))
    return classification(path.stem, X, values, features, description=f"{path.name}, target {target!r}", task_reason=reason)


def infer_task(task: str, numeric: pd.Series, target: str) -> tuple[str, str]:
    """``data.task`` as given, or with ``auto`` the rule: classification when the target holds
    text, or integers with at most MAX_CLASSES_INFERRED distinct values; regression otherwise.
    Returns the task and why."""
    if task != "auto":
        return task, f"data.task = {task!r}"
    if numeric.isna().any():
        return "classification", f"inferred: target {target!r} holds text"
    distinct = numeric.nunique()
    if np.all(np.mod(numeric.to_numpy(dtype=float), 1) == 0):
        if distinct <= MAX_CLASSES_INFERRED:
            return "classification", (
                f"inferred: target {target!r} holds integers with {distinct} distinct values (at most {MAX_CLASSES_INFERRED}: classes); "
                'set data.task = "regression" to predict them as numbers'
            )
        return "regression", f"inferred: target {target!r} holds integers with {distinct} distinct values (more than {MAX_CLASSES_INFERRED})"
    return "regression", f"inferred: target {target!r} holds non-integer numbers"
