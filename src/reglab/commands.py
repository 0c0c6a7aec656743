"""What each ``reglab`` subcommand does (the parser and exit codes live in cli.py).

Each command imports what it needs when it runs (rich, torch, pandas, ...): ``reglab validate``
loads no progress bars, tables or report code.
"""

from __future__ import annotations

import functools
import io
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


@functools.cache
def err_console() -> Console:
    """The console on stderr for progress and messages."""
    from rich.console import Console

    return Console(stderr=True)


def run(args) -> int:
    from .plan import DEFAULT_MEMORY_BUDGET_MB
    from .runner import run_experiment
    from .spec import Experiment

    if args.resume and args.restart:
        raise UserError("--resume and --restart: give one (finish the run in --out, or discard it and start over)")
    experiment = Experiment.from_file(args.experiment)
    _check_device(args.device, here=args.ray is None)  # with --ray, the cluster's nodes hold the GPUs
    budget = args.memory_mb if args.memory_mb is not None else DEFAULT_MEMORY_BUDGET_MB
    if not 0 < budget < float("inf"):
        raise UserError(f"--memory-mb: must be a finite number > 0, got {args.memory_mb}")
    ray = ray_options(args, args.device)
    start = time.perf_counter()
    bars = None if args.quiet else ChunkBars()
    try:
        summary = run_experiment(experiment, args.out, resume=args.resume, restart=args.restart, memory_budget_mb=budget, device=args.device, progress=bars, ray=ray)
    finally:
        if bars is not None:
            bars.close()
    if not args.quiet:
        err_console().print(f"{len(summary)} networks in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


def demo(args) -> int:
    import sys

    from .demo import run_demo

    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 20)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be an integer >= 1, got {args.workers}")
    ray = ray_options(args, "cpu")
    if ray is not None and args.workers is not None:
        raise UserError(f"--workers {args.workers} and --ray: give one (worker processes here, or tasks on a Ray cluster)")
    bars = None if args.quiet else ChunkBars()
    try:
        path = run_demo(args.out, seeds=seeds, quick=args.quick, workers=args.workers, progress=bars, say=lambda s: err_console().print(s), ray=ray)
    finally:
        if bars is not None:
            bars.close()
    print(f"report: {path}", file=sys.stdout)
    return 0


def report(args) -> int:
    from pathlib import Path

    from .report import write_report

    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise UserError(f"--out: {out} is a folder; give the HTML file to write, e.g. {out / 'report.html'}")
    if args.figures is not None and Path(args.figures).exists() and not Path(args.figures).is_dir():
        raise UserError(f"--figures: {args.figures} exists and is not a folder")
    path = write_report(args.run_folders, out, figures=args.figures)
    print(f"report: {path}")
    return 0


def ray_options(args, device: str):
    """``--ray``, ``--ray-cpus`` and ``--ray-gpus`` checked, as the runner's options (None: no Ray)."""
    from .distributed import RayOptions, require_ray

    ray_gpus = getattr(args, "ray_gpus", None)  # `reglab demo` trains on the CPU
    if args.ray is None:
        for flag, value in (("--ray-cpus", args.ray_cpus), ("--ray-gpus", ray_gpus)):
            if value is not None:
                raise UserError(f"{flag} {value:g}: only with --ray (it sets what each Ray task reserves)")
        return None
    cpus = 1.0 if args.ray_cpus is None else args.ray_cpus
    if not 0 < cpus < float("inf"):
        raise UserError(f"--ray-cpus: must be a number > 0, got {args.ray_cpus:g}")
    cuda = device.startswith("cuda")
    if ray_gpus is not None and not cuda:
        raise UserError(f"--ray-gpus {ray_gpus:g}: only with --device cuda (the chunks train on {device})")
    if cuda and device != "cuda":
        raise UserError(f"--device {device}: with --ray give cuda (each task trains on the GPU Ray gives it)")
    gpus = (1.0 if ray_gpus is None else ray_gpus) if cuda else 0.0
    if cuda and not 0 < gpus < float("inf"):
        raise UserError(f"--ray-gpus: must be a number > 0 (a fraction shares a GPU between tasks), got {ray_gpus:g}")
    require_ray()
    return RayOptions(address=args.ray or None, cpus=cpus, gpus=gpus)


def _check_device(device: str, here: bool = True) -> None:
    """A device torch names; with ``here``, one this machine has."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UserError(f"--device: must be cpu, cuda or cuda:<index>, got {device!r}") from None
    if kind not in ("cpu", "cuda"):
        raise UserError(f"--device: must be cpu, cuda or cuda:<index>, got {device!r}")
    if here and kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device: {device!r} is not available on this machine (torch {torch.__version__} sees no GPU); use cpu")


class ChunkBars:
    """One rich progress bar per chunk (epochs, networks still training, time left), shown once
    the chunk starts: the progress of ``reglab run`` and ``reglab demo`` on any executor. The
    display starts with the first chunk, so errors found while planning print alone."""

    def __init__(self) -> None:
        self.bars: Progress | None = None

    def __call__(self, chunks) -> Callable[[int, int, int], None]:
        """The report of ``chunks``: ``report(n, epochs_done, n_training)``."""
        bars = [self.add(f"{c.label} ({len(c.keys)} networks)", len(c.keys), c.epochs, start=False) for c in chunks]
        return lambda n, epochs_done, n_training: bars[n](epochs_done, n_training)

    def add(self, label: str, n_networks: int, epochs: int, start: bool = True) -> Callable[[int, int], None]:
        """A bar; returns its ``update(epochs_done, n_training)`` (0 training: finished)."""
        if self.bars is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bars

            self.bars = Bars(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("epochs · {task.fields[training]} training"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console(),
            )
            self.bars.start()
        bars = self.bars
        task = bars.add_task(label, total=epochs, training=n_networks, start=start)

        def update(epochs_done: int, n_training: int) -> None:
            if not start and not bars.tasks[task].started:
                bars.start_task(task)
            bars.update(task, completed=epochs_done, training=n_training)
            if n_training == 0:
                bars.update(task, total=epochs_done)

        return update

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()


class StageBars:
    """``reglab tune``'s progress: one bar per stage (a rung, the final comparison) over all its
    chunks, their epochs weighted by each chunk's cost, with the time left."""

    def __init__(self) -> None:
        self.bars = ChunkBars()

    def __call__(self, stage: str):
        def progress(chunks) -> Callable[[int, int, int], None] | None:
            if not chunks:  # a resumed stage with nothing left to train: no bar
                return None
            total = sum(c.cost for c in chunks) or 1.0
            epochs = max((c.epochs for c in chunks), default=1)
            networks = sum(len(c.keys) for c in chunks)
            bar = self.bars.add(f"{stage} ({networks} networks)", networks, epochs)
            done = [0.0] * len(chunks)
            training = [len(c.keys) for c in chunks]

            def report(n: int, epochs_done: int, n_training: int) -> None:
                done[n] = chunks[n].cost * (1.0 if n_training == 0 else epochs_done / chunks[n].epochs)
                training[n] = n_training
                left = sum(training)
                bar(epochs if not left else min(epochs - 1, round(epochs * sum(done) / total)), left)

            return report

        return progress

    def close(self) -> None:
        self.bars.close()


def tune(args) -> int:
    from pathlib import Path

    from .tuner import TuneArgs, answer, tune_folder

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be an integer >= 1, got {args.workers}")
    ray = ray_options(args, "cpu")
    if ray is not None and args.workers is not None:
        raise UserError(f"--workers {args.workers} and --ray: give one (worker processes here, or tasks on a Ray cluster)")
    data = Path(args.data)
    if not data.is_file():
        raise UserError(f"{data}: no such file")
    tune_args = TuneArgs(str(data.resolve()), args.target, args.features, args.task, args.budget_minutes, args.seeds, args.engine)
    bars = None if args.quiet else StageBars()
    say = (lambda s: None) if args.quiet else (lambda s: err_console().print(s))
    try:
        search = tune_folder(tune_args, args.out, resume=args.resume, workers=args.workers, ray=ray, progress=bars, say=say)
    finally:
        if bars is not None:
            bars.close()
    print(f"leaderboard: {Path(args.out) / 'leaderboard.csv'}  best: {Path(args.out) / 'best.toml'}  report: {Path(args.out) / 'report.html'}")
    print(answer(search).line)
    return 0


def show(args) -> int:
    """The report's summary table (:func:`reglab.report.tables.summary_rows`: the same numbers,
    by the same rules) in the terminal."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from .report.rundata import RunData
    from .report.tables import summary_rows

    rows = summary_rows(RunData.load(args.run_folder))
    headings = [h for h in rows[0] if h != "variant"]

    def table(title: str, columns: list[str]) -> Table:
        t = Table(title=escape(title))
        t.add_column("variant", overflow="fold")
        for c in columns:
            t.add_column(c, justify="left" if c == "stopped by" else "right", no_wrap=c != "stopped by")
        for row in rows:
            t.add_row(Text(row["variant"]), *[row[c] for c in columns])  # the user's text, never rich markup
        return t

    title = f"{args.run_folder}: mean ± 95 % CI across seeds"
    wide = table(title, headings)
    console = Console()
    natural = Console(width=10_000, file=io.StringIO()).measure(wide).maximum  # every cell on one line
    if not (console.is_terminal or "COLUMNS" in os.environ):
        Console(width=max(120, natural)).print(wide)  # piped: whole, one line per variant
        return 0
    if natural <= console.width:
        console.print(wide)
        return 0
    # Too wide for the terminal: one table per split, then the gap and how training ended.
    splits = [[h for h in headings if h.startswith(s)] for s in ("train", "validation", "test", "MC dropout")]
    rest = [h for h in headings if h not in sum(splits, ["seeds"])]
    for i, columns in enumerate(c for c in splits if c):
        console.print(table(title if i == 0 else "", (["seeds"] if i == 0 else []) + columns))
    console.print(table("", rest))
    return 0


def datasets(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from .data import BUILTINS, GENERATORS, load_builtin

    table = Table(title=escape("built-in datasets (generators take parameters in [data.params])"))
    for col in ("name", "rows", "features", "task", "description"):
        table.add_column(col)
    for name in BUILTINS:
        d = load_builtin(name)
        task = d.task if d.task == "regression" else f"{d.task} ({d.n_classes} classes)"
        description = d.description + (" [generator]" if name in GENERATORS else "")
        table.add_row(name, str(len(d.X)), str(d.X.shape[1]), task, Text(description))
    Console(width=160).print(table)
    return 0


def techniques(args) -> int:
    from . import catalog

    if args.markdown:
        print(catalog.markdown(), end="")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=200)
    for title, columns, rows in (
        ("techniques (each declared in src/reglab/engine/techniques/)", catalog.TECHNIQUE_COLUMNS, catalog.technique_rows()),
        ("their settings: keys of a [[variant]]", catalog.SETTING_COLUMNS, catalog.setting_rows()),
    ):
        table = Table(title=escape(title))
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(v) for v in row))
        console.print(table)
    return 0


def playground(args) -> int:
    import socket

    try:
        from .playground.server import serve
    except ImportError as err:
        raise UserError(f'reglab playground needs the playground extra ({err.name} is missing): pip install "reglab[playground]"') from None
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port: must be an integer in [1, 65535], got {args.port}")
    try:
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            probe.bind((args.host, args.port))
    except OSError as err:
        raise UserError(f"--host/--port: cannot listen on {args.host}:{args.port} ({err.strerror}); pick another with --port or --host") from None
    import torch

    torch.set_num_threads(1)  # small networks: one thread dispatches faster than several
    serve(args.host, args.port, open_browser=not args.no_browser, log=lambda line: print(line, flush=True))
    return 0


def validate(args) -> int:
    from .plan import make_plan
    from .spec import Experiment

    experiment = Experiment.from_file(args.experiment)
    plan = make_plan(experiment)
    print(
        f"{args.experiment}: ok: {len(experiment.spec.variant)} variants x {len(experiment.seeds())} seeds = "
        f"{len(plan.members)} networks in {len(plan.populations)} population(s); "
        f"data {plan.data.name} ({len(plan.data.X)} rows, {plan.arch.task})"
    )
    if plan.data.task_reason:
        print(f"task: {plan.arch.task} ({plan.data.task_reason})")
    return 0
