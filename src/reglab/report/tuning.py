"""The report of a ``reglab tune`` search: one self-contained page (figures embedded, nothing loaded
from anywhere) with the answer, the winner against its baseline seed by seed, each technique's
effect across its strengths, the search's progress, and every candidate tried."""

from __future__ import annotations

import html
import time

import numpy as np

from .. import __version__
from . import CSS, _figure, _table
from .figures import _styled, _subplots, color, to_png
from .stats import paired, paired_rows
from .tables import num


def tune_report(search, board, answer) -> str:
    """The page of a finished search (:class:`reglab.tuner.Search`), its leaderboard and answer."""
    w = search.winner
    parts = [
        f'<div class="findings"><p>{html.escape(answer.line)}</p></div>',
        '<p class="note">Scores are validation losses of held-out folds (features standardized inside each fold); '
        "the winner was chosen on the rungs' seeds and is compared here on fresh ones, so the difference below is "
        "not flattered by the selection.</p>",
        "<h3>The winner against its baseline, fresh seeds</h3>",
        _figure(to_png(_paired_figure(*paired_rows(search.confirmation[w.name], search.confirmation["baseline"]), w.label)), "each point: one seed and fold; the band: the 95 % CI of the mean difference", "winner against baseline"),
        "<h3>Each technique across its strengths</h3>",
        _figure(to_png(_strengths_figure(search)), f"rung 0, architecture {'x'.join(map(str, w.hidden))}: mean paired difference against the baseline, with its 95 % CI", "techniques by strength"),
        "<h3>The search</h3>",
        _figure(to_png(_progress_figure(search)), "the best mean validation loss after each rung, against the time spent", "search progress"),
        _table(_rung_rows(search), "rungs"),
        (f'<p class="note">The budget ran out after rung {search.stopped_after}: the search stopped promoting there.</p>' if search.stopped_after is not None else ""),
        "<h3>Every candidate</h3>",
        '<p class="note">Δ: the candidate minus its architecture\'s baseline on the same seeds and folds (negative is better).</p>',
        _table(_board_rows(board), "leaderboard"),
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M")
    title = "reglab tune"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f"<header><h1>{title}: {html.escape(search.args.data.rsplit('/', 1)[-1])}</h1><p>reglab {__version__} · {stamp}</p></header>"
        f'<main><section class="experiment">{"".join(parts)}</section></main></body></html>'
    )


@_styled
def _paired_figure(winner: np.ndarray, baseline: np.ndarray, label: str):
    p = paired(winner, baseline)
    fig, ax = _subplots(figsize=(6.4, 3.2))
    d = winner - baseline
    ax.axhspan(p.low, p.high, color=color(0), alpha=0.2, lw=0)
    ax.axhline(p.mean, color=color(0))
    ax.axhline(0, color="black", lw=0.8)
    ax.plot(np.arange(len(d)), d, "o", color=color(1), ms=4)
    ax.set_xlabel("seed x fold")
    ax.set_ylabel(f"Δ validation loss\n{label} − baseline")
    fig.tight_layout()
    return fig


@_styled
def _strengths_figure(search):
    hidden = search.winner.hidden
    base = search.scores[search.winner.baseline()]
    by_key: dict[str, list[tuple[float, object]]] = {}
    for c, s in search.scores.items():
        if c.hidden != hidden or len(c.settings) != 1 or isinstance(c.settings[0][1], tuple):
            continue
        key, value = c.settings[0]
        rung0 = s[s["seed"] < search.rungs[0].seeds]
        by_key.setdefault(key, []).append((value, paired(*paired_rows(rung0, base))))
    fig, ax = _subplots(figsize=(7.2, 3.6))
    for i, (key, points) in enumerate(sorted(by_key.items())):
        points.sort(key=lambda vp: vp[0])
        x = np.arange(len(points)) + 0.08 * (i - len(by_key) / 2)
        means = [p.mean for _, p in points]
        ax.errorbar(x, means, yerr=[[p.mean - p.low for _, p in points], [p.high - p.mean for _, p in points]], fmt="o-", color=color(i), label=key, ms=4, capsize=2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("strength (weakest to strongest tried)")
    ax.set_ylabel("Δ validation loss")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


@_styled
def _progress_figure(search):
    spent = np.cumsum([r.seconds for r in search.rungs])
    best = [r.best for r in search.rungs]
    fig, ax = _subplots(figsize=(5.6, 3.0))
    ax.plot(spent, best, "o-", color=color(0))
    ax.set_xlabel("seconds spent")
    ax.set_ylabel("best mean validation loss")
    fig.tight_layout()
    return fig


def _rung_rows(search) -> list[dict[str, str]]:
    return [
        {"rung": str(r.number), "candidates": str(len(r.candidates)), "seeds so far": str(r.seeds), "folds": str(search.folds), "seconds": f"{r.seconds:.1f}"}
        for r in search.rungs
    ]


def _board_rows(board) -> list[dict[str, str]]:
    out = []
    for row in board.to_dict("records"):
        out.append({k: (num(v) if isinstance(v, float) else ("" if v is None else str(v))) for k, v in row.items()})
    return out
