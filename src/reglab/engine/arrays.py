"""Turning user arrays into the tensors the engine trains on, with one-line errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import torch

from .model import Architecture


def _array(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be numeric, got values of type {np.asarray(value).dtype}") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{name}: must be finite, got {arr[tuple(where)]} at index {tuple(int(i) for i in where)}")
    return arr


def features(name: str, x, arch: Architecture, n_members: int) -> torch.Tensor:
    """``(N, n_inputs)`` shared by all members, or ``(K, N, n_inputs)`` one set per member."""
    arr = _array(name, x)
    if arr.ndim == 1 and arch.n_inputs == 1:
        arr = arr[:, None]
    ok_shared = arr.ndim == 2 and arr.shape[1] == arch.n_inputs
    ok_member = arr.ndim == 3 and arr.shape[0] == n_members and arr.shape[2] == arch.n_inputs
    if not (ok_shared or ok_member):
        raise ValueError(
            f"{name}: must have shape (rows, {arch.n_inputs}) or ({n_members}, rows, {arch.n_inputs}), "
            f"got {arr.shape}"
        )
    if arr.shape[-2] == 0:
        raise ValueError(f"{name}: must have at least one row, got 0")
    return torch.as_tensor(arr, dtype=torch.float32)


def targets(name: str, y, arch: Architecture, n_members: int, x: torch.Tensor | None = None) -> torch.Tensor:
    """Targets as float32 ``(..., N, C)``: a 0/1 column, one-hot classes, or regression values.

    Whether ``y`` is shared or per member is decided first, from the features ``x`` (``(N, d)`` or
    ``(K, N, d)``): it is per member when it starts with ``(K, N)`` and ``x`` is per member, or
    when it cannot be a shared table of ``N`` rows. Only that tells integer labels ``(K, N)`` from
    one-hot rows ``(N, C)``, or one value per row from a row of values (the shape alone cannot).
    """
    arr = _array(name, y)
    per_member = False
    if x is not None and arr.ndim >= 2 and arr.shape[:2] == (n_members, x.shape[-2]):
        columns = 1 if arch.task == "binary" else arch.n_outputs
        per_member = x.dim() == 3 or arr.ndim == 3 or arr.shape[1] != columns
    labels_ndim = 2 if per_member else 1  # the dimensions of one value per row
    if arch.task == "binary":
        if arr.ndim == labels_ndim + 1 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim == labels_ndim + 1:
            raise ValueError(f"{name}: must be 0/1 labels in one column (the model's one sigmoid unit), got {arr.shape[-1]} columns (shape {arr.shape})")
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            raise ValueError(f"{name}: must hold binary labels 0 or 1, got {arr[bad].flat[0]:g}")
        out = arr[..., None]
    elif arch.task == "multiclass":
        C = arch.n_outputs
        if arr.ndim == labels_ndim + 1:  # rows of columns: one-hot, C of them
            if arr.shape[-1] != C:
                raise ValueError(
                    f"{name}: must be one-hot rows of {C} columns (the model's {C} classes) or integer labels 0..{C - 1}, "
                    f"got {arr.shape[-1]} columns (shape {arr.shape})"
                )
            if not (np.isin(arr, (0, 1)).all() and (arr.sum(-1) == 1).all()):
                row = arr.reshape(-1, C)[~(np.isin(arr, (0, 1)).all(-1) & (arr.sum(-1) == 1)).reshape(-1)][0]
                raise ValueError(f"{name}: rows of {C} columns must be one-hot (a single 1), got {row.tolist()}")
            out = arr
        else:
            bad = (arr != np.round(arr)) | (arr < 0) | (arr >= C)
            if bad.any():
                raise ValueError(f"{name}: must hold class labels 0..{C - 1} or one-hot rows, got {arr[bad].flat[0]:g}")
            out = np.eye(C)[arr.astype(np.int64)]
    else:
        if arr.ndim == labels_ndim and arch.n_outputs == 1:
            arr = arr[..., None]  # one value per row, shared (N,) or per member (K, N)
        out = arr
        if out.shape[-1] != arch.n_outputs:
            raise ValueError(f"{name}: must have {arch.n_outputs} target column(s), got shape {arr.shape}")
    return torch.as_tensor(out, dtype=torch.float32)


def check_rows(x_name: str, x: torch.Tensor, y_name: str, y: torch.Tensor, n_members: int) -> None:
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(f"{y_name}: must have one row per row of {x_name} ({x.shape[-2]}), got {y.shape[-2]}")
    if y.dim() == 3 and y.shape[0] != n_members:
        raise ValueError(f"{y_name}: per-member targets must have {n_members} members, got {y.shape[0]}")


def keras_validation_split(x: torch.Tensor, y: torch.Tensor, fraction: float):
    """Keras's ``validation_split``: the last ``fraction`` of the rows as given, before any shuffle."""
    n = x.shape[-2]
    split_at = int(math.floor(n * (1.0 - fraction)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"validation_split: {fraction:g} of {n} rows leaves "
            f"{'no training' if split_at == 0 else 'no validation'} rows; use a fraction that keeps both"
        )
    return x[..., :split_at, :], y[..., :split_at, :], x[..., split_at:, :], y[..., split_at:, :]
