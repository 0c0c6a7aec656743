""""What we found": a short paragraph per experiment, written from the numbers.

Sentences are plain text; ``**name**`` marks a variant's name to set in bold (see :func:`to_html`)."""

from __future__ import annotations

import numpy as np

from ..variants import uses
from .rundata import RunData
from .stats import Paired, format_p, mean_ci, percentile_of
from .tables import NEAR_ZERO, num


def to_html(sentence: str) -> str:
    """Escape a sentence for HTML and turn ``**x**`` into bold."""
    import html
    import re

    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(sentence))


def _quantity(run: RunData) -> str:
    held = "test" if run.held_out == "test" else "validation"
    return f"{held} {'loss' if run.classification else 'MSE'}"


def _change(p: Paired, what: str) -> str:
    """'lowered mean test MSE by 0.011 (95 % CI 0.009–0.013, p < 0.001)' or 'left ... unchanged'."""
    if not np.isfinite(p.low):  # one pair (one seed): a difference, but no interval and no test
        return f"changed mean {what} by {num(p.mean, 2)} on a single seed (no confidence interval or test with one seed)"
    ci = f"95 % CI {num(abs(p.high if p.mean < 0 else p.low), 2)}–{num(abs(p.low if p.mean < 0 else p.high), 2)}"
    if not p.significant:
        return f"did not change mean {what} detectably (difference {num(p.mean, 2)}, 95 % CI {num(p.low, 2)} to {num(p.high, 2)}, {format_p(p.p)})"
    verb = "lowered" if p.mean < 0 else "raised"
    return f"{verb} mean {what} by {num(abs(p.mean), 2)} ({ci}, {format_p(p.p)})"


def technique(run: RunData, name: str, q: dict[str, Paired]) -> str:
    what = _quantity(run)
    parts = [f"**{name}** {_change(q['held_loss'], what)}"]
    train = q["train_loss"]
    if train.significant:
        parts.append(f"while {'lowering' if train.mean < 0 else 'raising'} train {'loss' if run.classification else 'MSE'} by {num(abs(train.mean), 2)}")
    text = " ".join(parts)
    if "held_metric" in q and q["held_metric"].significant:
        d = q["held_metric"].mean
        text += f"; {run.held_out if run.held_out == 'test' else 'validation'} accuracy went {'up' if d > 0 else 'down'} by {100 * abs(d):.1f} points"
    g = q["gap"]
    if g.significant:
        base_gap = mean_ci(run.members(run.baseline)[f"{run.held_out}_loss"] - run.members(run.baseline)["train_loss"])[0]
        text += f"; the generalization gap {'shrank' if g.mean < 0 else 'grew'} from {num(base_gap, 2)} to {num(base_gap + g.mean, 2)}"
    return text + "."


def early_stopping(run: RunData, name: str) -> str | None:
    members = run.members(name)
    stop = float(np.median(members["epochs_run"]))
    if stop >= run.max_epochs:
        return None
    best = float(np.median(members["best_epoch"])) + 1
    text = f"{name} stopped after a median of {stop:.0f} of {run.max_epochs} epochs (best validation loss at epoch {best:.0f})"
    base = run.members(run.baseline)
    if stop < run.max_epochs / 20 and best <= 2:
        metric = "accuracy" if run.classification else "loss"
        held = run.held_out if run.held_out == "test" else "validation"
        text += (
            f": the validation loss rose over the first epochs, so the first epoch stayed the best and patience ran out before "
            f"the network had learned anything (mean {held} {metric} {num(members[f'{run.held_out}_{metric}'].mean(), 3)} against "
            f"{num(base[f'{run.held_out}_{metric}'].mean(), 3)} for the {run.baseline} trained to the end)"
        )
    return text + "."


def sweep(run: RunData, comps: dict[str, dict[str, Paired]]) -> str | None:
    from .figures import sweep_lines

    lines = sweep_lines(run)
    if not lines:
        return None
    parameter = run.experiment.spec.report.sweep
    held = f"{run.held_out}_loss"
    texts = []
    for _, points in lines:
        best_value, best = min(points, key=lambda p: run.members(p[1])[held].mean())
        values = ", ".join(f"{v:g}" for v, _ in points)
        text = f"Of the {parameter} values tried ({values}), {best_value:g} gave the lowest mean {_quantity(run)}"
        if best in comps:
            text += f": against the {run.baseline} it {_change(comps[best]['held_loss'], _quantity(run))}"
        stop = float(np.median(run.members(best)["epochs_run"]))
        if stop < run.max_epochs:
            text += f", stopping after a median of {stop:.0f} epochs ({100 * stop / run.max_epochs:.0f} % of the {run.max_epochs})"
        texts.append(text + ".")
    return " ".join(texts)


def weights(run: RunData, stats: dict[str, dict[str, float]]) -> str:
    base = stats[run.baseline]
    parts = []
    for name, s in stats.items():
        if name == run.baseline:
            continue
        dropped = f", {s['dropped']:.1f} inputs ignored per member" if s["dropped"] > 0 else ""
        parts.append(
            f"{name}: {100 * s['near_zero_first']:.1f} % of first-layer weights below {NEAR_ZERO:g} in magnitude "
            f"({100 * s['zero_first']:.1f} % exactly zero{dropped}), mean |w| {num(s['mean_abs_first'], 3)}"
        )
    return (
        f"Weights — {run.baseline}: {100 * base['near_zero_first']:.1f} % of first-layer weights below {NEAR_ZERO:g}, mean |w| "
        f"{num(base['mean_abs_first'], 3)}; " + "; ".join(parts) + "."
    )


def references(run: RunData) -> str | None:
    ref = run.experiment.spec.report.reference
    if not ref:
        return None
    parts = []
    for name, values in ref.items():
        for col, value in values.items():
            sample = run.members(name)[col]
            pct = percentile_of(value, sample)
            where = (
                f"is above all {len(sample)} seeds" if pct == 100 else f"is below all {len(sample)} seeds" if pct == 0 else f"falls at the {pct:.0f}th percentile of {len(sample)} seeds"
            )
            parts.append(f"{name} {col.replace('_', ' ')} {num(value)} {where}")
    return f"The single run of {run.experiment.spec.report.reference_source}: " + "; ".join(parts) + "."


def paragraph(run: RunData, comps, weight_stats=None) -> list[str]:
    out = [technique(run, name, q) for name, q in comps.items() if not _in_sweep(run, name)]
    for v in run.variants:
        if uses(v, "stopping") and not _in_sweep(run, v.name):
            text = early_stopping(run, v.name)
            if text:
                out.append(text)
    text = sweep(run, comps)
    if text:
        out.append(text)
    if weight_stats is not None:
        out.append(weights(run, weight_stats))
    text = references(run)
    if text:
        out.append(text)
    out += [mc_dropout(run, v) for v in run.variants if v.mc_dropout and f"{run.held_out}_mc_mse" in run.summary.columns]
    return out


def mc_dropout(run: RunData, variant) -> str:
    rows = run.members(variant.name)
    held = run.held_out
    plain, mc, nll = (mean_ci(rows[c])[0] for c in (f"{held}_loss", f"{held}_mc_mse", f"{held}_mc_nll"))
    where = "test" if held == "test" else "validation"
    return (
        f"MC dropout on {variant.name} ({variant.mc_dropout} passes with dropout on): mean {where} MSE of the predictive mean "
        f"{num(mc, 3)} against {num(plain, 3)} for the usual prediction with dropout off; Gaussian negative log-likelihood {num(nll, 3)}."
    )


def _in_sweep(run: RunData, name: str) -> bool:
    """Sweep points beyond the first are summarised by the sweep sentence, not one by one."""
    from .figures import sweep_lines

    return any(name in [n for _, n in points[1:]] for _, points in sweep_lines(run))
