"""Small helpers for notebooks: run an experiment and look at it as tables, text and figures.

    from reglab import notebook as nb
    from reglab.report import figures

    run = nb.run("dropout-regression")     # a shipped example, or a path to an experiment file
    nb.summary(run)                         # mean ± 95 % CI per variant, a DataFrame
    nb.paired(run)                          # each technique against the baseline
    nb.findings(run)                        # "what we found", as Markdown
    figures.fitted_curves(run)              # any figure of the report

``REGLAB_NOTEBOOK_SEEDS`` and ``REGLAB_NOTEBOOK_QUICK=1`` (a tenth of the epochs) shrink every run
without editing the notebook; CI runs the example notebooks that way.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd

from .report import RunData
from .report import findings as _findings
from .report import tables as _tables
from .runner import run_experiment
from .spec import Experiment


def run(experiment: str | Path, seeds: int | None = None, quick: bool | None = None, out: str | Path | None = None) -> RunData:
    """Train ``experiment`` (a shipped example's name or an experiment file) into ``out`` (a new
    temporary folder by default) and read the run folder back."""
    path = Path(experiment)
    if path.suffix != ".toml":
        path = Path(str(resources.files("reglab.examples").joinpath(f"{experiment}.toml")))
    raw = tomllib.loads(path.read_text())
    seeds = seeds if seeds is not None else int(os.environ.get("REGLAB_NOTEBOOK_SEEDS", raw.get("seeds", 10)))
    quick = quick if quick is not None else os.environ.get("REGLAB_NOTEBOOK_QUICK", "") not in ("", "0")
    raw["seeds"] = seeds
    if quick:
        raw.setdefault("train", {})
        raw["train"]["epochs"] = max(20, raw["train"].get("epochs", 100) // 10)
    exp = Experiment.from_dict(raw, str(path))
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"reglab-{exp.spec.name}-")) / "run"
    run_experiment(exp, folder)
    return RunData.load(folder)


def summary(run: RunData) -> pd.DataFrame:
    return pd.DataFrame(_tables.summary_rows(run)).set_index("variant")


def paired(run: RunData) -> pd.DataFrame:
    return pd.DataFrame(_tables.comparison_rows(run, _tables.comparisons(run))).set_index("variant − baseline")


def findings(run: RunData):
    """The report's "what we found" sentences, as Markdown for a notebook."""
    from IPython.display import Markdown

    from .report import figures

    weights = _tables.weight_stats(run) if figures.uses_penalty(run) else None
    sentences = _findings.paragraph(run, _tables.comparisons(run), weights)
    return Markdown("\n".join(f"- {s.replace('<', '&lt;')}" for s in sentences))
