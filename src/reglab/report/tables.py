"""The numbers of the report: per-variant summaries, paired differences, weights, references.

Each function returns a list of rows (dicts, column -> text) for the HTML and, where the findings
need them, the raw statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .rundata import RunData
from .stats import Paired, format_p, mean_ci, paired, percentile_of

NEAR_ZERO = 1e-3


def num(x: float, digits: int = 4) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.{digits}g}"


def mean_pm(values) -> str:
    m, h = mean_ci(values)
    return f"{num(m)} ± {num(h, 2)}" if np.isfinite(h) else num(m)


def ci_text(p: Paired) -> str:
    return f"{num(p.mean, 3)} [{num(p.low, 3)}, {num(p.high, 3)}]".replace("-", "−")


def metric_columns(run: RunData) -> list[tuple[str, str]]:
    """(summary column, heading) for the summary table."""
    out = []
    for split in ("train", "val", "test"):
        if f"{split}_loss" not in run.summary.columns:
            continue
        label = {"train": "train", "val": "validation", "test": "test"}[split]
        if run.classification:
            out += [(f"{split}_loss", f"{label} loss"), (f"{split}_accuracy", f"{label} accuracy")]
        else:
            out += [(f"{split}_loss", f"{label} MSE")]
    mc = {"mc_mse": "MSE", "mc_nll": "Gaussian NLL", "mc_loss": "loss", "mc_accuracy": "accuracy"}
    for column in run.summary.columns:
        split, _, name = column.partition("_")
        if name in mc and run.summary[column].notna().any():
            out.append((column, f"MC dropout {'test' if split == 'test' else 'validation'} {mc[name]}"))
    return out


def gap(run: RunData, rows) -> np.ndarray:
    """The generalization gap per member: held-out loss minus training loss."""
    return rows[f"{run.held_out}_loss"].to_numpy(float) - rows["train_loss"].to_numpy(float)


def summary_rows(run: RunData) -> list[dict[str, str]]:
    out = []
    for name in run.variant_names:
        rows = run.members(name)
        row = {"variant": name, "seeds": str(len(rows))}
        for col, heading in metric_columns(run):
            row[heading] = mean_pm(rows[col])
        row[f"gap ({run.held_out} − train loss)"] = mean_pm(gap(run, rows))
        e = rows["epochs_run"]
        row["epochs run"] = f"{np.median(e):.0f}" + (f" [{e.min()}–{e.max()}]" if e.min() != e.max() else "")
        row["stopped by"] = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in rows["stop_reason"].value_counts().items())
        out.append(row)
    return out


def comparisons(run: RunData) -> dict[str, dict[str, Paired]]:
    """variant -> quantity -> paired difference against the baseline (technique − baseline)."""
    held = run.held_out
    out = {}
    for name in run.variant_names:
        if name == run.baseline:
            continue
        q = {
            "held_loss": paired(*run.pairs(name, f"{held}_loss")),
            "train_loss": paired(*run.pairs(name, "train_loss")),
            "epochs": paired(*run.pairs(name, "epochs_run")),
        }
        if run.classification:
            q["held_metric"] = paired(*run.pairs(name, f"{held}_accuracy"))
        a_held, b_held = run.pairs(name, f"{held}_loss")
        a_train, b_train = run.pairs(name, "train_loss")
        q["gap"] = paired(a_held - a_train, b_held - b_train)
        out[name] = q
    return out


def comparison_rows(run: RunData, comps: dict[str, dict[str, Paired]]) -> list[dict[str, str]]:
    held = "test" if run.held_out == "test" else "validation"
    loss = "loss" if run.classification else "MSE"
    out = []
    for name, q in comps.items():
        row = {"variant − baseline": name, "pairs": str(q["held_loss"].n)}
        row[f"Δ {held} {loss} [95 % CI], p"] = f"{ci_text(q['held_loss'])}, {format_p(q['held_loss'].p)}"
        if "held_metric" in q:
            row[f"Δ {held} accuracy [95 % CI], p"] = f"{ci_text(q['held_metric'])}, {format_p(q['held_metric'].p)}"
        row[f"Δ train {loss} [95 % CI], p"] = f"{ci_text(q['train_loss'])}, {format_p(q['train_loss'].p)}"
        row["Δ gap [95 % CI], p"] = f"{ci_text(q['gap'])}, {format_p(q['gap'].p)}"
        row["Δ epochs run"] = num(q["epochs"].mean, 4)
        out.append(row)
    return out


def reference_rows(run: RunData) -> list[dict[str, str]]:
    ref = run.experiment.spec.report.reference
    out = []
    for name in run.variant_names:
        for col, value in ref.get(name, {}).items():
            values = run.members(name)[col]
            out.append(
                {
                    "variant": name,
                    "quantity": col.replace("_", " "),
                    run.experiment.spec.report.reference_source: num(value),
                    f"reglab, {len(values)} seeds: mean ± 95 % CI": mean_pm(values),
                    "seed range": f"{num(values.min())} – {num(values.max())}",
                    "percentile of the single run": f"{percentile_of(value, values):.0f}",
                }
            )
    return out


def weight_stats(run: RunData) -> dict[str, dict[str, float]]:
    """Per variant: first-layer kernel statistics (per member, then averaged) and the share of
    (near-)zero weights over every kernel."""
    out = {}
    for name in run.variant_names:
        members = run.members(name)
        first = run.kernels(members, 0).reshape(len(members), -1)
        every = np.concatenate([run.kernels(members, layer).reshape(len(members), -1) for layer in range(run.arch.n_layers)], axis=1)
        out[name] = {
            "min": float(first.min(1).mean()),
            "min_abs": float(np.abs(first).min(1).mean()),
            "near_zero_first": float((np.abs(first) < NEAR_ZERO).mean()),
            "zero_first": float((first == 0).mean()),
            "near_zero_all": float((np.abs(every) < NEAR_ZERO).mean()),
            "zero_all": float((every == 0).mean()),
            "mean_abs_first": float(np.abs(first).mean()),
            "dropped": float(dropped_counts(members).mean()),
        }
    return out


def dropped_counts(members) -> np.ndarray:
    """How many inputs each member ignores (every first-layer weight from them exactly zero)."""
    return np.array([len(t.split(";")) if t else 0 for t in _dropped_text(members)])


def _dropped_text(members) -> list[str]:
    """The ``dropped_inputs`` cells as text ('' where none; a column of empty cells reads back as NaN)."""
    if "dropped_inputs" not in members.columns:
        return [""] * len(members)
    return ["" if pd.isna(t) else str(t) for t in members["dropped_inputs"]]


def most_dropped(members, top: int = 5) -> list[tuple[str, int]]:
    """The inputs dropped by most members: (name, number of members)."""
    counts: dict[str, int] = {}
    for text in _dropped_text(members):
        for name in filter(None, text.split(";")):
            counts[name] = counts.get(name, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def weight_rows(stats: dict[str, dict[str, float]]) -> list[dict[str, str]]:
    return [
        {
            "variant": name,
            "minimum weight (mean over seeds)": num(s["min"]),
            "smallest |w|": num(s["min_abs"], 3),
            "mean |w|": num(s["mean_abs_first"], 3),
            f"|w| < {NEAR_ZERO:g}, first layer": f"{100 * s['near_zero_first']:.2f} %",
            "exactly 0, first layer": f"{100 * s['zero_first']:.2f} %",
            f"|w| < {NEAR_ZERO:g}, all layers": f"{100 * s['near_zero_all']:.2f} %",
            "exactly 0, all layers": f"{100 * s['zero_all']:.2f} %",
            "inputs dropped (mean per member)": f"{s['dropped']:.1f}",
        }
        for name, s in stats.items()
    ]
