"""The orchestrator: experiments -> plans -> chunks -> an executor -> run folders.

Every way of training goes through :func:`run_experiments`: ``reglab run`` (one experiment, here,
resumable), ``reglab demo`` (four experiments on worker processes) and both with ``--ray``. It
plans every experiment first (bad input fails before anything is written), joins the executor,
opens each run folder, cuts what is left to train into chunks for the executor's slots, writes
each chunk's part as it comes in and assembles a run folder once its last part is in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pandas as pd

from .chunks import Chunk, make_chunks, train_chunk
from .distributed import RayOptions, connected
from .executors import Executor, Processes, Report, Serial
from .plan import DEFAULT_MEMORY_BUDGET_MB, make_plan
from .spec import Experiment
from .store import RunFolder

# progress(chunks) -> report(chunk number, epochs done, networks still training): one protocol
# for every executor; a chunk has finished when its report says 0 training.
Progress = Callable[[list[Chunk]], Report]


@contextmanager
def executor(workers: int | None = 1, ray: RayOptions | None = None) -> Iterator[Executor]:
    """Where chunks train: a Ray cluster (joined, and left after), ``workers`` worker processes
    (None: one per core, up to 4), or this process (1). A refusal (no Ray, no such cluster)
    comes before anything is written."""
    if ray is not None:
        with connected(ray) as cluster:
            yield cluster
    else:
        yield Serial() if workers == 1 else Processes(workers)


def run_experiments(
    runs: list[tuple[Experiment, str | Path]],
    *,
    workers: int | None = 1,
    ray: RayOptions | None = None,
    resume: bool = False,
    restart: bool = False,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str = "cpu",
    progress: Progress | None = None,
    then: Callable[[str], Any] | None = None,
) -> tuple[list[pd.DataFrame], dict[str, Any]]:
    """Train every member not already in its run folder; returns each experiment's summary, in
    order, and, when ``then`` is given (a function of a run folder's path, such as drawing its
    report section), ``{folder: then(folder)}``, computed on a thread here as each run folder
    completes while the others train."""
    plans = [make_plan(e, memory_budget_mb) for e, _ in runs]  # every input error before any file
    with ExitStack() as stack:
        chosen = stack.enter_context(executor(workers, ray))
        # Opened and locked here until each summary is written; the executors only train.
        folders = [stack.enter_context(RunFolder.open(out, e, resume, p, restart=restart)) for (e, out), p in zip(runs, plans)]
        todo = []
        for plan, folder in zip(plans, folders):
            finished = folder.finished_keys()
            todo.append(plan.only({m.key for m in plan.members} - finished) if finished else plan)  # planned once
        chunks = make_chunks(todo, chosen.slots)
        left = [sum(c.run == i for c in chunks) for i in range(len(runs))]
        summaries: list[pd.DataFrame | None] = [None] * len(runs)
        drawing = stack.enter_context(ThreadPoolExecutor(1) if then else nullcontext())
        after: dict[str, Future] = {}

        def complete(i: int) -> None:
            summaries[i] = folders[i].finalize([m.key for m in plans[i].members])
            if then is not None:
                after[str(runs[i][1])] = drawing.submit(then, str(runs[i][1]))

        for i in range(len(runs)):
            if not left[i]:  # nothing left to train (a resumed run that had finished)
                complete(i)
        task = functools.partial(train_chunk, device=device)
        report = progress(chunks) if progress else None
        for n, part in chosen.map(task, todo, [(c.run, c) for c in chunks], report):
            i = chunks[n].run
            folders[i].write_part(part)
            left[i] -= 1
            if not left[i]:
                complete(i)
        return summaries, {folder: future.result() for folder, future in after.items()}  # type: ignore[return-value]


def run_experiment(experiment: Experiment, out: str | Path, **options) -> pd.DataFrame:
    """Train one experiment into ``out`` (:func:`run_experiments`' options); returns its summary."""
    summaries, _ = run_experiments([(experiment, out)], **options)
    return summaries[0]
