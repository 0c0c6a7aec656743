"""The report's figures, each a function of a run folder's data that returns a matplotlib figure.

Colours follow the variant's position (baseline first, in the tab10 order the notebooks' plots
used); every axis is labelled; nothing here trains or writes files.
"""

from __future__ import annotations

import base64
import functools
import io
import sys

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from ..variants import other_settings, parameter_value, uses
from .rundata import RunData
from .stats import mean_ci

# The report's look, applied while a figure is made and drawn (never to matplotlib's global
# settings: importing this module changes nothing for the user's own plots).
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}
CLASS_COLORS = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]  # mlxtend's order
MARKERS = ["s", "^", "o", "v", "D", "P", "X", "<", ">", "h"]
_MPL = tuple(int(x) for x in matplotlib.__version__.split(".")[:2])
GRID = 120  # points per axis of the decision-region grid


def _styled(draw):
    """A figure function made and drawn in the report's style."""

    @functools.wraps(draw)
    def styled(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = draw(*args, **kwargs)
            interactive = matplotlib.is_interactive()
        # The context restores every setting, also the interactive mode that a notebook's inline
        # backend switches on when pyplot's first figure loads it; that one must stay.
        matplotlib.interactive(interactive)
        return fig

    return styled


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def _subplots(*grid, figsize, **kwargs):
    """A new figure and its axes. In a notebook, pyplot's (its inline backend shows the figure at
    the end of the cell); elsewhere a bare Figure, drawn to a file with no backend chosen."""
    if _in_notebook():
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
    else:
        fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kwargs)


def color(i: int) -> str:
    return matplotlib.colormaps["tab10"](i % 10)


def to_png(fig) -> str:
    """The figure as a base64 PNG, ready for an ``<img src="data:...">``; closes it."""
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="png", dpi=100)
    if _in_notebook():
        import matplotlib.pyplot as plt

        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def limits(run: RunData, axis: int) -> tuple[float, float]:
    lim = (run.experiment.spec.report.xlim, run.experiment.spec.report.ylim)[axis]
    if lim is not None:
        return float(lim[0]), float(lim[1])
    v = run.X[:, axis]
    pad = 0.1 * (v.max() - v.min()) or 1.0
    return float(v.min() - pad), float(v.max() + pad)


def _points(ax, run: RunData, member) -> None:
    """A member's training points filled, its held-out points hollow, one marker and colour per class."""
    held = run.held_out
    for split, filled in (("train", True), (held, False)):
        rows = run.member_rows(member, split)
        for c in np.unique(run.y[rows]).astype(int):
            r = rows[run.y[rows] == c]
            colour = CLASS_COLORS[c % len(CLASS_COLORS)]
            kw = dict(facecolor=colour, edgecolor="black") if filled else dict(facecolor="white", edgecolor=colour)
            label = f"class {run.meta['classes'][c]} ({'train' if filled else 'validation' if split == 'val' else 'test'})"
            ax.scatter(run.X[r, 0], run.X[r, 1], marker=MARKERS[c % len(MARKERS)], s=22, linewidths=0.8, label=label, **kw)


def shown(run: RunData) -> list[str]:
    """The variants drawn one panel each: all of them, except that of a sweep only the first point
    and the best (by mean held-out loss) are drawn; the sweep figure shows the rest."""
    hidden = set()
    for _, points in sweep_lines(run):
        best = min(points, key=lambda p: run.members(p[1])[f"{run.held_out}_loss"].mean())[1]
        hidden |= {name for _, name in points[1:] if name != best}
    return [n for n in run.variant_names if n not in hidden]


@_styled
def decision_regions(run: RunData):
    """Per variant: the median member's decision regions (mlxtend style) and, beside it, the share
    of members predicting each point's class. All members' grid predictions in batched calls."""
    (x0, x1), (y0, y1) = limits(run, 0), limits(run, 1)
    gx, gy = np.meshgrid(np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    names = shown(run)
    n_classes = len(run.meta["classes"])
    members = run.summary[run.summary["variant"].isin(names)]
    probs = run.predict(members, grid)  # (K, G, outputs): batched passes over every member shown
    labels = (probs[..., 0] > 0.5).astype(int) if run.task == "binary" else probs.argmax(-1)
    fig, axes = _subplots(len(names), 2, figsize=(9.5, 3.6 * len(names)), squeeze=False)
    cmap = ListedColormap([CLASS_COLORS[c % len(CLASS_COLORS)] for c in range(n_classes)])
    for i, name in enumerate(names):
        index = np.flatnonzero(members["variant"].to_numpy() == name)
        rep = run.median_member(name)
        k = int(np.flatnonzero(members.index == rep.name)[0])
        ax = axes[i, 0]
        ax.contourf(gx, gy, labels[k].reshape(gx.shape), levels=np.arange(n_classes + 1) - 0.5, cmap=cmap, alpha=0.3)
        _points(ax, run, rep)
        ax.set_title(f"{name}: median member (seed {int(rep['seed'])}, {run.held_out} loss {rep[run.held_out + '_loss']:.3f})")
        ax = axes[i, 1]
        if run.task == "binary":
            share = labels[index].mean(0)
            what = "share of seeds predicting class " + str(run.meta["classes"][1])
        else:
            votes = np.stack([(labels[index] == c).mean(0) for c in range(n_classes)])
            share = votes.max(0)
            what = "share of seeds agreeing with the majority class"
        im = ax.imshow(share.reshape(gx.shape), origin="lower", extent=(x0, x1, y0, y1), aspect="auto", cmap="RdBu_r", vmin=0, vmax=1)
        ax.contour(gx, gy, share.reshape(gx.shape), levels=[0.5], colors="black", linewidths=0.8)
        _points(ax, run, rep)
        ax.set_title(f"{name}: {len(index)} {'members (seeds x folds)' if 'fold' in members.columns else 'seeds'}")
        fig.colorbar(im, ax=ax, label=what, fraction=0.046, pad=0.03)
        for ax in axes[i]:
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xlabel(run.meta["features"][0])
            ax.set_ylabel(run.meta["features"][1])
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(0, -0.14), ncol=2, frameon=False) if len(names) == 1 else axes[0, 0].legend(
        loc="best", framealpha=0.8
    )
    fig.tight_layout()
    return fig


@_styled
def fitted_curves(run: RunData):
    """Regression on one input: training and held-out points, each variant's median member and the
    10-90 % band of all its members' curves."""
    names = shown(run)
    x0, x1 = limits(run, 0)
    grid = np.linspace(x0, x1, 300)[:, None]
    pred = run.predict(run.summary, grid)[..., 0]
    fig, axes = _subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False, sharey=True)
    for i, name in enumerate(names):
        ax = axes[0, i]
        index = np.flatnonzero(run.summary["variant"].to_numpy() == name)
        lo, hi = np.quantile(pred[index], [0.1, 0.9], axis=0)
        ax.fill_between(grid[:, 0], lo, hi, color=color(i), alpha=0.25, label=f"10–90 % of {len(index)} seeds")
        rep = run.median_member(name)
        k = int(np.flatnonzero(run.summary.index == rep.name)[0])
        ax.plot(grid[:, 0], pred[k], color=color(i), lw=2, label=f"median member (seed {int(rep['seed'])})")
        _curve_panel(ax, run, rep, name)
    axes[0, 0].set_ylabel("y")
    fig.tight_layout()
    return fig


def _curve_panel(ax, run: RunData, member, title: str) -> None:
    """A regression panel's points (the member's training and held-out rows), title, axes, legend."""
    train, held = run.member_rows(member, "train"), run.member_rows(member, run.held_out)
    ax.scatter(run.X[train, 0], run.y[train], s=18, color="#1f77b4", edgecolor="black", linewidths=0.5, label="train", zorder=3)
    held_label = "test" if run.held_out == "test" else "validation"
    ax.scatter(run.X[held, 0], run.y[held], s=26, color="#ff7f0e", marker="x", label=held_label, zorder=3)
    ax.set_title(title)
    ax.set_xlabel(run.meta["features"][0])
    ylim = run.experiment.spec.report.ylim
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(loc="lower right")


def stops_early(variant) -> bool:
    """Whether a variant uses a stopping rule (a technique that asks for the stopping panels)."""
    return uses(variant, "stopping")


def uses_early_stopping(run: RunData) -> bool:
    return any(stops_early(v) for v in run.variants)


def _log_epochs(run: RunData) -> bool:
    """A log epoch axis when some variant stops within the first twentieth of the epochs."""
    stops = run.summary.groupby("variant", sort=False)["epochs_run"].median()
    return bool((stops < run.max_epochs / 20).any())


@_styled
def learning_curves(run: RunData):
    """Per variant: loss and validation loss (and accuracy) per epoch, the median across seeds with
    its interquartile band; crosses where members stopped early, circles the epoch restored."""
    names = shown(run)
    cols = ["loss"] + (["accuracy"] if run.classification else [])
    if len(cols) == 1:  # one panel per variant: side by side
        fig, axes = _subplots(1, len(names), figsize=(4.6 * len(names), 3.4), squeeze=False, sharey=True)
        axes = axes.T
    else:
        fig, axes = _subplots(len(names), len(cols), figsize=(5.2 * len(cols), 2.6 * len(names) + 0.4), squeeze=False, sharex=True)
    log = _log_epochs(run)
    h = run.history
    for i, name in enumerate(names):
        rows = h[h["variant"] == name]
        members = run.members(name)
        c = color(run.variant_names.index(name))
        early = members[members["epochs_run"] < run.max_epochs]
        restored = members[members["restored"].astype(bool)]
        for j, col in enumerate(cols):
            ax = axes[i, j]
            for series, style, label in ((col, "-", "train"), ("val_" + col, "--", "validation")):
                if series not in rows.columns:
                    continue
                q = rows.groupby("epoch")[series].quantile([0.25, 0.5, 0.75]).unstack()
                epochs = q.index.to_numpy() + 1
                ax.plot(epochs, q[0.5], style, color=c, lw=1.4, label=f"{label} (median)")
                ax.fill_between(epochs, q[0.25], q[0.75], color=c, alpha=0.18 if style == "-" else 0.1, lw=0)
            val = "val_" + col
            if val in rows.columns:
                for marked, epoch_of, marker, label in ((early, "epochs_run", "x", "stopped"), (restored, "best_epoch", "o", "restored to")):
                    if not len(marked):
                        continue
                    keys = ["seed"] + (["fold"] if "fold" in rows.columns else [])
                    at = rows.merge(marked[keys + ["epochs_run", "best_epoch"]], on=keys)
                    at = at[at["epoch"] == (at["epochs_run"] - 1 if epoch_of == "epochs_run" else at["best_epoch"])]
                    style = dict(color="black") if marker == "x" else dict(facecolor="none", edgecolor="black")
                    ax.scatter(at["epoch"] + 1, at[val], marker=marker, s=18, lw=0.8, zorder=4, label=label, **style)
            ax.set_ylabel(col if run.classification else "loss (MSE)")
            if col == "loss" and rows[col].max() > 20 * rows[col].min() > 0:
                ax.set_yscale("log")
            title = name + (f": stopped at epoch {np.median(members['epochs_run']):.0f} (median)" if len(early) else "")
            ax.set_title(title)
            if log:
                ax.set_xscale("log")
            ax.set_xlabel("epoch" + (" (log scale)" if log else ""))
            ax.legend(loc="best")
    fig.tight_layout()
    return fig


@_styled
def stop_epochs(run: RunData):
    """Histogram of the epoch each member stopped at, for the variants that stop early."""
    names = [v.name for v in run.variants if stops_early(v)]
    fig, ax = _subplots(figsize=(8, 3.2))
    all_stops = run.summary[run.summary["variant"].isin(names)]["epochs_run"]
    lo, hi = max(1, all_stops.min()), max(all_stops.max(), 2)
    bins = np.geomspace(lo, hi * 1.05, 40) if _log_epochs(run) else np.linspace(0, hi * 1.05, 40)
    for name in names:
        i = run.variant_names.index(name)
        ax.hist(run.members(name)["epochs_run"], bins=bins, histtype="step", lw=1.6, color=color(i), label=name)
    if _log_epochs(run):
        ax.set_xscale("log")
    ax.set_xlabel("epochs run (the stop epoch)")
    ax.set_ylabel("members")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def uses_penalty(run: RunData) -> bool:
    """Whether some variant acts on the weights (its techniques ask for the weights panel:
    penalties, decay, constraints, proximal steps)."""
    return any(uses(v, "weights") for v in run.variants)


@_styled
def weight_distributions(run: RunData):
    """The first layer's kernel weights of every member, pooled per variant: box plots and densities."""
    names = run.variant_names
    weights = [run.kernels(run.members(n), 0).ravel() for n in names]
    fig, (ax1, ax2) = _subplots(1, 2, figsize=(11, 0.5 * len(names) + 3))
    sideways = {"orientation": "horizontal"} if _MPL >= (3, 10) else {"vert": False}
    box = ax1.boxplot(weights, patch_artist=True, flierprops=dict(markersize=2, alpha=0.4), **sideways)
    for i, patch in enumerate(box["boxes"]):
        patch.set_facecolor(color(i))
        patch.set_alpha(0.5)
    ax1.set_yticks(range(1, len(names) + 1), names)
    ax1.invert_yaxis()
    ax1.set_xlabel("first-layer kernel weight")
    ax1.set_title("box plots (all seeds pooled)")
    lo, hi = np.percentile(np.concatenate(weights), [0.5, 99.5])
    xs = np.linspace(lo, hi, 400)
    for i, (name, w) in enumerate(zip(names, weights)):
        ax2.plot(xs, gaussian_kde(w)(xs), color=color(i), lw=1.5, label=name)
    ax2.set_xlabel("first-layer kernel weight")
    ax2.set_ylabel("density")
    ax2.set_title("densities (Gaussian KDE)")
    ax2.legend(loc="upper right")
    fig.tight_layout()
    return fig


def sweep_lines(run: RunData) -> list[tuple[str, list[tuple[float, str]]]]:
    """Groups of variants that differ only in the swept parameter: (label, [(value, variant)])."""

    parameter = run.experiment.spec.report.sweep
    if parameter is None:
        return []
    train = run.experiment.spec.train
    groups: dict[str, list[tuple[float, str]]] = {}
    for v in run.variants:
        value = parameter_value(v, parameter, train)
        if value is None or isinstance(value, list):
            continue
        groups.setdefault(repr(other_settings(v, parameter)), []).append((float(value), v.name))
    out = []
    for members in groups.values():
        if len(members) >= 2:
            members.sort()
            out.append((members[0][1], members))
    return out


@_styled
def sweep(run: RunData):
    """Held-out loss and epochs run against the swept parameter (mean and 95 % CI across seeds),
    the baseline as a band."""
    parameter = run.experiment.spec.report.sweep
    held = run.held_out
    fig, (ax1, ax2) = _subplots(1, 2, figsize=(10, 3.6))
    base = run.members(run.baseline)
    for ax, col in ((ax1, f"{held}_loss"), (ax2, "epochs_run")):
        m, h = mean_ci(base[col])
        ax.axhline(m, color="grey", lw=1, label=f"{run.baseline} (mean)")
        if np.isfinite(h):
            ax.axhspan(m - h, m + h, color="grey", alpha=0.15, lw=0)
        for n, (label, points) in enumerate(sweep_lines(run)):
            xs = [v for v, _ in points]
            stats = [mean_ci(run.members(name)[col]) for _, name in points]
            ax.errorbar(xs, [s[0] for s in stats], yerr=[np.nan_to_num(s[1]) for s in stats], marker="o", capsize=3, color=color(n + 1), label="sweep")
            if min(xs) > 0 and max(xs) / min(xs) >= 10:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks(xs, [f"{v:g}" for v in xs])
        ax.set_xlabel(parameter)
        ax.legend(loc="best")
    ax1.set_ylabel(f"{held} loss (mean, 95 % CI)")
    ax2.set_ylabel("epochs run (mean, 95 % CI)")
    fig.tight_layout()
    return fig


@_styled
def reference(run: RunData):
    """Each seed's result as a dot, the mean with its 95 % CI, and the single run the origin
    notebook reported as a star: where that one run falls in the distribution."""
    ref = run.experiment.spec.report.reference
    columns = sorted({c for values in ref.values() for c in values}, key=lambda c: ("train", "val", "test").index(c.split("_")[0]))
    names = run.variant_names
    fig, axes = _subplots(1, len(columns), figsize=(4.4 * len(columns), 3.4), squeeze=False)
    rng = np.random.default_rng(0)  # jitter only
    for ax, col in zip(axes[0], columns):
        for i, name in enumerate(names):
            v = run.members(name)[col].to_numpy()
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=12, color=color(i), alpha=0.7, label="one seed" if i == 0 else None)
            m, h = mean_ci(v)
            ax.errorbar(i + 0.25, m, yerr=h, fmt="o", color="black", capsize=3, ms=4, label="mean, 95 % CI" if i == 0 else None)
            if col in ref.get(name, {}):
                ax.scatter(i, ref[name][col], marker="*", s=160, color="gold", edgecolor="black", zorder=5, label="origin notebook" if i == 0 else None)
        ax.set_xticks(range(len(names)), names)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_ylabel(col.replace("_", " "))
        ax.legend(loc="best")
    fig.tight_layout()
    return fig


@_styled
def stopping_tradeoff(run: RunData):
    """For every variant: mean epochs run against mean held-out loss (95 % CIs both ways): what a
    stopping rule saves and what it gives up."""
    held = f"{run.held_out}_loss"
    fig, ax = _subplots(figsize=(8, 4.2))
    for i, name in enumerate(run.variant_names):
        rows = run.members(name)
        (ex, hx), (ey, hy) = mean_ci(rows["epochs_run"]), mean_ci(rows[held])
        ax.errorbar(ex, ey, xerr=np.nan_to_num(hx), yerr=np.nan_to_num(hy), fmt="o", color=color(i), capsize=3, label=name)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("epochs run (mean, 95 % CI; log scale)")
    ax.set_ylabel(f"{'test' if run.held_out == 'test' else 'validation'} loss (mean, 95 % CI)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


@_styled
def mc_dropout(run: RunData):
    """Regression with MC dropout: the median member's predictive mean with ±1 and ±2 standard
    deviation bands over the passes, beside the training and held-out points."""
    names = [v.name for v in run.variants if v.mc_dropout]
    x0, x1 = limits(run, 0)
    grid = np.linspace(x0, x1, 300)[:, None]
    fig, axes = _subplots(1, len(names), figsize=(5.2 * len(names), 3.8), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        rep = run.median_member(name)
        mean, std = run.mc_predict(run.summary.loc[[rep.name]], grid)
        mu, sd = mean[0, :, 0], std[0, :, 0]
        c = color(run.variant_names.index(name))
        ax.fill_between(grid[:, 0], mu - 2 * sd, mu + 2 * sd, color=c, alpha=0.15, lw=0, label="±2 sd")
        ax.fill_between(grid[:, 0], mu - sd, mu + sd, color=c, alpha=0.3, lw=0, label="±1 sd")
        passes = run.variants[run.variant_names.index(name)].mc_dropout
        ax.plot(grid[:, 0], mu, color=c, lw=2, label=f"predictive mean ({passes} passes)")
        _curve_panel(ax, run, rep, f"{name}: MC dropout, median member (seed {int(rep['seed'])})")
    axes[0, 0].set_ylabel("y")
    fig.tight_layout()
    return fig
