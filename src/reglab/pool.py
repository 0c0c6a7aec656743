"""Several experiments at once on a few worker processes, each population chunk a job.

Small networks leave a CPU's cores idle: the per-step cost is mostly dispatch, which one thread
does. So ``run_experiments`` plans every experiment first (bad input fails before anything is
written), cuts the largest populations into chunks so the workers finish together, and hands the
jobs out longest first to ``workers`` processes with one thread each. Members are pure, so the
chunking and which worker trains whom change no result. Each experiment's run folder is assembled
as soon as its last job is in.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from .chunks import Chunk, make_chunks, part_name, run_population
from .distributed import RayOptions, connected
from .plan import DEFAULT_MEMORY_BUDGET_MB, Plan, make_plan
from .spec import Experiment
from .store import RunFolder

def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_job(experiment: Experiment, folder: str, keys: list[str], budget: float, device: str, events, job_id: int) -> int:
    """In a worker: train the members ``keys`` of one experiment into its run folder."""
    plan = make_plan(experiment, budget, only=set(keys))
    out = RunFolder(Path(folder))
    last = [-1]

    def on_epoch_end(epoch: int, n_training: int) -> None:
        if events is not None and (n_training == 0 or epoch - last[0] >= 10):
            last[0] = epoch
            events.put((job_id, epoch + 1, n_training))

    for population in plan.populations:
        rows, history, weights = run_population(plan, population, device, on_epoch_end)
        out.write_part(part_name(population), rows, history, weights)
    return len(keys)


# progress(jobs) -> update(job_id, epochs_done, n_training); the job finished when n_training == 0
Progress = Callable[[list[Chunk]], Callable[[int, int, int], None]]


def run_experiments(
    runs: list[tuple[Experiment, Path]],
    *,
    workers: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str = "cpu",
    progress: Progress | None = None,
    then: Callable[[str], Any] | None = None,
    ray: RayOptions | None = None,
) -> tuple[list[pd.DataFrame], dict[str, Any]]:
    """Train every experiment into its (new, empty) run folder. Returns their summaries in order
    and, when ``then`` is given (a picklable function of a run folder's path, such as drawing its
    report section), ``{folder: then(folder)}``, computed on the workers as each folder completes.
    With ``ray``, the jobs are tasks on a Ray cluster instead (``workers`` unused) and ``then``
    runs in this process, which holds the run folders."""
    workers = workers or min(os.cpu_count() or 1, 4)
    plans = [make_plan(e, memory_budget_mb) for e, _ in runs]  # every input error before any file
    with ExitStack() as stack:
        cluster = stack.enter_context(connected(ray)) if ray is not None else None
        # Opened (and locked) by this process; the workers only add parts.
        folders = [stack.enter_context(RunFolder.open(out, e, resume=False, plan=p)) for (e, out), p in zip(runs, plans)]
        jobs = make_chunks(plans, cluster.slots if cluster else workers)
        done = _Assembly(runs, plans, folders, jobs)
        update = progress(jobs) if progress else None
        if cluster is None:
            _train_all(runs, jobs, done, workers, memory_budget_mb, device, update, then)
        else:

            def part_in(n: int, part: tuple) -> None:
                folders[jobs[n].run].write_part(*part)
                folder = done(n)
                if folder is not None and then is not None:
                    done.after[folder] = then(folder)

            cluster.run(plans, jobs, device, update, part_in)
        return done.summaries, done.after  # type: ignore[return-value]


class _Assembly:
    """Counts each experiment's jobs in and assembles its run folder once the last one is."""

    def __init__(self, runs, plans: list[Plan], folders: list[RunFolder], jobs: list[Chunk]) -> None:
        self.runs, self.plans, self.folders, self.jobs = runs, plans, folders, jobs
        self.left = {i: sum(j.run == i for j in jobs) for i in range(len(runs))}
        self.summaries: list[pd.DataFrame | None] = [None] * len(runs)
        self.after: dict[str, Any] = {}

    def __call__(self, n: int) -> str | None:
        """Chunk ``n`` is in; the path of its run folder when that completed it."""
        run = self.jobs[n].run
        self.left[run] -= 1
        if self.left[run]:
            return None
        self.summaries[run] = self.folders[run].finalize([m.key for m in self.plans[run].members])
        return str(self.runs[run][1])


def _train_all(runs, jobs, done, workers, memory_budget_mb, device, update, then) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(workers, context, _init_worker, (threads,)) as pool:
        events = manager.Queue() if update else None
        pending: dict = {
            pool.submit(_run_job, runs[j.run][0], str(done.folders[j.run].path), j.keys, memory_budget_mb, device, events, n): n
            for n, j in enumerate(jobs)
        }
        try:
            while pending:
                finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(events, update)
                for future in finished:
                    n = pending.pop(future)
                    result = future.result()  # a worker's exception surfaces here
                    if isinstance(n, str):  # a `then` job
                        done.after[n] = result
                        continue
                    if update:
                        update(n, jobs[n].epochs, 0)
                    folder = done(n)
                    if folder is not None and then is not None:
                        pending[pool.submit(then, folder)] = folder
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def _drain(events, update) -> None:
    if events is None:
        return
    while True:
        try:
            job, epoch, training = events.get_nowait()
        except queue_module.Empty:
            return
        update(job, epoch, training)
