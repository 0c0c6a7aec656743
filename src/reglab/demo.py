"""``reglab demo``: the four origin notebooks over many seeds, and one report.

The experiments are the shipped example files (``reglab example`` names them), so what the demo
runs is what a user can read, copy and change. ``--quick`` keeps every experiment's shape but
trains three seeds for a tenth of the epochs: for tests, not for conclusions.
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from importlib import resources
from pathlib import Path

from .errors import UserError
from .spec import Experiment

EXPERIMENTS = ("dropout-classification", "dropout-regression", "early-stopping", "regularization")
MARKER = "demo.json"


def experiments(seeds: int = 20, quick: bool = False) -> list[Experiment]:
    out = []
    for name in EXPERIMENTS:
        text = resources.files("reglab.examples").joinpath(f"{name}.toml").read_text()
        raw = tomllib.loads(text)
        raw["seeds"] = seeds
        if quick:
            raw["train"]["epochs"] = max(20, raw["train"]["epochs"] // 10)
        out.append(Experiment.from_dict(raw, f"{name}.toml"))
    return out


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"{out}: folder is not empty and holds no earlier demo; choose another --out")


def run_demo(out: str | Path, seeds: int = 20, quick: bool = False, workers: int | None = None, progress=None, say=print, ray=None) -> Path:
    """Run the demo into ``out`` (replacing an earlier demo there only once the new one is whole);
    return the report's path. ``ray`` (RayOptions) trains on a Ray cluster instead of ``workers``."""
    from .runner import run_experiments
    from .report import render_section, write_report

    if seeds < 2:
        raise UserError(f"--seeds: must be an integer >= 2 (the statistics need two seeds), got {seeds}")
    out = Path(out)
    _check_out(out)
    exps = experiments(seeds, quick)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    start = time.perf_counter()
    try:
        folders = [staging / e.spec.name for e in exps]
        # Each experiment's report section is drawn as soon as its training is done, while the
        # others train.
        _, sections = run_experiments(list(zip(exps, folders)), workers=workers, progress=progress, then=render_section, ray=ray)
        title = "reglab demo: the four origin notebooks, over many seeds"
        write_report(folders, staging / "report.html", title=title, sections=sections)
        total = time.perf_counter() - start
        info = {"seeds": seeds, "quick": quick, "total_seconds": round(total, 1)}
        (staging / MARKER).write_text(json.dumps(info, indent=1))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    n = sum(len(e.spec.variant) * len(e.seeds()) for e in exps)
    say(f"{n} networks trained and reported in {total:.0f} s")
    return out / "report.html"
