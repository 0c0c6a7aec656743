"""reglab tune: its outputs, the same leaderboard twice, a resumed search equal to an uninterrupted
one, a registered technique searched, and bad input refused in one line with nothing written.
The searches here are small (20 epochs, a 120-row table, this process): the algorithm is the same."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_moons

import reglab
import reglab.tuner
from reglab.cli import main
from reglab.engine import registry
from reglab.tuner import Candidate, cocktails, first_rung, single_settings
from techniques.test_user_technique import Shrink


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.setattr(reglab.tuner, "EPOCHS", 20)
    X, y = make_moons(120, noise=0.3, random_state=0)
    path = tmp_path / "moons.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": np.where(y == 1, "up", "down")}).to_csv(path, index=False)
    return path


def tune_cli(capsys, table, out, *extra):
    code = main(["tune", str(table), "--target", "label", "--out", str(out), "--budget-minutes", "0.3", "--seeds", "3", "--workers", "1", "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tune_writes_its_outputs_and_the_same_leaderboard_twice(table, tmp_path, capsys):
    reglab.register(Shrink)
    try:
        code, out, err = tune_cli(capsys, table, tmp_path / "a")
        assert code == 0 and err == ""
        assert tune_cli(capsys, table, tmp_path / "b")[0] == 0
    finally:
        registry.unregister("shrink")
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "leaderboard.csv").read_bytes() == (b / "leaderboard.csv").read_bytes()
    board = pd.read_csv(a / "leaderboard.csv")
    # Every single change of rung 0 on each architecture, the baselines, and the final comparison.
    assert len(board[board["rung"] != "confirmation"]) >= len(first_rung("classification")) + 3 * 3  # shrink's three strengths too
    assert sorted(set(board["shrink"].dropna())) == pytest.approx([0.005, 0.05 / 3, 0.05], rel=1e-5)  # no strengths declared: default, /3, /10
    assert {"candidate", "hidden", "dropout", "l2", "early_stopping.patience", "rung", "seeds", "folds", "val_loss", "delta_val_loss", "delta_low", "delta_high", "status"} <= set(board.columns)
    assert (board["status"] == "winner").sum() == 1 and (board["rung"] == "confirmation").sum() == 2
    baselines = board[(board["candidate"] == "baseline") & (board["rung"] != "confirmation")]
    assert (baselines["delta_val_loss"] == 0).all()
    last = out.strip().splitlines()[-1]
    assert last.startswith(("winner: ", "no technique beat the baseline beyond seed noise: ")) and "95 % CI" in last
    page = (a / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "http://" not in page and "https://" not in page
    # best.toml runs as is, and scores rows the search never saw once a test_path is added.
    X, y = make_moons(40, noise=0.3, random_state=9)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": np.where(y == 1, "up", "down")}).to_csv(tmp_path / "held.csv", index=False)
    best = (a / "best.toml").read_text().replace("[data]\n", '[data]\ntest_path = "held.csv"\n', 1)
    (tmp_path / "best.toml").write_text(best.replace('path = "../moons.csv"', 'path = "moons.csv"'))
    assert main(["run", str(tmp_path / "best.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert summary["variant"].iloc[0] == "baseline" and summary["test_accuracy"].notna().all() and len(summary) == 2 * 3 * 3


def test_a_search_stopped_midway_resumes_to_the_same_leaderboard(table, tmp_path, capsys, monkeypatch):
    import reglab.runner

    assert tune_cli(capsys, table, tmp_path / "whole")[0] == 0
    train_one, calls = reglab.runner.train_chunk, []

    def crash_on_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return train_one(*args, **kwargs)

    monkeypatch.setattr(reglab.runner, "train_chunk", crash_on_fourth)
    assert tune_cli(capsys, table, tmp_path / "stopped")[0] == 130
    monkeypatch.setattr(reglab.runner, "train_chunk", train_one)
    assert not (tmp_path / "stopped" / "leaderboard.csv").exists()
    code, _, err = tune_cli(capsys, table, tmp_path / "stopped")
    assert code == 2 and "use --resume to continue the search there" in err
    assert tune_cli(capsys, table, tmp_path / "stopped", "--resume")[0] == 0
    assert (tmp_path / "stopped" / "leaderboard.csv").read_bytes() == (tmp_path / "whole" / "leaderboard.csv").read_bytes()
    code, _, err = tune_cli(capsys, table, tmp_path / "stopped", "--resume", "--seeds", "4")
    assert code == 2 and err == f"reglab: {tmp_path / 'stopped'}: its search was asked for with other arguments (seeds); give the same ones, or choose another --out\n"


def test_bad_input_is_one_line_and_writes_nothing(table, tmp_path, capsys):
    out = tmp_path / "out"
    frame = pd.read_csv(table)
    cases = {
        "missing.csv": (None, f"reglab: {tmp_path / 'missing.csv'}: no such file\n"),
        "one-class.csv": (frame.assign(label="up"), "column 'label' has a single class ('up')"),
        "text.csv": (frame.assign(a=frame["a"].astype(str).where(frame.index != 5, "oops")), "oops"),
    }
    for name, (data, message) in cases.items():
        if data is not None:
            data.to_csv(tmp_path / name, index=False)
        code, _, err = tune_cli(capsys, tmp_path / name, out)
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert not out.exists()
    code, _, err = tune_cli(capsys, table, out, "--budget-minutes", "0")
    assert (code, err) == (2, "reglab: --budget-minutes: must be a number > 0, got 0\n") and not out.exists()
    code, _, err = main(["tune", str(table), "--target", "nope", "--out", str(out), "--quiet"]), None, capsys.readouterr().err
    assert code == 2 and "nope" in err and not out.exists()


def test_the_search_space_comes_from_the_registry():
    singles = single_settings("classification")
    assert (("dropout", 0.3),) in singles and (("label_smoothing", 0.1),) in singles
    assert all(s[0][0] != "label_smoothing" for s in single_settings("regression"))  # classification only
    assert all(s[0][0] != "mc_dropout" for s in singles)  # acts at prediction only
    ranked = [Candidate((32,), (("l2", 0.001),)), Candidate((32,), (("l2", 0.01),)), Candidate((32,)), Candidate((64, 64), (("dropout", 0.1),)), Candidate((32,), (("dropout", 0.3),)), Candidate((32,), (("l1", 1e-4),))]
    names = [c.name for c in cocktails(ranked)]
    assert names == ["dropout 0.3 + l2 0.001", "l1 0.0001 + l2 0.001", "dropout 0.3 + l1 0.0001", "dropout 0.3 + l1 0.0001 + l2 0.001"]


def test_tune_on_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(reglab.tuner, "EPOCHS", 10)
    X, y = make_moons(90, noise=0.3, random_state=1)
    result = reglab.tune(X, y, out=tmp_path / "t", budget_minutes=0.2, seeds=2, workers=1)
    assert result.best["variant"][0] == {"name": "baseline"} and len(result.best["variant"]) == 2
    assert result.answer.startswith(("winner: ", "no technique")) and (result.folder / "leaderboard.csv").exists()
    assert len(result.leaderboard) > len(first_rung("classification"))
