"""The Ray executor: population chunks as Ray tasks, for experiments that outgrow one machine.

Members are pure, so a chunk of a population gives the same bits on any node. The driver keeps
the run folder: it puts each plan (the data included) into Ray's object store once, submits one
task per chunk, and writes each part atomically as its result comes back, exactly as a local run
does, so ``--resume`` and the report do not know Ray was there. A task whose worker process or
node dies is run again from its start (Ray's ``max_retries``); a retried chunk gives the same
result as the first try would have. Progress comes back through a Ray queue.

Ray is the optional extra ``reglab[ray]``; this module imports it only when used.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .executors import Report, Task, Throttled, as_they_finish

INSTALL = 'pip install "reglab[ray]"'
# How often a chunk is run again after its worker process or node died.
RETRIES = 3
# The resource only Ray's head node has.
HEAD = "node:__internal_head__"


@dataclass(frozen=True)
class RayOptions:
    """Where and how chunks run: ``address`` of a running cluster (None: start a local Ray
    instance with this machine's cores), and the CPUs and GPUs each chunk's task reserves."""

    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0


def require_ray(what: str = "--ray"):
    try:
        import ray
    except ImportError:
        raise UserError(f"{what} needs the ray extra, which is not installed: {INSTALL}") from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse, in one line, an address nothing answers at (``ray.init`` would retry for minutes).
    ``auto`` is Ray's own: the cluster named by ``RAY_ADDRESS`` or running on this machine."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, colon, port = target.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--ray: {address!r} is not an address; give HOST:PORT of a Ray cluster's head (e.g. 127.0.0.1:6379), auto, or no address to start a local one")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            speaks = _speaks_grpc(sock)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(f"--ray: no Ray cluster answers at {address} ({reason}); start one with `ray start --head`, or give no address to start a local one") from None
    if not speaks:
        raise UserError(
            f"--ray: what answers at {address} is not a Ray cluster's head (it does not speak gRPC); "
            "give the head's GCS address (port 6379 unless `ray start --head --port` said otherwise)"
        )


# An HTTP/2 client's opening: the preface and an empty SETTINGS frame.
_HTTP2_OPENING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(sock: socket.socket) -> bool:
    """Whether the server on ``sock`` answers an HTTP/2 opening with a SETTINGS frame, as every
    gRPC server (a Ray head's GCS, Ray Client) must. Something else there would leave ``ray.init``
    retrying for minutes."""
    sock.sendall(_HTTP2_OPENING)
    header = b""
    while len(header) < 9:  # a frame header: length (3), type (1), flags (1), stream (4)
        chunk = sock.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == 4  # SETTINGS


@contextmanager
def connected(options: RayOptions) -> Iterator[Cluster]:
    """The cluster, joined: the one this process already joined (a notebook's or a test's
    ``ray.init``), else the one at ``options.address``, else a new local instance with this
    machine's cores, shut down after. Every refusal comes before the caller writes anything."""
    ray = require_ray()
    if options.address:
        check_address(options.address)
    started = not ray.is_initialized()
    if started:
        with _stderr_to_file() as log:
            try:
                ray.init(address=options.address or "local", logging_level="error", log_to_driver=False, include_dashboard=False)
            except (ConnectionError, RuntimeError, TimeoutError) as err:  # no Ray there, another Ray version...
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                what = f"join the Ray cluster at {options.address}" if options.address else "start a local Ray instance"
                raise UserError(f"--ray: cannot {what}: {reason} (Ray's own messages: {log})") from None
    try:
        yield Cluster(ray, options)
    finally:
        if started:
            ray.shutdown()


@contextmanager
def _stderr_to_file() -> Iterator[str]:
    """Send what is written to this process's standard error (Ray's C++ core writes its retries
    there, ~20 lines for an address that is not a Ray head) to a file while joining; yields its
    path, for a message that says where to look (the file is removed when joining succeeds)."""
    import os
    import sys
    import tempfile

    sys.stderr.flush()
    fd, path = tempfile.mkstemp(prefix="reglab-ray-", suffix=".log")
    saved = os.dup(2)
    os.dup2(fd, 2)
    failed = True
    try:
        yield path
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        if not failed:  # kept only for the message of a failed join
            os.unlink(path)


class Cluster:
    """A joined Ray cluster and the resources each chunk's task asks of it: an executor
    (:mod:`reglab.executors`) whose ``slots`` are the tasks the cluster's nodes fit at once."""

    def __init__(self, ray, options: RayOptions) -> None:
        self.ray = ray
        self.options = options
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        where = f"the Ray cluster at {options.address}" if options.address else "the Ray cluster"
        for flag, resource, wanted in (("--ray-cpus", "CPU", options.cpus), ("--ray-gpus", "GPU", options.gpus)):
            largest = max((n.get(resource, 0.0) for n in nodes), default=0.0)
            if wanted > largest and largest == 0:
                instead = "train on --device cpu" if resource == "GPU" else "add nodes with CPUs"
                raise UserError(f"{flag}: each chunk asks for {wanted:g} {resource}, but no node of {where} has one; {instead}")
            if wanted > largest:
                raise UserError(f"{flag}: each chunk asks for {wanted:g} {resource}, but the largest node of {where} has {largest:g}; ask for at most that")
        # How many chunks run at once (what planners cut populations into): per node, as many as
        # both its CPUs and its GPUs allow.
        self.slots = sum(self._fits(n) for n in nodes)
        if self.slots == 0:
            raise UserError(
                f"--ray-cpus/--ray-gpus: each chunk asks for {options.cpus:g} CPU and {options.gpus:g} GPU, "
                f"but no node of {where} has both; ask for fewer CPUs per chunk"
            )

    def _fits(self, node: dict) -> int:
        """How many chunks' tasks fit on a node with these resources at once."""
        cpus = int(node.get("CPU", 0.0) // self.options.cpus)
        return min(cpus, int(node.get("GPU", 0.0) // self.options.gpus)) if self.options.gpus else cpus

    def map(self, fn: Task, shared: Sequence, items: Sequence[tuple[int, Any]], report: Report | None = None) -> Iterator[tuple[int, Any]]:
        """The executor's one method (:class:`reglab.executors.Executor`): every task as a Ray
        task, each ``shared`` value put into the object store once; results as they arrive."""
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, options = self.ray, self.options
        refs = [ray.put(value) for value in shared]  # each plan's data crosses to the cluster once
        # The queue's actor reserves no CPU and lives on the head node, which the cluster cannot
        # lose and go on (on a worker node, losing that node would end the progress reports).
        head = next((n["NodeID"] for n in ray.nodes() if n["Alive"] and HEAD in n["Resources"]), ray.get_runtime_context().get_node_id())
        placement = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(head, soft=False)}
        events = Queue(actor_options=placement) if report else None
        task = _remote(ray).options(num_cpus=options.cpus, num_gpus=options.gpus, max_retries=RETRIES)
        threads = max(1, int(options.cpus))
        pending = {task.remote(fn, refs[i], item, threads, events, n): n for n, (i, item) in enumerate(items)}
        try:
            yield from as_they_finish(
                pending,
                ready=lambda refs: ray.wait(refs, num_returns=len(refs), timeout=0.25)[0],
                get=ray.get,
                cancel=lambda ref: ray.cancel(ref, force=True),
                drain=lambda: _drain(events, report),
            )
        finally:
            if events is not None:
                events.shutdown()


def _train_chunk(fn: Task, shared, item, threads: int, events, n: int):
    """On a Ray worker: one task (named so that ``ps`` shows a worker busy training)."""
    import torch

    torch.set_num_threads(threads)
    return fn(shared, item, None if events is None else Throttled(events, n))


@functools.cache
def _remote(ray):
    return ray.remote(_train_chunk)


def _drain(events, report: Report | None) -> None:
    if events is None:
        return
    try:
        reports = events.get_nowait_batch(events.qsize())
    except Exception:  # the queue's actor is gone (its node left): the bars stop, the run goes on
        return
    for n, done, training in reports:
        report(n, done, training)  # type: ignore[misc]
