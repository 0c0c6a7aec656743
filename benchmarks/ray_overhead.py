"""What Ray costs reglab on one machine: start-up, per-task overhead, and a sweep run locally and
as Ray tasks (the README's "Past one machine: Ray" section derives cluster estimates from these).

    python benchmarks/ray_overhead.py [--seeds 20] [--epochs 2000] [--cpus 2]
    python benchmarks/ray_overhead.py --estimate-only K_NS   # the cluster table alone, from K_NS

The sweep is the shipped dropout-sweep example (8 dropout rates x seeds, 2-128-128-1). It is cut
into the chunks `reglab run --ray` makes for a cluster of --cpus CPUs; each chunk is first timed
here, one after the other on one thread (what one Ray task does), then the whole run goes
through a local Ray instance. On two cores expect no speed-up over the worker pool: the point is
the overhead.

Last, the estimate: how the sweep (at its own 2000 epochs) and a 100x larger one (100x the seeds)
would run on N nodes of C cores, if each core trains a one-thread chunk as fast as one here. A
chunk of m networks costs steps x k x (m x P + STEP_OVERHEAD) (the planner's cost model), k
fitted to the chunks timed here; the chunks are the ones `--ray` would make (the real planner, at
the default memory budget), given to the slots longest first, plus the measured start-ups.
"""

from __future__ import annotations

import argparse
import heapq
import os
import statistics
import tempfile
import time
import tomllib
from importlib import resources
from pathlib import Path

import torch

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local instance on 127.0.0.1

from reglab.distributed import RayOptions  # noqa: E402
from reglab.plan import make_plan  # noqa: E402
from reglab.pool import make_jobs, population_cost  # noqa: E402
from reglab.runner import run_experiment, run_population  # noqa: E402
from reglab.spec import Experiment  # noqa: E402


def sweep(seeds: int, epochs: int) -> Experiment:
    raw = tomllib.loads(resources.files("reglab.examples").joinpath("dropout-sweep.toml").read_text())
    raw["seeds"] = seeds
    raw["train"]["epochs"] = epochs
    return Experiment.from_dict(raw, "dropout-sweep.toml")


def task_overhead(ray, n: int = 300) -> tuple[float, float]:
    """Seconds per empty task: submitted and awaited one at a time, and all submitted at once."""

    @ray.remote
    def nothing(x):
        return x

    ray.get(nothing.remote(0))
    start = time.perf_counter()
    for i in range(n):
        ray.get(nothing.remote(i))
    one_by_one = (time.perf_counter() - start) / n
    start = time.perf_counter()
    ray.get([nothing.remote(i) for i in range(n)])
    return one_by_one, (time.perf_counter() - start) / n


CLUSTERS = [(1, 2), (1, 16), (4, 16), (10, 16)]  # nodes x cores


def makespan_of(times: list[float], slots: int) -> float:
    """Chunks given longest first to whichever of ``slots`` frees first (what Ray's queue does)."""
    ends = [0.0] * slots
    for t in sorted(times, reverse=True):
        heapq.heappush(ends, heapq.heappop(ends) + t)
    return max(ends)


def estimate(k: float, startup: float) -> None:
    """The README's table: each sweep on each cluster, in seconds, from k (s per member-parameter-step)."""
    print(f"estimate (k = {1e9 * k:.1f} ns, start-up {startup:.0f} s): sweep, then per N x C: chunks x networks -> time")
    for scale in (1, 100):
        plan = make_plan(sweep(20 * scale, 2000))
        cells = []
        for nodes, cores in CLUSTERS:
            jobs = make_jobs([plan], nodes * cores)
            times = [k * population_cost(plan, j.population) for j in jobs]
            sizes = sorted({len(j.keys) for j in jobs})
            cells.append(f"{nodes}x{cores}: {len(jobs)} x {sizes[0]}-{sizes[-1]} -> {startup + makespan_of(times, nodes * cores):.0f} s")
        print(f"  {len(plan.members)} networks: " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray instance (default: this machine's)")
    parser.add_argument("--estimate-only", type=float, default=None, metavar="K_NS", help="print only the cluster estimate, for k in ns")
    parser.add_argument("--startup", type=float, default=8.0, help="seconds of start-up added to each estimate (Ray's and the workers')")
    args = parser.parse_args()
    if args.estimate_only is not None:
        estimate(args.estimate_only * 1e-9, args.startup)
        return
    experiment = sweep(args.seeds, args.epochs)
    plan = make_plan(experiment)
    jobs = make_jobs([plan], args.cpus)
    print(f"sweep: {len(plan.members)} networks x {args.epochs} epochs in {len(jobs)} chunks of {[len(j.keys) for j in jobs]} networks")

    torch.set_num_threads(1)
    times = []
    for job in jobs:
        start = time.perf_counter()
        run_population(plan, job.population)
        times.append(time.perf_counter() - start)
    makespan = makespan_of(times, args.cpus)
    k = statistics.mean(t / population_cost(plan, j.population) for t, j in zip(times, jobs))
    print(f"local, one thread, chunk after chunk: {sum(times):.1f} s (chunks {', '.join(f'{t:.1f}' for t in times)} s); k = {1e9 * k:.1f} ns")
    print(f"  so on {args.cpus} CPUs, longest first: {makespan:.1f} s")

    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, logging_level="error", log_to_driver=False, include_dashboard=False)

    @ray.remote
    def ready():
        return None

    ray.get(ready.remote())
    print(f"ray start-up (ray.init and a first task): {time.perf_counter() - start:.1f} s")
    one_by_one, pipelined = task_overhead(ray)
    print(f"ray per-task overhead: {1e3 * one_by_one:.1f} ms awaited one at a time, {1e3 * pipelined:.2f} ms submitted together")

    # The first run's workers import torch and reglab (once per worker process); the second's are warm.
    walls = []
    for run in ("cold", "warm"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_experiment(experiment, Path(tmp) / "ray", ray=RayOptions(cpus=1))
            walls.append(time.perf_counter() - start)
        print(f"reglab run --ray on {args.cpus} CPUs, {run} workers: {walls[-1]:.1f} s ({walls[-1] - makespan:+.1f} s against the timed chunks, longest first)")
    per_chunk = (walls[1] - makespan) * args.cpus / len(jobs)
    print(f"  mean chunk {statistics.mean(times):.2f} s; overhead per chunk (warm) {per_chunk:.3f} s; worker start-up (cold - warm) {walls[0] - walls[1]:.1f} s")
    ray.shutdown()

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_experiment(experiment, Path(tmp) / "local")
        print(f"reglab run (one process, all cores, one population): {time.perf_counter() - start:.1f} s")
    estimate(k, args.startup)


if __name__ == "__main__":
    main()
