"""The playground's protocol (the ASGI test client), its sessions, and its export."""

import copy
import json
import struct
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from reglab.cli import main
from reglab.playground import server
from reglab.playground.session import DEFAULT_SETUP, Session

SMALL = {
    "data": {"dataset": "moons", "noise": 0.2, "validation": 0.25, "data_seed": 3},
    "model": {"hidden": [8, 6], "activation": "tanh"},
    "train": {"optimizer": "adam", "learning_rate": 0.02, "batch_size": 16, "epochs": 6, "seeds": 3},
    "variants": [
        {"name": "baseline"},
        {"name": "dropout", "dropout": 0.3},
        {"name": "stops", "l2": 0.001, "early_stopping": {"patience": 1, "min_delta": 0.0, "restore_best_weights": True}},
    ],
}


def decode(data: bytes):
    n = struct.unpack("<I", data[:4])[0]
    header = json.loads(data[4 : 4 + n])
    payload = data[4 + n + (-(4 + n)) % 4 :]

    def array(ref):
        offset, length, dtype = ref
        return np.frombuffer(payload, dtype=dtype, count=length, offset=offset)

    return header, array


def receive(ws, kind):
    """Messages until one of ``kind`` ("frame" or a text type); returns it, the others dropped."""
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            if kind == "frame":
                return decode(message["bytes"])
        elif message.get("text") is not None:
            text = json.loads(message["text"])
            if text["type"] == kind:
                return text
            assert text["type"] != "error", text["message"]
            assert not (kind == "error" and text["type"] == "state"), "the setup was taken, not refused"
        else:
            raise AssertionError(f"connection closed: {message}")


@pytest.fixture
def client():
    from starlette.testclient import TestClient

    with TestClient(server.create_app()) as c:
        yield c


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    for src in [s for s in page.text.split('"') if s.startswith("/static/")]:
        assert client.get(src).status_code == 200, src


def test_start_play_frames_with_increasing_epochs_then_done(client):
    with client.websocket_connect("/ws") as ws:
        hello = receive(ws, "hello")
        assert {"dropout", "l2", "patience", "label_smoothing"} <= {t["key"] for t in hello["techniques"]}
        assert hello["defaults"] == DEFAULT_SETUP and "circles" in [d["name"] for d in hello["datasets"]]
        ws.send_json({"type": "setup", "setup": SMALL})
        state = receive(ws, "state")
        assert state["restarted"] == ["baseline", "dropout", "stops"] and state["points"]["task"] == "binary"
        header, array = receive(ws, "frame")
        assert [v["epoch"] for v in header["variants"]] == [0, 0, 0]
        first = header["variants"][0]
        assert len(array(first["regions"])) == header["grid"] ** 2 and len(array(first["split"])) == 200
        ws.send_json({"type": "play"})
        epochs = []
        while True:
            header, array = receive(ws, "frame")
            epochs.append(header["variants"][0]["epoch"])
            if not header["playing"]:
                break
        assert epochs == sorted(epochs) and epochs[-1] == 6  # increasing, to the end
        stops = header["variants"][2]
        assert len(array(stops["curves"]["val_loss"]["median"])) == stops["epoch"] and stops["training"] == 0
        assert all(s["reason"] in ("patience", "max_epochs") for s in stops["stops"])


def test_a_changed_variant_restarts_alone_and_reset_restarts_all(client):
    with client.websocket_connect("/ws") as ws:
        receive(ws, "hello")
        ws.send_json({"type": "setup", "setup": SMALL})
        receive(ws, "state")
        for _ in range(2):
            ws.send_json({"type": "step"})
        header = None
        while header is None or header["variants"][0]["epoch"] < 2:
            header, _ = receive(ws, "frame")
        changed = copy.deepcopy(SMALL)
        changed["variants"][1]["dropout"] = 0.5
        ws.send_json({"type": "setup", "setup": changed})
        assert receive(ws, "state")["restarted"] == ["dropout"]
        header, _ = receive(ws, "frame")
        assert [v["epoch"] for v in header["variants"]] == [2, 0, 2]
        ws.send_json({"type": "reset"})
        header, _ = receive(ws, "frame")
        assert [v["epoch"] for v in header["variants"]] == [0, 0, 0]


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s: s["variants"][1].update(dropout=1.5), "playground: variant[1].dropout: must be a number in [0, 1), got 1.5"),
        (lambda s: s["train"].update(seeds=50), "train.seeds: the playground's cap is 1 to 20, got 50"),
        (
            lambda s: (s["model"].update(hidden=[128, 128, 128]), s["train"].update(seeds=20)),
            "train.seeds x model.hidden x rows: the playground's cap is 200 M multiply-adds a pass, this setup needs 397 M (60 networks of 2-128-128-128-1 on 200 rows)",
        ),
        (lambda s: s["data"].update(dataset="digits"), "data.dataset: must be one of circles, xor, gauss, spiral, moons, seed-dropout-classification, seed-dropout-regression, seed-early-stopping, seed-regularization or upload, got 'digits'"),
    ],
)
def test_a_bad_setting_is_one_line_on_the_page_and_changes_nothing(client, change, message):
    with client.websocket_connect("/ws") as ws:
        receive(ws, "hello")
        ws.send_json({"type": "setup", "setup": SMALL})
        receive(ws, "state")
        bad = copy.deepcopy(SMALL)
        change(bad)
        ws.send_json({"type": "setup", "setup": bad})
        assert receive(ws, "error")["message"] == message
        ws.send_json({"type": "export"})
        assert "dropout = 0.3" in receive(ws, "export")["toml"]  # the setup before stays


def test_uploads_are_data_only_capped_and_checked(client):
    with client.websocket_connect("/ws") as ws:
        receive(ws, "hello")
        ws.send_json({"type": "setup", "setup": SMALL})
        receive(ws, "state")
        ws.send_json({"type": "upload", "name": "mine.csv", "text": "a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))})
        state = receive(ws, "state")
        assert state["setup"]["data"]["dataset"] == "upload" and len(state["points"]["x"]) == 40
        export = receive_export(ws)
        assert 'path = "mine.csv"' in export["toml"] and 'target = "label"' in export["toml"] and export["files"]["mine.csv"].startswith("a,b,label")
        for name, text, expected in [
            ("bad.csv", "a,b,label\n1,x,0\n2,3,1\n", "bad.csv: line 2, column 'b': not a number: 'x'"),
            ("two.csv", "a,label\n1,0\n", "two.csv: must have three columns (two numeric features, then the label), got 2: a, label"),
            ("big.csv", "a,b,label\n" + "1,2,0\n" * 200_000, "big.csv: the playground takes files up to 1000 kB, got 1200 kB"),
        ]:
            ws.send_json({"type": "upload", "name": name, "text": text})
            error = receive(ws, "error")
            assert error["message"].startswith(expected) and "\n" not in error["message"], error
        ws.send_json({"type": "upload", "name": "mine.csv", "text": "a,b,label\n1,x,0\n"})  # same name, refused
        receive(ws, "error")
        export = receive_export(ws)
        assert 'path = "mine.csv"' in export["toml"] and export["files"]["mine.csv"].count("\n") == 41  # the good upload stays
        ws.send_json({"type": "upload", "name": "reg.csv", "text": "a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.37:.2f}\n" for i in range(40))})
        assert receive(ws, "error")["message"] == "data: the playground draws a regression with 1 feature, this data has 2"


def receive_export(ws):
    ws.send_json({"type": "export"})
    return receive(ws, "export")


def test_a_page_that_goes_away_leaves_no_thread_and_no_files(client, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with client.websocket_connect("/ws") as ws:
        receive(ws, "hello")
        ws.send_json({"type": "setup", "setup": SMALL})
        receive(ws, "state")
        ws.send_json({"type": "play"})
        receive(ws, "frame")
        assert list(tmp_path.glob("reglab-playground-*"))
    for _ in range(100):  # the server notices the page left, then cleans up
        if not any(t.name == "reglab-playground-training" for t in threading.enumerate()) and not list(tmp_path.glob("reglab-playground-*")):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "reglab-playground-training" for t in threading.enumerate())
    assert list(tmp_path.glob("reglab-playground-*")) == []


def test_an_export_run_with_reglab_run_gives_the_playgrounds_numbers_bit_for_bit(tmp_path):
    session = Session(tmp_path)
    session.apply(SMALL)
    session.step()
    session.step()
    changed = copy.deepcopy(SMALL)
    changed["variants"][1]["dropout"] = 0.4  # restarted mid-way: its run starts over, as the file's does
    session.apply(changed)
    while not session.done:
        session.step()
    export = session.export()
    (tmp_path / "playground.toml").write_text(export["toml"])
    assert main(["run", str(tmp_path / "playground.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    weights = {}
    for f in (tmp_path / "run" / "weights").iterdir():
        weights.update(load_file(f))
    for name, trainer in session.trainers.items():
        ours = trainer.history()
        seeds = [m.seed for m in session.populations[name].members]
        for k, seed in enumerate(seeds):
            rows = history[(history["variant"] == name) & (history["seed"] == seed)].sort_values("epoch")
            for column in ("loss", "val_loss", "accuracy", "val_accuracy"):
                n = len(rows)
                assert np.array_equal(rows[column].to_numpy(), ours[column][k, :n].astype(rows[column].dtype)), (name, seed, column)
            final = trainer.result().params
            for layer in range(3):
                assert np.array_equal(weights[f"{name}/seed={seed}/kernel_{layer}"].numpy(), final[2 * layer][k].numpy()), (name, seed, layer)


def test_the_command_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "reglab.playground.server", None)
    assert main(["playground", "--no-browser"]) == 2
    assert capsys.readouterr().err == 'reglab: reglab playground needs the playground extra (reglab.playground.server is missing): pip install "reglab[playground]"\n'


def test_listening_on_every_interface_warns(monkeypatch):
    import uvicorn

    calls, lines = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    server.serve("0.0.0.0", 8765, open_browser=False, log=lines.append)
    assert calls[0]["host"] == "0.0.0.0" and lines[0].startswith("reglab playground: warning: listening on every network interface (0.0.0.0)")
    assert lines[1] == "reglab playground: http://127.0.0.1:8765/ (Ctrl-C stops it)"


def test_quartiles_are_numpys_nanpercentile():
    from reglab.playground.session import quartiles

    g = np.random.default_rng(0)
    for k in (1, 2, 5, 10):
        values = g.normal(size=(k, 30))
        values[g.random(values.shape) < 0.3] = np.nan  # stopped members
        values[:, 0] = np.nan  # every member stopped
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            expected = [np.nanpercentile(values, q, axis=0) for q in (25, 50, 75)]
        for got, want in zip(quartiles(values), expected):
            np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, equal_nan=True)


def test_malformed_messages_are_one_line(client):
    with client.websocket_connect("/ws") as ws:
        receive(ws, "hello")
        for text, expected in [
            ("[1, 2]", "message: must be a JSON object with a type, got '[1, 2]'"),
            ('{"type": "export"}', "export: send a setup first"),
            ('{"type": "fly"}', "message type: must be one of setup, play, pause, step, reset, upload, export, got 'fly'"),
            ('{"type": "setup", "setup": {"data": {}}}', "setup: not understood (KeyError: 'train')"),
        ]:
            ws.send_text(text)
            assert receive(ws, "error")["message"] == expected
        ws.send_bytes(b"\x00\x01")
        assert receive(ws, "error")["message"] == "message: must be JSON text, got a binary message"


def test_a_second_upload_restarts_every_variant(tmp_path):
    session = Session(tmp_path)
    setup = copy.deepcopy(SMALL)
    setup["data"]["dataset"] = "upload"
    session.set_upload("a.csv", "x1,x2,label\n" + "".join(f"{i},{i % 5},{i % 2}\n" for i in range(30)))
    assert session.apply(setup) == ["baseline", "dropout", "stops"]
    session.step()
    session.set_upload("a.csv", "x1,x2,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(30)))
    assert session.apply(setup) == ["baseline", "dropout", "stops"]  # same setup, new data
    assert all(t.epoch == 0 for t in session.trainers.values())
