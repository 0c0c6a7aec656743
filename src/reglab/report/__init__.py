"""``reglab report``: run folders -> one self-contained ``report.html``.

The report reads run folders only (never trains); every image is embedded as a data URI and the
page loads nothing from anywhere, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
import re
import time
import warnings
from pathlib import Path

from .. import __version__
from ..errors import UserError
from ..store import atomic_write
from ..variants import uses
from .rundata import RunData

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
       color: #1d2330; background: #fafbfc; line-height: 1.45; }
header { background: #1d2330; color: #fff; padding: 1.2em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: 0; color: #c9d1e0; }
nav { padding: .6em 2em; background: #eef1f6; border-bottom: 1px solid #d8dde6; }
nav a { margin-right: 1.4em; color: #2851a3; text-decoration: none; }
main { padding: 0 2em 3em 2em; max-width: 1300px; }
section.experiment { background: #fff; border: 1px solid #e1e5ec; border-radius: 6px; padding: 1em 1.6em;
                     margin: 1.6em 0; }
h2 { margin-top: .3em; }
h3 { margin-bottom: .4em; color: #33405a; }
table { border-collapse: collapse; font-size: .86em; margin: .4em 0 1em 0; }
th, td { border-bottom: 1px solid #e4e7ee; padding: .3em .6em; text-align: right; white-space: nowrap; }
th { background: #f3f5f9; font-weight: 600; white-space: normal; vertical-align: bottom; max-width: 11em; }
td:first-child, th:first-child { text-align: left; }
.findings { background: #f4f8ff; border-left: 4px solid #2851a3; padding: .6em 1em; }
.findings li { margin: .3em 0; }
.note { color: #5b6478; font-size: .9em; }
figure { margin: .6em 0 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eef0f4; }
figcaption { color: #5b6478; font-size: .88em; margin-top: .2em; }
.scroll { overflow-x: auto; }
"""


def _table(rows: list[dict[str, str]], cls: str) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(png: str, caption: str, alt: str) -> str:
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def section(run: RunData) -> str:
    """One experiment's section: findings, tables, figures."""
    with warnings.catch_warnings():
        # A name in a script the figure font lacks (CJK, say) is drawn as boxes in the figures, once
        # per glyph and figure; the HTML around them shows it as written. One warning would be noise,
        # dozens flood the terminal.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        return _section(run)


def _section(run: RunData) -> str:
    from . import figures, findings, tables

    spec = run.experiment.spec
    comps = tables.comparisons(run)
    weight_stats = tables.weight_stats(run) if figures.uses_penalty(run) else None
    n_seeds = len(run.members(run.baseline))
    held = "test" if run.held_out == "test" else "validation"
    parts = [f'<section class="experiment" id="{html.escape(run.name)}"><h2>{html.escape(run.name)}</h2>']
    t = spec.train
    parts.append(
        f'<p class="note">Data {html.escape(run.meta["name"])} ({len(run.X)} rows), Dense {spec.model.hidden} '
        f"{html.escape(spec.model.activation)}, {t.optimizer} learning rate {t.learning_rate:g}, {t.epochs} epochs, batch {t.batch_size}; "
        f"{n_seeds} seeds per variant. {html.escape(spec.report.note)}</p>"
    )
    parts.append('<h3>What we found</h3><ul class="findings">')
    parts += [f"<li>{findings.to_html(text)}</li>" for text in findings.paragraph(run, comps, weight_stats)]
    parts.append("</ul>")
    parts.append("<h3>Summary across seeds (mean ± 95 % CI)</h3>" + _table(tables.summary_rows(run), "summary"))
    if comps:
        parts.append(
            f"<h3>Paired differences against {html.escape(run.baseline)}</h3>"
            f'<p class="note">Each seed trains every variant from the same initial weights and split, so the differences are paired '
            f"by seed; the interval is Student's t on the differences, p the paired t-test. Negative Δ {held} loss is better.</p>"
            + _table(tables.comparison_rows(run, comps), "paired")
        )
    if spec.report.reference:
        parts.append("<h3>The origin notebook's single run, in the distribution</h3>" + _table(tables.reference_rows(run), "reference"))
        parts.append(_figure(figures.to_png(figures.reference(run)), "Each dot is one seed; black: mean and 95 % CI; star: the single run the notebook reported.", "reference"))
    if run.classification and run.X.shape[1] == 2:
        parts.append("<h3>Decision regions</h3>")
        parts.append(
            _figure(
                figures.to_png(figures.decision_regions(run)),
                "Left: the median member's decision regions (by held-out loss), filled markers train, hollow markers held out. "
                "Right: at each point, the share of seeds that predict the class; the black line is where half do. "
                "A sharp map means the boundary is the same whatever the seed.",
                "decision regions",
            )
        )
    if not run.classification and run.X.shape[1] == 1:
        parts.append("<h3>Fitted curves</h3>")
        parts.append(_figure(figures.to_png(figures.fitted_curves(run)), "The median member's curve and the 10–90 % band of all seeds' curves.", "fitted curves"))
    if not run.classification and run.X.shape[1] == 1 and any(uses(v, "mc_bands") for v in run.variants):
        parts.append(
            _figure(
                figures.to_png(figures.mc_dropout(run)),
                "MC dropout: dropout kept on at prediction, the mean and spread of the passes; the summary's MC columns score it on the held-out rows.",
                "mc dropout",
            )
        )
    if spec.report.sweep and figures.sweep_lines(run):
        parts.append(f"<h3>Sweep over {html.escape(spec.report.sweep)}</h3>")
        parts.append(_figure(figures.to_png(figures.sweep(run)), f"Mean and 95 % CI across seeds; grey: {run.baseline}.", "sweep"))
    parts.append("<h3>Learning curves</h3>")
    parts.append(
        _figure(
            figures.to_png(figures.learning_curves(run)),
            "Median across seeds (solid: train, dashed: validation) with the interquartile band; crosses mark where members stopped, circles the epoch whose weights were restored.",
            "learning curves",
        )
    )
    if figures.uses_early_stopping(run):
        parts.append(_figure(figures.to_png(figures.stop_epochs(run)), "When each member stopped.", "stop epochs"))
        if sum(figures.stops_early(v) for v in run.variants) >= 2:
            parts.append(
                _figure(
                    figures.to_png(figures.stopping_tradeoff(run)),
                    "Epochs saved against loss given up: each variant's mean epochs run and mean held-out loss.",
                    "stopping trade-off",
                )
            )
    if weight_stats is not None:
        parts.append("<h3>Weight distributions (first layer)</h3>" + _table(tables.weight_rows(weight_stats), "weights"))
        dropped = [(name, tables.most_dropped(run.members(name))) for name in run.variant_names]
        dropped = [(name, top) for name, top in dropped if top]
        if dropped:
            n = len(run.members(run.baseline))
            items = "".join(
                f"<li>{html.escape(name)}: " + ", ".join(f"{html.escape(f)} ({k} of {n})" for f, k in top) + "</li>" for name, top in dropped
            )
            parts.append(f'<p class="note">Inputs whose every first-layer weight is exactly zero (the model ignores them), most often dropped:</p><ul class="note">{items}</ul>')
        parts.append(_figure(figures.to_png(figures.weight_distributions(run)), "The first Dense layer's kernel weights of all seeds, pooled per variant.", "weights"))
    parts.append("</section>")
    return "\n".join(parts)


def render(runs: list[RunData], sections: list[str], title: str = "reglab report") -> str:
    nav = "".join(f'<a href="#{html.escape(r.name)}">{html.escape(r.name)}</a>' for r in runs)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f"<header><h1>{html.escape(title)}</h1><p>reglab {__version__} · {len(runs)} experiment(s) · {stamp}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(sections)}</main></body></html>"
    )


def render_section(folder: str | Path) -> str:
    """One run folder's section (a top-level function, so worker processes can draw sections)."""
    return section(RunData.load(folder))


def write_report(
    folders: list[str | Path],
    out: str | Path,
    title: str = "reglab report",
    sections: dict[str, str] | None = None,
    figures: str | Path | None = None,
) -> Path:
    """Read the run folders, write ``out`` (one HTML file); return its path. ``sections`` maps a
    folder (as given) to its already drawn section. ``figures``: also save every figure there as
    ``<experiment>-<figure>.png``."""
    runs = [RunData.load(f) for f in folders]  # every folder checked before any drawing
    names = [r.name for r in runs]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"report: two run folders hold experiment {name!r}; give each experiment once")
    ready = sections or {}
    sections = [ready[str(f)] if str(f) in ready else section(run) for f, run in zip(folders, runs)]
    out = Path(out)
    text = render(runs, sections, title)
    atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if figures is not None:
        stems = file_stems(names)
        for run, body in zip(runs, sections):
            for alt, data in re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', body):
                png = base64.b64decode(data)
                atomic_write(Path(figures) / f"{stems[run.name]}-{alt.replace(' ', '-')}.png", lambda tmp, png=png: tmp.write_bytes(png))
    return out


def file_stems(names: list[str], limit: int = 60) -> dict[str, str]:
    """A file-name stem for each experiment name: letters, digits, ``.``, ``_`` and ``-`` only (so
    it never leaves its folder: no ``/``, no leading dot), at most ``limit`` characters, and
    unique (``-2``, ``-3``... where two names give the same stem)."""
    out: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:limit].strip(".-") or "experiment"
        unique, n = stem, 1
        while unique in out.values():
            n += 1
            unique = f"{stem}-{n}"
        out[name] = unique
    return out
