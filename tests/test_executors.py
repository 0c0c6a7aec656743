"""The executors' one method: the same results and the same progress protocol on each; a failed
task's finished neighbours are still delivered and the rest cancelled; worker processes end with
the process that started them."""

import os
import signal
import subprocess
import sys
import time

import pytest

from reglab.executors import Processes, Serial, as_they_finish


def count(shared, item, on_epoch_end):
    """A task: ``item`` epochs of adding ``shared``; reports each epoch, 0 training at the end."""
    total = 0
    for epoch in range(1, item + 1):
        total += shared
        if on_epoch_end is not None:
            on_epoch_end(epoch, 0 if epoch == item else 2)
    return total


@pytest.mark.parametrize("executor", [Serial(), Processes(2)], ids=["serial", "processes"])
def test_every_executor_gives_each_task_s_result_and_its_last_report(executor):
    reports: dict[int, list] = {}
    items = [(0, 3), (1, 5), (0, 1), (1, 2)]
    results = dict(executor.map(count, [10, 100], items, lambda n, done, training: reports.setdefault(n, []).append((done, training))))
    assert results == {0: 30, 1: 500, 2: 10, 3: 200}
    # Every task's reports reach the caller, the last one saying it has finished.
    assert {n: r[-1] for n, r in reports.items()} == {0: (3, 0), 1: (5, 0), 2: (1, 0), 3: (2, 0)}


def test_serial_runs_a_task_only_when_its_result_is_asked_for():
    seen = []
    results = Serial().map(lambda shared, item, _: seen.append(item) or item, [None], [(0, "a"), (0, "b")])
    assert seen == [] and next(results) == (0, "a") and seen == ["a"]


def test_a_failed_task_s_finished_neighbours_come_first_and_the_rest_are_cancelled():
    handles = {"ok": 0, "bad": 1, "later": 2}
    cancelled = []

    def get(handle):
        if handle == "bad":
            raise RuntimeError("boom")
        return handle.upper()

    got = []
    with pytest.raises(RuntimeError, match="boom"):
        for n, result in as_they_finish(dict(handles), ready=lambda h: [x for x in h if x != "later"], get=get, cancel=cancelled.append, drain=lambda: None):
            got.append((n, result))
    assert got == [(0, "OK")] and cancelled == ["later"]


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` alive now (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, parent in parents.items() if parent == p}
        out |= kids
        todo += list(kids)
    return out


def _spawned(pids: set[int]) -> set[int]:
    """Those of ``pids`` that multiprocessing spawned (workers, a manager; not its resource tracker)."""
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    out.add(pid)
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
@pytest.mark.parametrize("command, sig", [("demo", signal.SIGKILL), ("demo", signal.SIGINT), ("tune", signal.SIGTERM)], ids=["demo-SIGKILL", "demo-SIGINT", "tune-SIGTERM"])
def test_workers_end_with_their_parent(tmp_path, command, sig):
    """`reglab demo` or `reglab tune` killed while its two workers train: within a few seconds none
    is left (before, they trained their chunk to the end first)."""
    if command == "demo":
        args = ["demo", "--out", str(tmp_path / "demo"), "--workers", "2", "--quiet"]
    else:
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer(as_frame=True).frame
        data.to_csv(tmp_path / "data.csv", index=False)
        args = ["tune", str(tmp_path / "data.csv"), "--target", "target", "--out", str(tmp_path / "tuned"), "--budget-minutes", "30", "--workers", "2", "--quiet"]
    parent = subprocess.Popen([sys.executable, "-m", "reglab", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_spawned(workers)) < 3:  # the progress queue's process and two workers
            time.sleep(0.5)
            workers = _children(parent.pid)
        assert len(_spawned(workers)) >= 3, f"no workers started: {workers}"
        time.sleep(3)  # training, not starting
        os.kill(parent.pid, sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], "workers outlived their parent"
    finally:
        parent.kill()
        for p in workers | _children(parent.pid):
            if _alive(p):
                os.kill(p, signal.SIGKILL)
