"""The executors' one method: the same results and the same progress protocol on each; a failed
task's finished neighbours are still delivered and the rest cancelled."""

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
