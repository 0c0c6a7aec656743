"""Runs and searches on Ray: the same bits as a local run, through a killed worker, a removed
node and a killed driver. One local cluster serves the session (the ``ray_cluster`` fixture: a head
that runs no task and one 2-CPU worker node, all on 127.0.0.1)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

import test_run
from reglab.cli import main
from reglab.distributed import RayOptions
from reglab.runner import run_experiment, run_experiments
from reglab.spec import Experiment

# test_run.py's experiment, a little longer (so a worker or node can be lost mid-chunk): 4 variants
# x 3 seeds, one with early stopping, one with fewer epochs (so two populations).
EXPERIMENT = (
    test_run.EXPERIMENT.replace("{split}", "random")
    .replace("n_samples = 90", "n_samples = 120")
    .replace("epochs = 12", "epochs = 120")
    .replace("patience = 1", "patience = 3")
    .replace("epochs = 5", "epochs = 30")
    .replace('name = "small"', 'name = "on-ray"')
)


def experiment_file(tmp_path: Path, name: str = "e.toml", text: str = EXPERIMENT) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """EXPERIMENT's file and its run folder, trained here without Ray: what every Ray run must equal."""
    folder = tmp_path_factory.mktemp("local")
    path = experiment_file(folder)
    run_experiment(Experiment.from_file(path), folder / "run")
    return path, folder / "run"


def weights(folder: Path) -> dict:
    out = {}
    for f in (folder / "weights").glob("*.safetensors"):
        out.update(load_file(str(f)))
    return out


def assert_same_run(a: Path, b: Path) -> None:
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(a / "history.parquet"), pd.read_parquet(b / "history.parquet"))
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb) and len(wa) == 12 * 6
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)


def training(pid: int) -> bool:
    """Whether process ``pid`` is a Ray worker training a chunk now (Ray titles a busy worker
    ``ray::<function>``, an idle one ``ray::IDLE``)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_train_chunk")
    except OSError:
        return False


def training_chunks() -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*") if p.name.isdigit() and training(int(p.name))]


def during_a_chunk(run, action, timeout: float = 120) -> int:
    """``run()`` in a thread; once a chunk is training, ``action(pid)`` here; then wait for the
    run. Returns the pid the action saw."""
    failure = []

    def target():
        try:
            run()
        except BaseException as err:  # re-raised below
            failure.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not (pids := training_chunks()):
        assert thread.is_alive() and time.monotonic() < deadline, "no chunk was seen training"
        time.sleep(0.005)
    action(pids[0])
    thread.join(timeout)
    assert not thread.is_alive(), "the run did not finish"
    if failure:
        raise failure[0]
    return pids[0]


def ray_instances() -> int:
    """How many Ray instances (GCS servers) run on this machine."""
    count = 0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            count += comm.read_text().strip() == "gcs_server"
        except OSError:
            continue
    return count


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_worker_killed_mid_chunk_is_retried_with_identical_results(ray_cluster, local_run, tmp_path):
    path, local = local_run
    e = Experiment.from_file(path)
    reported: dict[int, list] = {}

    def progress(chunks):
        return lambda n, epochs_done, n_training: reported.setdefault(n, []).append((epochs_done, n_training, len(chunks)))

    def kill(pid):
        assert training(pid)  # still in its chunk: the chunk must be run again for the run to finish
        os.kill(pid, signal.SIGKILL)

    options = RayOptions(address=ray_cluster.address)
    pid = during_a_chunk(lambda: run_experiment(e, tmp_path / "ray", ray=options, progress=progress), kill)
    assert not alive(pid)
    assert_same_run(local, tmp_path / "ray")
    # Progress: every chunk (more than one: the cluster has two CPUs) reported its epochs to the
    # end, its last report saying none of its networks is still training.
    parts = len(list((tmp_path / "ray" / "parts").glob("*.json")))
    assert parts > 2 and sorted(reported) == list(range(parts))
    assert all(r[-1][1] == 0 and r[-1][2] == parts and len(r) > 1 for r in reported.values())


def test_a_removed_node_s_chunks_run_again_on_another_node(ray_cluster, local_run, tmp_path):
    path, local = local_run
    e = Experiment.from_file(path)
    old = list(ray_cluster.worker_nodes)

    def swap_nodes(pid):
        # The head runs no task, so the chunk training now is on the worker node removed here.
        assert training(pid)
        for node in old:
            ray_cluster.remove_node(node)
        ray_cluster.add_node(num_cpus=2, num_gpus=0, object_store_memory=100 * 2**20)

    ended = []  # with progress bars: their queue must outlive the node

    def progress(chunks):
        return lambda n, epochs_done, n_training: n_training or ended.append(n)

    pid = during_a_chunk(lambda: run_experiment(e, tmp_path / "ray", ray=RayOptions(address=ray_cluster.address), progress=progress), swap_nodes)
    assert not alive(pid) and not set(old) & set(ray_cluster.worker_nodes)
    assert_same_run(local, tmp_path / "ray")
    assert sorted(set(ended)) == list(range(len(list((tmp_path / "ray" / "parts").glob("*.json")))))


def test_driver_killed_then_resumed_on_another_cluster_finishes_identically(ray_cluster, local_run, tmp_path):
    path, local = local_run
    out = tmp_path / "killed"
    flags = ["--quiet", "--memory-mb", "0.05"]  # twelve one-network chunks
    # The driver starts a Ray instance of its own (no address), which goes down with it.
    driver = subprocess.Popen([sys.executable, "-m", "reglab.cli", "run", str(path), "--out", str(out), *flags, "--ray"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list((out / "parts").glob("*.json")):
        assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read().decode() if driver.poll() else "no part in time"
        time.sleep(0.02)
    instances = ray_instances()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 30
    while ray_instances() >= instances:  # the driver's own instance goes down with it
        assert time.monotonic() < deadline, "the killed driver's Ray instance is still running"
        time.sleep(0.1)
    parts = list((out / "parts").glob("*.json"))
    assert parts and not (out / "summary.csv").exists()
    assert main(["run", str(path), "--out", str(out), "--resume", *flags, "--ray", ray_cluster.address]) == 0
    assert_same_run(local, out)


def test_the_cli_refuses_a_task_bigger_than_any_node_before_writing(ray_cluster, tmp_path, capsys):
    path = experiment_file(tmp_path)
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--ray", ray_cluster.address, "--ray-cpus", "3"])
    largest = "each chunk asks for 3 CPU, but the largest node of the Ray cluster at"
    assert code == 2 and capsys.readouterr().err == f"reglab: --ray-cpus: {largest} {ray_cluster.address} has 2; ask for at most that\n"
    assert not (tmp_path / "out").exists()


def test_gpu_chunks_need_a_node_with_a_gpu(ray_cluster, tmp_path, capsys, monkeypatch):
    path = experiment_file(tmp_path)
    args = ["run", str(path), "--out", str(tmp_path / "out"), "--device", "cuda", "--ray", ray_cluster.address]
    assert main(args) == 2  # the driver needs no GPU, but some node must have one
    no_gpu = f"reglab: --ray-gpus: each chunk asks for 1 GPU, but no node of the Ray cluster at {ray_cluster.address} has one; train on --device cpu\n"
    assert capsys.readouterr().err == no_gpu and not (tmp_path / "out").exists()
    import reglab.runner

    seen = []
    monkeypatch.setattr(reglab.runner, "run_experiment", lambda *a, **kw: seen.append(kw["ray"]) or pd.DataFrame())
    assert main(args[:-2] + ["--quiet", "--ray", "--ray-gpus", "0.25", "--ray-cpus", "2"]) == 0
    assert seen == [RayOptions(address=None, cpus=2.0, gpus=0.25)]
    assert main([*args[:-2], "--ray", "--device", "cuda:1"]) == 2
    assert capsys.readouterr().err == "reglab: --device cuda:1: with --ray give cuda (each task trains on the GPU Ray gives it)\n"


def test_without_the_extra_ray_is_one_line_on_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    path = experiment_file(tmp_path)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--ray"]) == 2
    assert capsys.readouterr().err == 'reglab: --ray needs the ray extra, which is not installed: pip install "reglab[ray]"\n'
    assert not (tmp_path / "out").exists()
    from sklearn.datasets import make_moons

    from reglab.sklearn import MLPClassifier, PopulationSearchCV

    X, y = make_moons(40, random_state=0)
    with pytest.raises(ImportError, match=r'^PopulationSearchCV\(backend="ray"\) needs the ray extra, which is not installed: pip install "reglab\[ray\]"$'):
        PopulationSearchCV(MLPClassifier(epochs=2), {"dropout": [0.0]}, cv=2, backend="ray").fit(X, y)


def test_several_experiments_on_ray_match_local_runs(ray_cluster, tmp_path):
    """What ``reglab demo --ray`` runs: several run folders, each finished (and ``then`` called on
    it, in the driver) as its last chunk comes in."""
    short = EXPERIMENT.replace("epochs = 120", "epochs = 20")
    texts = [short, short.replace("moons", "circles").replace('name = "on-ray"', 'name = "other"')]
    exps = [Experiment.from_file(experiment_file(tmp_path, f"{i}.toml", t)) for i, t in enumerate(texts)]
    local = [tmp_path / "local" / e.spec.name for e in exps]
    remote = [tmp_path / "ray" / e.spec.name for e in exps]
    for e, folder in zip(exps, local):
        run_experiment(e, folder)
    _, after = run_experiments(list(zip(exps, remote)), ray=RayOptions(address=ray_cluster.address), then=os.path.basename)
    assert after == {str(f): f.name for f in remote}
    for a, b in zip(local, remote):
        assert_same_run(a, b)


def test_population_search_on_ray_gives_the_same_cv_results(ray_cluster):
    from sklearn.datasets import make_moons

    from reglab.sklearn import MLPClassifier, PopulationSearchCV

    X, y = make_moons(80, noise=0.3, random_state=1)
    grid = {"dropout": [0.0, 0.2], "hidden": [(8,), (8, 8)]}
    estimator = MLPClassifier(epochs=15, batch_size=16, random_state=0)
    here = PopulationSearchCV(estimator, grid, cv=3).fit(X, y)
    there = PopulationSearchCV(estimator, grid, cv=3, backend="ray").fit(X, y)
    timed = {k for k in here.cv_results_ if k.endswith("_time")}
    assert set(here.cv_results_) == set(there.cv_results_) and len(timed) == 4
    for key in set(here.cv_results_) - timed:
        np.testing.assert_array_equal(np.asarray(here.cv_results_[key], dtype=object), np.asarray(there.cv_results_[key], dtype=object), err_msg=key)
    assert here.best_params_ == there.best_params_ and here.best_score_ == there.best_score_
    with pytest.raises(ValueError, match=r"^backend: must be one of 'local', 'ray', got 'dask'$"):
        PopulationSearchCV(estimator, grid, backend="dask").fit(X, y)


def test_demo_takes_ray_or_workers(monkeypatch, tmp_path, capsys):
    import reglab.demo

    seen = {}

    def fake(out, seeds, quick, **kwargs):
        seen.update(kwargs)
        return tmp_path / "report.html"

    monkeypatch.setattr(reglab.demo, "run_demo", fake)
    assert main(["demo", "--quiet", "--out", str(tmp_path / "d"), "--ray"]) == 0
    assert seen["ray"] == RayOptions(address=None, cpus=1.0, gpus=0.0) and seen["workers"] is None
    assert main(["demo", "--quiet", "--out", str(tmp_path / "d"), "--ray", "127.0.0.1:6379", "--ray-cpus", "2"]) == 0
    assert seen["ray"] == RayOptions(address="127.0.0.1:6379", cpus=2.0, gpus=0.0)
    assert main(["demo", "--quiet", "--workers", "2", "--ray"]) == 2
    assert capsys.readouterr().err == "reglab: --workers 2 and --ray: give one (worker processes here, or tasks on a Ray cluster)\n"


def test_an_address_that_answers_but_is_not_a_ray_head_is_one_line(tmp_path, capsys):
    """A web server where the head should be: refused at once (ray.init would retry for minutes,
    printing Ray's own log), one line, nothing written."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    port = server.getsockname()[1]

    def answer_like_a_web_server():
        with server:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_like_a_web_server, daemon=True)
    thread.start()
    out = tmp_path / "out"
    assert main(["run", str(experiment_file(tmp_path)), "--out", str(out), "--ray", f"127.0.0.1:{port}"]) == 2
    thread.join(10)
    assert capsys.readouterr().err == (
        f"reglab: --ray: what answers at 127.0.0.1:{port} is not a Ray cluster's head (it does not speak gRPC); "
        "give the head's GCS address (port 6379 unless `ray start --head --port` said otherwise)\n"
    )
    assert not out.exists()


def test_ray_s_own_messages_stay_out_of_the_terminal_when_joining_fails(ray_cluster, tmp_path, capfd, monkeypatch):
    """What Ray's core writes to standard error while joining goes to a file the one line names."""
    import ray

    def failing_init(**kwargs):
        os.write(2, b"[2026-12-05 W] rpc_client.h:153: Failed to connect to GCS\n" * 20)
        raise ConnectionError("Failed to connect to Ray cluster")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", failing_init)
    assert main(["run", str(experiment_file(tmp_path)), "--out", str(tmp_path / "out"), "--ray", ray_cluster.address]) == 2
    err = capfd.readouterr().err
    prefix = f"reglab: --ray: cannot join the Ray cluster at {ray_cluster.address}: Failed to connect to Ray cluster (Ray's own messages: "
    assert err.startswith(prefix) and err.endswith(")\n") and err.count("\n") == 1, err
    log = Path(err[len(prefix) : -2])
    assert log.read_text().count("Failed to connect to GCS") == 20
    log.unlink()
