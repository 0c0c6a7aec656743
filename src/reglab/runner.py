"""Run an experiment: plan -> engine, one population chunk at a time -> run folder."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pandas as pd

from .chunks import make_chunks, part_name, run_population
from .distributed import Cluster, RayOptions, connected
from .plan import DEFAULT_MEMORY_BUDGET_MB, Plan, make_plan
from .spec import Experiment
from .store import RunFolder

# progress(population_number, n_populations, n_members, epochs) -> on_epoch_end(epoch, n_training)
Progress = Callable[[int, int, int, int], Callable[[int, int], None]]


def run_experiment(
    experiment: Experiment,
    out: str | Path,
    *,
    resume: bool = False,
    restart: bool = False,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    device: str = "cpu",
    progress: Progress | None = None,
    ray: RayOptions | None = None,
) -> pd.DataFrame:
    """Train every member not already in ``out`` and assemble the summary; returns it. With
    ``ray``, the chunks train as tasks on a Ray cluster and this process writes their parts."""
    full = make_plan(experiment, memory_budget_mb)  # before any file is written: bad data fails here
    with ExitStack() as stack:
        cluster = stack.enter_context(connected(ray)) if ray is not None else None  # refusals before any file too
        folder = stack.enter_context(RunFolder.open(out, experiment, resume, full, restart=restart))  # locked until the summary is written
        finished = folder.finished_keys()
        todo = {m.key for m in full.members} - finished
        plan = full.only(todo) if finished else full  # planned once: the data is not loaded again
        if cluster is not None:
            _train_on_ray(plan, folder, cluster, device, progress)
        else:
            for number, population in enumerate(plan.populations, start=1):
                callback = progress(number, len(plan.populations), len(population.members), population.epochs) if progress else None
                rows, history, weights = run_population(plan, population, device, callback)
                folder.write_part(part_name(population), rows, history, weights)
        return folder.finalize([m.key for m in full.members])


def _train_on_ray(plan: Plan, folder: RunFolder, cluster: Cluster, device: str, progress: Progress | None) -> None:
    """The plan's populations, cut into chunks that fill the cluster, as Ray tasks; each chunk's
    bar appears when its first epochs come in."""
    jobs = make_chunks([plan], cluster.slots)
    bars: dict[int, Callable[[int, int], None]] = {}

    def update(n: int, epochs_done: int, n_training: int) -> None:
        if n not in bars:
            bars[n] = progress(n + 1, len(jobs), len(jobs[n].keys), jobs[n].epochs)  # type: ignore[misc]
        bars[n](epochs_done - 1, n_training)

    cluster.run([plan], jobs, device, update if progress else None, lambda n, part: folder.write_part(*part))
