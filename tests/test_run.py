"""`reglab run` end to end: planner chunk-invariance, the run folder, interruption and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from reglab.errors import UserError
from reglab.plan import make_plan
from reglab.runner import run_experiment
from reglab.spec import Experiment

EXPERIMENT = """
name = "small"
seeds = [0, 1, 2]
[data]
dataset = "moons"
params = {n_samples = 90, noise = 0.3}
split = "{split}"
validation = 0.25
test = 0.2
standardize = true
[model]
hidden = [16, 16]
[train]
learning_rate = 0.01
epochs = 12
batch_size = 16
[[variant]]
name = "baseline"
[[variant]]
name = "dropout"
dropout = 0.3
[[variant]]
name = "es"
l2 = 0.001
[variant.early_stopping]
patience = 1
restore_best_weights = true
[[variant]]
name = "short"
epochs = 5
"""


def experiment(tmp_path, split="random"):
    p = tmp_path / f"{split}.toml"
    p.write_text(EXPERIMENT.replace("{split}", split))
    return p


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "reglab.cli", *args], capture_output=True, text=True, timeout=600, **kw)


def test_planner_groups_by_epochs_and_chunks_to_the_budget(tmp_path):
    e = Experiment.from_file(experiment(tmp_path))
    plan = make_plan(e)
    assert len(plan.members) == 12
    assert sorted(len(p.members) for p in plan.populations) == [3, 9]
    tiny = make_plan(e, memory_budget_mb=0.05)
    assert len(tiny.populations) > 2 and sum(len(p.members) for p in tiny.populations) == 12


@pytest.mark.parametrize("split", ["random", "tail"])
def test_results_do_not_depend_on_chunking(tmp_path, split):
    e = Experiment.from_file(experiment(tmp_path, split))
    run_experiment(e, tmp_path / "big")
    run_experiment(e, tmp_path / "small", memory_budget_mb=0.05)
    assert len(list((tmp_path / "small" / "parts").glob("*.json"))) > 2
    assert (tmp_path / "big" / "summary.csv").read_text() == (tmp_path / "small" / "summary.csv").read_text()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "big" / "history.parquet"), pd.read_parquet(tmp_path / "small" / "history.parquet"))


def test_run_folder_contents(tmp_path):
    e = Experiment.from_file(experiment(tmp_path))
    summary = run_experiment(e, tmp_path / "out")
    out = tmp_path / "out"
    columns = ["variant", "seed", "epochs_run", "best_epoch", "stop_reason", "restored"]
    columns += [f"{s}_{m}" for s in ("train", "val", "test") for m in ("loss", "accuracy")]
    columns += ["zeros_0", "zeros_1", "zeros_2", "dropped_inputs"]  # exact zeros per kernel, inputs no weight reads
    assert list(summary.columns) == columns
    assert (summary["zeros_0"] == 0).all() and (summary["dropped_inputs"] == "").all()
    assert summary["variant"].tolist() == [v for v in ("baseline", "dropout", "es", "short") for _ in range(3)]
    assert (summary.loc[summary.variant == "short", "epochs_run"] == 5).all()
    text = (out / "experiment.toml").read_text()
    assert 'torch = "' in text and 'python = "' in text
    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == summary["epochs_run"].sum()
    assert {"variant", "seed", "epoch", "loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.columns)
    weights = {}
    for f in (out / "weights").glob("*.safetensors"):
        weights.update(load_file(str(f)))
    assert len(weights) == 12 * 6  # three kernels and three biases per member
    assert weights["baseline/seed=0/kernel_0"].shape == (2, 16) and weights["short/seed=2/bias_2"].shape == (1,)
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.pkl"))


def test_same_file_twice_gives_the_same_summary(tmp_path):
    p = experiment(tmp_path)
    for out in ("a", "b"):
        assert cli("run", str(p), "--out", str(tmp_path / out), "--quiet").returncode == 0
    assert (tmp_path / "a" / "summary.csv").read_text() == (tmp_path / "b" / "summary.csv").read_text()


def test_a_non_empty_folder_needs_resume(tmp_path):
    p = experiment(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    r = cli("run", str(p), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"reglab: {tmp_path / 'out'}: folder is not empty; use --resume to finish the run there, or choose another --out"
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    r = cli("run", str(p), "--out", str(tmp_path / "out"), "--resume")
    assert r.returncode == 2 and "not a reglab run folder" in r.stderr


def test_resume_refuses_another_experiment(tmp_path):
    p = experiment(tmp_path)
    e = Experiment.from_file(p)
    run_experiment(e, tmp_path / "out")
    p.write_text(p.read_text().replace("epochs = 12", "epochs = 13"))
    with pytest.raises(UserError, match="holds a run of a different experiment"):
        run_experiment(Experiment.from_file(p), tmp_path / "out", resume=True)


@pytest.mark.slow
def test_kill_minus_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    p = tmp_path / "long.toml"
    p.write_text(EXPERIMENT.replace("{split}", "random").replace("epochs = 12", "epochs = 150").replace("seeds = [0, 1, 2]", "seeds = 4"))
    args = [sys.executable, "-m", "reglab.cli", "run", str(p), "--out", str(tmp_path / "killed"), "--quiet", "--memory-mb", "0.05"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed" / "parts"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(parts.glob("*.json"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list(parts.glob("*.json"))
    assert 2 <= len(done) and not (tmp_path / "killed" / "summary.csv").exists()
    for part in done:  # what is on disk is whole
        json.loads(part.read_text())
    r = cli("run", str(p), "--out", str(tmp_path / "killed"), "--resume", "--quiet", "--memory-mb", "0.05")
    assert r.returncode == 0, r.stderr
    r = cli("run", str(p), "--out", str(tmp_path / "whole"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "killed" / "summary.csv").read_text() == (tmp_path / "whole" / "summary.csv").read_text()


def test_show_datasets_validate(tmp_path):
    p = experiment(tmp_path)
    assert cli("run", str(p), "--out", str(tmp_path / "out"), "--quiet").returncode == 0
    r = cli("show", str(tmp_path / "out"))
    assert r.returncode == 0
    for variant in ("baseline", "dropout", "es", "short"):
        assert variant in r.stdout
    assert "test accuracy" in r.stdout and "±" in r.stdout
    r = cli("datasets")
    assert r.returncode == 0 and "seed-early-stopping" in r.stdout and "diabetes" in r.stdout
    r = cli("validate", str(p))
    assert r.returncode == 0 and "4 variants x 3 seeds = 12 networks" in r.stdout
    r = cli("show", str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip() == f"reglab: {tmp_path}: not a reglab run folder (no summary.csv)"


def test_user_errors_exit_2_with_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(EXPERIMENT.replace("{split}", "random").replace("dropout = 0.3", "dropout = 1.3"))
    r = cli("validate", str(p))
    assert r.returncode == 2
    assert r.stderr == f"reglab: {p}: variant[1].dropout: must be a number in [0, 1), got 1.3\n"
    r = cli("run", str(p), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and not (tmp_path / "o").exists()


def test_user_csv_with_a_test_file(tmp_path):
    g = np.random.default_rng(0)
    X = g.normal(size=(80, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg"))
    frame[:60].to_csv(tmp_path / "train.csv", index=False)
    frame[60:].assign(label="pos").to_csv(tmp_path / "test.csv", index=False)  # one class is fine for a test set
    p = tmp_path / "user.toml"
    # Relative paths are relative to the experiment file, not to where reglab runs.
    p.write_text(
        'name = "user"\nseeds = 2\n[data]\npath = "train.csv"\ntarget = "label"\ntest_path = "test.csv"\nsplit = "stratified"\n'
        "[model]\nhidden = [8]\n[train]\nepochs = 3\n"
    )
    r = cli("run", str(p), "--out", str(tmp_path / "out"), "--quiet", cwd="/")
    assert r.returncode == 0, r.stderr
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert {"test_loss", "test_accuracy"} <= set(summary.columns)


def test_split_column_and_kfold_end_to_end(tmp_path):
    g = np.random.default_rng(1)
    X = g.normal(size=(60, 2))
    frame = pd.DataFrame(X, columns=["a", "b"]).assign(y=X[:, 0] * 2 + 0.1 * g.normal(size=60), part=["train"] * 45 + ["test"] * 15)
    frame.to_csv(tmp_path / "d.csv", index=False)
    base = '[model]\nhidden = [8]\n[train]\nepochs = 3\nbatch_size = 8\n'
    p = tmp_path / "col.toml"
    p.write_text(f'name = "c"\nseeds = 2\n[data]\npath = "{tmp_path / "d.csv"}"\ntarget = "y"\nsplit_column = "part"\nsplit = "random"\n' + base)
    summary = run_experiment(Experiment.from_file(p), tmp_path / "col")
    cols = list(summary.columns)
    assert cols[cols.index("test_loss") :][:3] == ["test_loss", "test_mse", "test_mae"]
    plan = make_plan(Experiment.from_file(p))
    assert plan.data.feature_names == ["a", "b"] and plan.members[0].rows["test"].tolist() == list(range(45, 60))
    p = tmp_path / "kf.toml"
    p.write_text(f'name = "k"\nseeds = 2\n[data]\npath = "{tmp_path / "d.csv"}"\ntarget = "y"\nfeatures = ["a", "b"]\nsplit = "kfold"\nfolds = 3\n' + base)
    summary = run_experiment(Experiment.from_file(p), tmp_path / "kf")
    assert summary[["seed", "fold"]].values.tolist() == [[s, f] for s in (0, 1) for f in (0, 1, 2)]


def test_standardisation_is_fitted_on_each_members_training_rows(tmp_path):
    from reglab.chunks import _member_arrays

    e = Experiment.from_file(experiment(tmp_path))
    plan = make_plan(e)
    population = plan.populations[0]
    x, _ = _member_arrays(plan, population, "train")
    assert x.ndim == 3  # a fresh split per seed, so per-member rows
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.std(axis=1), 1.0, atol=1e-12)
    xv, _ = _member_arrays(plan, population, "val")
    assert np.abs(xv.mean(axis=1)).max() > 1e-3  # validation rows are transformed, not refitted


def test_bad_data_leaves_no_folder_behind(tmp_path):
    (tmp_path / "d.csv").write_text("a,label\n1,0\nx,1\n2,0\n")
    p = tmp_path / "e.toml"
    p.write_text(f'name = "e"\n[data]\npath = "{tmp_path / "d.csv"}"\ntarget = "label"\n')
    r = cli("run", str(p), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr == f"reglab: {tmp_path / 'd.csv'}: line 3, column 'a': not a number: 'x'; features must be finite numbers\n"
    assert not (tmp_path / "out").exists()


def test_device_errors_are_user_errors(tmp_path):
    import torch

    p = experiment(tmp_path)
    r = cli("run", str(p), "--out", str(tmp_path / "o"), "--device", "tpu")
    assert r.returncode == 2 and r.stderr == "reglab: --device: must be cpu, cuda or cuda:<index>, got 'tpu'\n"
    if not torch.cuda.is_available():
        r = cli("run", str(p), "--out", str(tmp_path / "o"), "--device", "cuda")
        assert r.returncode == 2 and "is not available on this machine" in r.stderr
    assert not (tmp_path / "o").exists()


def test_a_diverging_member_of_a_binary_task_stops_alone_and_the_run_completes(tmp_path):
    """A binary population with one member at learning rate 1e38 used to abort with torch's
    'all elements of input should be between 0 and 1' and leave a half-written folder."""
    from reglab.cli import main

    exp = tmp_path / "diverging.toml"
    exp.write_text(
        'name = "diverging"\nseeds = 2\n[data]\ndataset = "moons"\nparams = {n_samples = 60}\n[model]\nhidden = [16]\n'
        '[train]\nepochs = 6\nlearning_rate = 0.01\n[[variant]]\nname = "baseline"\n[[variant]]\nname = "huge"\nlearning_rate = 1e38\n'
    )
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv", dtype={"variant": str})
    huge = summary[summary["variant"] == "huge"]
    base = summary[summary["variant"] == "baseline"]
    assert (huge["stop_reason"] == "non_finite").all() and (huge["epochs_run"] < 6).all()
    assert (base["stop_reason"] == "max_epochs").all() and np.isfinite(base["val_loss"]).all()
    assert main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "r.html")]) == 0


CSV_EXPERIMENT = """
name = "labels"
seeds = 2
[data]
path = "data.csv"
target = "label"
[model]
hidden = [8]
[train]
epochs = 3
learning_rate = 0.01
[[variant]]
name = "baseline"
[[variant]]
name = "l2"
l2 = 0.01
[report]
note = "first note"
"""


def run_cli(capsys, *args):
    """``reglab ARGS`` in this process: (exit code, stderr)."""
    from reglab.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _csv_run(tmp_path, capsys):
    g = np.random.default_rng(0)
    x = g.normal(size=(40, 2))
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "label": (x.sum(1) > 0).astype(int)}).to_csv(tmp_path / "data.csv", index=False)
    p = tmp_path / "exp.toml"
    p.write_text(CSV_EXPERIMENT)
    # A tiny memory budget: one population per member, so a run has several parts.
    assert run_cli(capsys, "run", p, "--out", tmp_path / "out", "--quiet", "--memory-mb", "0.001")[0] == 0
    return p, tmp_path / "out"


def _flip_labels(tmp_path):
    frame = pd.read_csv(tmp_path / "data.csv")
    frame["label"] = 1 - frame["label"]
    frame.to_csv(tmp_path / "data.csv", index=False)


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path, capsys):
    p, out = _csv_run(tmp_path, capsys)
    parts = sorted((out / "parts").glob("*.json"))
    assert len(parts) == 4
    for part in parts[2:]:  # as if killed after two of four parts
        part.unlink()
    (out / "summary.csv").unlink()
    data_before = (out / "data.parquet").read_bytes()
    _flip_labels(tmp_path)
    message = (
        f"reglab: {out}: the data changed since this run started (the rows loaded now differ from the run's "
        "data.parquet); --resume would mix results of both: choose another --out; "
        "or add --restart to discard this unfinished run and start over\n"
    )
    assert run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet", "--memory-mb", "0.001") == (2, message)
    assert (out / "data.parquet").read_bytes() == data_before and len(list((out / "parts").glob("*.json"))) == 2


def test_a_no_op_resume_of_a_finished_run_keeps_its_data(tmp_path, capsys):
    p, out = _csv_run(tmp_path, capsys)
    data_before, summary_before = (out / "data.parquet").read_bytes(), (out / "summary.csv").read_text()
    assert run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet")[0] == 0  # nothing left to train
    assert (out / "summary.csv").read_text() == summary_before
    _flip_labels(tmp_path)
    code, err = run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet")
    assert code == 2 and "the data changed since this run started" in err
    assert (out / "data.parquet").read_bytes() == data_before


def test_resume_applies_report_edits(tmp_path, capsys):
    import tomllib

    p, out = _csv_run(tmp_path, capsys)
    p.write_text(CSV_EXPERIMENT.replace('note = "first note"', 'note = "second note"\nbaseline = "l2"'))
    assert run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet")[0] == 0
    saved = tomllib.loads((out / "experiment.toml").read_text())
    assert saved["report"]["note"] == "second note" and saved["report"]["baseline"] == "l2"
    p.write_text(CSV_EXPERIMENT.replace("epochs = 3", "epochs = 4"))
    assert run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet") == (
        2,
        f"reglab: {out}: holds a run of a different experiment; --resume needs the same experiment file (only its [report] table may change)\n",
    )


def test_a_second_process_is_refused_while_a_run_holds_the_folder(tmp_path, capsys):
    from filelock import FileLock

    p, out = _csv_run(tmp_path, capsys)
    # Another `reglab run` holding the folder: a lock held by another process (a FileLock in this one
    # would be re-entrant).
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import filelock, time; lock = filelock.FileLock({str(out / '.reglab.lock')!r}); lock.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        message = f"reglab: {out}: another reglab run is writing to this folder; wait for it to finish, or choose another --out\n"
        assert run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet") == (2, message)
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet")[0] == 0


def test_show_and_report_refuse_duplicate_member_rows(tmp_path, capsys):
    _, out = _csv_run(tmp_path, capsys)
    summary = (out / "summary.csv").read_text().splitlines()
    (out / "summary.csv").write_text("\n".join([*summary, summary[1]]) + "\n")
    seed = summary[1].split(",")[summary[0].split(",").index("seed")]
    message = f"reglab: {out / 'summary.csv'}: holds member variant baseline, seed {seed} more than once (written by two processes at once?); rerun into a new --out\n"
    for args in (["show", out], ["report", out, "--out", tmp_path / "r.html"]):
        assert run_cli(capsys, *args) == (2, message)
    assert not (tmp_path / "r.html").exists()


def test_a_run_that_failed_before_its_first_part_is_started_over(tmp_path, monkeypatch, capsys):
    """A crash after planning leaves a folder with no finished part: neither a plain rerun nor a
    --resume after fixing the file may be blocked by it."""
    import reglab.runner

    p, _ = _csv_run(tmp_path, capsys)
    out = tmp_path / "crashed"

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(reglab.runner, "train_chunk", crash)
    with pytest.raises(RuntimeError, match="boom"):
        run_experiment(Experiment.from_file(p), out)
    assert (out / "experiment.toml").exists() and not list(out.glob("parts/*.json"))
    monkeypatch.undo()
    p.write_text(CSV_EXPERIMENT.replace("epochs = 3", "epochs = 2"))  # the fixed file
    summary = run_experiment(Experiment.from_file(p), out)
    assert len(summary) == 4 and (summary["epochs_run"] == 2).all()
    with pytest.raises(RuntimeError, match="boom"):
        monkeypatch.setattr(reglab.runner, "train_chunk", crash)
        run_experiment(Experiment.from_file(p), tmp_path / "again")
    monkeypatch.undo()
    assert len(run_experiment(Experiment.from_file(p), tmp_path / "again", resume=True)) == 4


NAMES_EXPERIMENT = """
name = "{name}"
seeds = 2
[data]
dataset = "moons"
params = {{n_samples = 40}}
[model]
hidden = [4]
[train]
epochs = 2
learning_rate = 0.01
{variants}
"""


def test_variant_names_are_text_end_to_end(tmp_path, capsys):
    """Names that pandas would guess to be numbers or missing values, and names that look like
    rich markup, stay the names that were written: in show, in the report, in the summary."""
    names = ["1.0", "1.00", "1", "2", "NA", "None", "[/]", "[bold]x"]  # "" is refused (tests/corpus/variant-name-empty)
    p = tmp_path / "names.toml"
    p.write_text(NAMES_EXPERIMENT.format(name="names", variants="".join(f'[[variant]]\nname = "{n}"\n' for n in names)))
    assert run_cli(capsys, "run", p, "--out", tmp_path / "out", "--quiet")[0] == 0
    from reglab.store import read_summary

    summary = read_summary(tmp_path / "out")
    assert summary["variant"].drop_duplicates().tolist() == names
    assert summary.groupby("variant", sort=False).size().tolist() == [2] * len(names)
    capsys.readouterr()
    from reglab.cli import main

    assert main(["show", str(tmp_path / "out")]) == 0
    shown = capsys.readouterr().out
    for name in names:
        assert f"│ {name} " in shown, name
    assert run_cli(capsys, "report", tmp_path / "out", "--out", tmp_path / "r.html")[0] == 0
    page = (tmp_path / "r.html").read_text()
    assert "<td>[bold]x</td>" in page and "<td>1.00</td>" in page and "<td>NA</td>" in page


def test_datasets_prints_its_own_brackets(capsys):
    from reglab.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "[data.params]" in out and "[generator]" in out


def test_figure_files_from_experiment_names_stay_in_their_folder(tmp_path, capsys):
    from reglab.report import file_stems

    for name in ("../../escaped", "x" * 300):
        folder = tmp_path / f"run{len(name)}"
        p = tmp_path / "e.toml"
        p.write_text(NAMES_EXPERIMENT.format(name=name, variants='[[variant]]\nname = "baseline"\n'))
        assert run_cli(capsys, "run", p, "--out", folder, "--quiet")[0] == 0
        figures = tmp_path / f"figures{len(name)}" / "inner"
        assert run_cli(capsys, "report", folder, "--out", tmp_path / "r.html", "--figures", figures)[0] == 0
        written = sorted(figures.iterdir())
        assert written and all(f.parent == figures and len(f.name) < 100 for f in written)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png") == []
    assert file_stems(["a/b", "a b", ".hidden", "a/b/"]) == {"a/b": "a-b", "a b": "a-b-2", ".hidden": "hidden", "a/b/": "a-b-3"}


def test_a_feature_named_y_is_kept_and_validate_says_which_task_and_why(tmp_path, capsys):
    g = np.random.default_rng(1)
    frame = pd.DataFrame({"y": g.normal(size=30), "x2": g.normal(size=30), "label": g.integers(0, 3, size=30)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    p = tmp_path / "e.toml"
    p.write_text('name = "e"\nseeds = 2\n[data]\npath = "d.csv"\ntarget = "label"\n[model]\nhidden = [4]\n[train]\nepochs = 2\n')
    from reglab.cli import main

    capsys.readouterr()
    assert main(["validate", str(p)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "task: multiclass (inferred: target 'label' holds integers with 3 distinct values (at most 20: classes); set data.task = \"regression\" to predict them as numbers)"
    assert run_cli(capsys, "run", p, "--out", tmp_path / "out", "--quiet")[0] == 0
    stored = pd.read_parquet(tmp_path / "out" / "data.parquet")
    np.testing.assert_allclose(stored["y"], frame["y"])  # the feature, not the target
    from reglab.report import RunData

    np.testing.assert_array_equal(RunData.load(tmp_path / "out").y, frame["label"])


def test_show_fits_the_terminal(tmp_path, capsys, monkeypatch):
    p = experiment(tmp_path)
    assert run_cli(capsys, "run", p, "--out", tmp_path / "out", "--quiet")[0] == 0
    from reglab.cli import main

    monkeypatch.setenv("COLUMNS", "72")
    capsys.readouterr()
    assert main(["show", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(len(line) for line in lines) <= 72
    assert any("dropout" in line for line in lines) and any("±" in line for line in lines)


def test_an_unfinished_run_is_recognised_and_never_blocks_both_ways(tmp_path, capsys):
    """A run that stopped after some parts: a plain rerun says what it is; after the experiment
    file changed, --resume refuses (it would mix two experiments) and --restart starts over."""
    p, out = _csv_run(tmp_path, capsys)
    for part in sorted((out / "parts").glob("*.json"))[2:]:
        part.unlink()
    (out / "summary.csv").unlink()
    assert run_cli(capsys, "run", p, "--out", out, "--quiet") == (
        2,
        f"reglab: {out}: holds an unfinished run of this experiment (2 of 4 networks trained); add --resume to finish it, or choose another --out\n",
    )
    p.write_text(CSV_EXPERIMENT.replace("epochs = 3", "epochs = 2"))  # the file, fixed
    code, err = run_cli(capsys, "run", p, "--out", out, "--resume", "--quiet")
    assert code == 2 and err.endswith("; or add --restart to discard this unfinished run and start over\n")
    assert run_cli(capsys, "run", p, "--out", out, "--quiet") == (
        2,
        f"reglab: {out}: holds an unfinished run of another experiment or data (2 networks trained); add --restart to discard it and start over, or choose another --out\n",
    )
    assert run_cli(capsys, "run", p, "--out", out, "--restart", "--quiet")[0] == 0
    assert (pd.read_csv(out / "summary.csv")["epochs_run"] == 2).all()
    assert run_cli(capsys, "run", p, "--out", out, "--resume", "--restart") == (
        2,
        "reglab: --resume and --restart: give one (finish the run in --out, or discard it and start over)\n",
    )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, "run", p, "--out", tmp_path / "mine", "--restart")
    assert code == 2 and "--restart only discards a reglab run" in err and (tmp_path / "mine" / "notes.txt").exists()


def test_a_users_own_files_are_never_taken_for_a_run_folder(tmp_path, capsys):
    """An --out folder that holds the user's own experiment.toml (say, `--out .`) is not an
    unfinished run to clear: it is refused, and nothing in it is touched."""
    p = tmp_path / "experiment.toml"
    p.write_text(NAMES_EXPERIMENT.format(name="here", variants='[[variant]]\nname = "baseline"\n') + "# my notes\n")
    before = p.read_text()
    for extra in ([], ["--resume"], ["--restart"]):
        code, err = run_cli(capsys, "run", p, "--out", tmp_path, "--quiet", *extra)
        assert code == 2 and ("folder is not empty" in err or "not a reglab run folder" in err), err
        assert p.read_text() == before and sorted(c.name for c in tmp_path.iterdir()) == ["experiment.toml"]


def test_resume_plans_once_and_finishes_as_an_uninterrupted_run(tmp_path, monkeypatch):
    """A resumed run loads and splits the data once (the plan of what is left is the full plan,
    filtered), and ends with the summary an uninterrupted run gives."""
    import reglab.plan
    import reglab.runner

    p = experiment(tmp_path)
    train_one = reglab.runner.train_chunk
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return train_one(*args, **kwargs)

    monkeypatch.setattr(reglab.runner, "train_chunk", crash_on_second)
    with pytest.raises(RuntimeError, match="boom"):
        run_experiment(Experiment.from_file(p), tmp_path / "resumed", memory_budget_mb=0.05)
    monkeypatch.undo()
    assert len(list((tmp_path / "resumed" / "parts").glob("*.json"))) == 1
    loads = []
    load = reglab.plan.load_data
    monkeypatch.setattr(reglab.plan, "load_data", lambda e: loads.append(1) or load(e))
    resumed = run_experiment(Experiment.from_file(p), tmp_path / "resumed", resume=True, memory_budget_mb=0.05)
    assert loads == [1]
    whole = run_experiment(Experiment.from_file(p), tmp_path / "whole", memory_budget_mb=0.05)
    pd.testing.assert_frame_equal(resumed, whole)


ENGINE_EXPERIMENT = """
name = "engines"
seeds = 2
[data]
dataset = "seed-regularization"
[model]
hidden = [8]
activation = "{activation}"
[train]
epochs = 3
engine = "{engine}"
[[variant]]
name = "baseline"
[[variant]]
name = "l1"
l1 = 0.001
"""


@pytest.mark.parametrize(
    "activation, engine, message",
    [
        ("elu", "compiled", "train.engine: variant[0] ('baseline') cannot train compiled: activation 'elu' has no compiled form (compiled: relu, tanh, sigmoid, linear); must be \"auto\" or \"eager\" here, got \"compiled\""),
        ("relu", "fast", "train.engine: must be 'auto', 'compiled' or 'eager', got 'fast'"),
    ],
)
def test_an_engine_a_member_cannot_take_is_refused_by_validate_and_run(tmp_path, capsys, activation, engine, message):
    exp = tmp_path / "e.toml"
    exp.write_text(ENGINE_EXPERIMENT.format(activation=activation, engine=engine))
    for args in (("validate", exp), ("run", exp, "--out", tmp_path / "out", "--quiet")):
        assert run_cli(capsys, *args) == (2, f"reglab: {exp}: {message}\n")
    assert not (tmp_path / "out").exists()


def test_the_planner_groups_members_by_engine_and_the_engines_agree(tmp_path):
    from reglab.engine import register, registry

    from conftest import eager_only_technique

    register(eager_only_technique("plain"))
    try:
        exp = tmp_path / "e.toml"
        exp.write_text(ENGINE_EXPERIMENT.format(activation="relu", engine="auto") + '[[variant]]\nname = "plain"\nplain = 1.0\n')
        plan = make_plan(Experiment.from_file(exp))
        assert sorted((p.engine, sorted({m.variant.name for m in p.members})) for p in plan.populations) == [("compiled", ["baseline", "l1"]), ("eager", ["plain"])]
        run_experiment(Experiment.from_file(exp), tmp_path / "auto")
        exp.write_text(ENGINE_EXPERIMENT.format(activation="relu", engine="eager") + '[[variant]]\nname = "plain"\nplain = 1.0\n')
        assert {p.engine for p in make_plan(Experiment.from_file(exp)).populations} == {"eager"}
        run_experiment(Experiment.from_file(exp), tmp_path / "eager")
    finally:
        registry.unregister("plain")
    auto, eager = (pd.read_csv(tmp_path / name / "summary.csv").set_index(["variant", "seed"]).sort_index() for name in ("auto", "eager"))
    # plain trained eager both times: the same bits; the others agree to float32 rounding (the
    # planner put them on the compiled engine under auto, above)
    np.testing.assert_array_equal(auto.loc["plain", "val_loss"], eager.loc["plain", "val_loss"])
    np.testing.assert_allclose(auto["val_loss"], eager["val_loss"], rtol=1e-4)
