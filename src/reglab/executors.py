"""Executors: where tasks train. Each has one method, :meth:`Executor.map`, and ``slots``, how
many tasks it runs at once (what a planner cuts work into).

A task is ``fn(shared[i], item, on_epoch_end)``: ``shared`` holds what many tasks read (a plan
and its data), sent to each process or cluster once; ``item`` is one task's own part (a chunk);
``on_epoch_end(epochs_done, n_training)`` reports the task's progress, ``n_training == 0`` when it
has finished. The caller sees every task's reports through one protocol,
``report(task_number, epochs_done, n_training)``, whichever executor ran it.

- :class:`Serial` runs the tasks here, one after another, as the caller takes their results.
- :class:`Processes` runs them on worker processes with one share of the cores each; the
  workers end with the process that started them, however it ends (even by SIGKILL).
- :class:`reglab.distributed.Cluster` runs them as tasks on a Ray cluster.

Members are pure, so which executor trained a member, and next to whom, changes none of its bits.
This module imports nothing else of reglab.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing.managers import SyncManager
from typing import Any, Protocol

# report(task number, epochs done, networks still training); 0 training: the task finished
Report = Callable[[int, int, int], None]
# fn(shared[i], item, on_epoch_end(epochs_done, n_training)) -> result
Task = Callable[[Any, Any, Callable[[int, int], None] | None], Any]

# A task in another process reports at most this often (seconds), and when it finishes.
REPORT_EVERY_S = 0.2


class Executor(Protocol):
    slots: int

    def map(self, fn: Task, shared: Sequence, items: Sequence[tuple[int, Any]], report: Report | None = None) -> Iterator[tuple[int, Any]]:
        """``(n, fn(shared[i], item, ...))`` for the n-th ``(i, item)``, as each finishes. A
        task's exception is raised once the results that finished with it have been yielded."""
        ...


class Serial:
    """The tasks one after another in this process, each run as the caller asks for its result
    (one result in memory at a time)."""

    slots = 1

    def map(self, fn: Task, shared: Sequence, items: Sequence[tuple[int, Any]], report: Report | None = None) -> Iterator[tuple[int, Any]]:
        for n, (i, item) in enumerate(items):
            on_epoch_end = None if report is None else (lambda done, training, n=n: report(n, done, training))
            yield n, fn(shared[i], item, on_epoch_end)


class Throttled:
    """A task's ``on_epoch_end`` in another process: puts ``(n, epochs_done, n_training)`` on a
    queue every :data:`REPORT_EVERY_S` seconds and when the task finishes. Progress is for the
    eye: a report that cannot be sent is dropped and changes no result."""

    def __init__(self, events, n: int) -> None:
        self.events, self.n, self.last = events, n, 0.0

    def __call__(self, epochs_done: int, n_training: int) -> None:
        now = time.monotonic()
        if n_training and now - self.last < REPORT_EVERY_S:
            return
        self.last = now
        try:
            self.events.put((self.n, epochs_done, n_training))
        except Exception:  # the queue is gone (the driver ended, a node left)
            pass


_SHARED: Sequence = ()  # in a worker process: what its tasks read


def _init_worker(threads: int, shared: Sequence, parent: int) -> None:
    global _SHARED
    import torch

    exit_with_parent(parent)
    torch.set_num_threads(threads)
    _SHARED = shared


def exit_with_parent(parent: int, every: float = 0.2) -> None:
    """End this process, at once, when process ``parent`` is gone (killed with SIGKILL, say, which
    leaves it no chance to stop its workers): a daemon thread watches for this process being
    handed to another parent. A worker then never finishes a chunk nobody will read."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _in_worker(fn: Task, i: int, item, events, n: int):
    return fn(_SHARED[i], item, None if events is None else Throttled(events, n))


class Processes:
    """The tasks on ``workers`` processes (spawned: no state of this one leaks in), each with an
    equal share of the cores; ``shared`` crosses to each process once, when it starts."""

    def __init__(self, workers: int | None = None) -> None:
        self.slots = workers or min(os.cpu_count() or 1, 4)

    def map(self, fn: Task, shared: Sequence, items: Sequence[tuple[int, Any]], report: Report | None = None) -> Iterator[tuple[int, Any]]:
        threads = max(1, (os.cpu_count() or 1) // self.slots)
        context = multiprocessing.get_context("spawn")
        me = os.getpid()
        manager = SyncManager(ctx=context)
        manager.start(exit_with_parent, (me,))  # the progress queue's process: it ends with this one too
        with manager, ProcessPoolExecutor(self.slots, context, _init_worker, (threads, shared, me)) as pool:
            events = manager.Queue() if report else None
            pending = {pool.submit(_in_worker, fn, i, item, events, n): n for n, (i, item) in enumerate(items)}
            try:
                yield from as_they_finish(
                    pending,
                    ready=lambda futures: wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)[0],
                    get=lambda future: future.result(),
                    cancel=lambda future: future.cancel(),
                    drain=lambda: _drain(events, report),
                )
            except BaseException:
                # Ctrl-C, SIGTERM turned into an exception, a failed task: the chunks still
                # training are stopped now rather than finished (nothing would read them).
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                raise


def as_they_finish(pending: dict, *, ready, get, cancel, drain) -> Iterator[tuple[int, Any]]:
    """``(n, result)`` for each handle of ``pending`` (handle -> n) as ``ready(handles)`` says
    it finished (waiting a moment at most), ``drain()`` delivering progress in between. Every
    result that finished with a failed task is yielded before its error is raised; on any error
    (a task's, the caller's, Ctrl-C) the rest are cancelled."""
    try:
        while pending:
            finished = ready(list(pending))
            drain()
            failed = None
            for handle in finished:
                n = pending.pop(handle)
                try:
                    result = get(handle)
                except Exception as err:
                    failed = failed or err
                    continue
                yield n, result
            if failed is not None:
                raise failed
        drain()
    except BaseException:
        for handle in pending:
            cancel(handle)
        raise


def _drain(events, report: Report | None) -> None:
    while events is not None:
        try:
            n, done, training = events.get_nowait()
        except queue_module.Empty:
            return
        report(n, done, training)  # type: ignore[misc]
