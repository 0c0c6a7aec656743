"""Statistics across seeds."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (NaN for fewer than 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def format_mean_ci(values) -> str:
    mean, half = mean_ci(values)
    return f"{mean:.4g} ± {half:.2g}" if np.isfinite(half) else f"{mean:.4g}"


class Paired:
    """A technique against the baseline over the same seeds (and folds): ``technique - baseline``."""

    def __init__(self, differences, level: float = 0.95):
        d = np.asarray(differences, dtype=float)
        self.d = d[np.isfinite(d)]
        self.n = len(self.d)
        self.mean, half = mean_ci(self.d, level)
        self.low, self.high = self.mean - half, self.mean + half
        if self.n < 2:
            self.p = float("nan")
        elif np.all(self.d == self.d[0]):
            self.p = 1.0 if self.d[0] == 0 else 0.0  # no spread: the difference is exact
        else:
            self.p = float(stats.ttest_1samp(self.d, 0.0).pvalue)  # = the paired t-test

    @property
    def significant(self) -> bool:
        return bool(self.p < 0.05)


def paired_rows(a, b, column: str = "val_loss") -> tuple[np.ndarray, np.ndarray]:
    """``a``'s and ``b``'s values of ``column`` for the members they share (same seed and fold:
    two frames with those columns), aligned for :func:`paired`."""
    on = ["seed", "fold"]
    both = a[on + [column]].merge(b[on + [column]], on=on, suffixes=("_a", "_b"))
    return both[f"{column}_a"].to_numpy(float), both[f"{column}_b"].to_numpy(float)


def paired(technique, baseline, level: float = 0.95) -> Paired:
    return Paired(np.asarray(technique, dtype=float) - np.asarray(baseline, dtype=float), level)


def format_p(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.01 else f"p = {p:.2f}"


def percentile_of(value: float, sample) -> float:
    """Where ``value`` falls among ``sample``: the percent of the sample below it (ties count half)."""
    s = np.asarray(sample, dtype=float)
    s = s[np.isfinite(s)]
    return float(100 * ((s < value).sum() + 0.5 * (s == value).sum()) / len(s)) if len(s) else float("nan")
