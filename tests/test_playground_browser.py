"""The playground as a person uses it: the real server, the page in headless Chromium (Debian's
package), a setup from the URL, Play, a changed setting, Export, and the exported file run with
``reglab run``. Nothing leaves 127.0.0.1 and the console stays clean; a screenshot is kept."""

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from browser import FLAGS, chromium

from reglab.playground.server import create_app
from reglab.playground.session import DEFAULT_SETUP

SCREENSHOT = Path(os.environ.get("REGLAB_PLAYGROUND_SCREENSHOT", Path(__file__).parent.parent / "build" / "playground-screenshot.png"))

SMALL = {
    "data": {"dataset": "moons", "noise": 0.2, "validation": 0.25, "data_seed": 1},
    "model": {"hidden": [16, 16], "activation": "relu"},
    "train": {"optimizer": "adam", "learning_rate": 0.03, "batch_size": 32, "epochs": 15, "seeds": 2},
    "variants": [{"name": "baseline"}, {"name": "dropout", "dropout": 0.3}],
}
# The default workload (4 variants x 10 seeds of 2-64-64-1 on 200 rows), for the frame rate.
BUSY = {
    **DEFAULT_SETUP,
    "variants": [*DEFAULT_SETUP["variants"], {"name": "l2", "l2": 0.001}, {"name": "early stopping", "early_stopping": {"patience": 10, "min_delta": 0.0, "restore_best_weights": True}}],
}


@pytest.fixture(scope="module")
def server():
    """The real server on a free local port, in a thread of its own; stops when the module ends."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="playground-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the playground server did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser_page(server):
    """A fresh page, with everything it logs, throws or requests collected."""
    from playwright.sync_api import sync_playwright

    seen = {"problems": [], "requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900}, accept_downloads=True)
        page.on("console", lambda m: seen["problems"].append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: seen["problems"].append(f"page error: {e}"))
        page.on("request", lambda r: seen["requests"].append(r.url))
        page.on("websocket", lambda ws: seen["requests"].append(ws.url))
        yield page, seen
        browser.close()


def open_with(page, port: int, setup: dict) -> None:
    page.goto(f"http://127.0.0.1:{port}/#{quote(json.dumps(setup))}", wait_until="load")


def epoch_reached(page, name: str, epoch: int, timeout: float = 15_000) -> None:
    """Wait until the variant's panel says it is at ``epoch`` or later (drawn with its canvases)."""
    page.wait_for_function(
        "([name, epoch]) => { const p = document.querySelector(`section.variant[aria-label=\"variant ${name}\"] .progress`);"
        " const m = p && p.textContent.match(/^epoch (\\d+) of/); return m && Number(m[1]) >= epoch; }",
        arg=[name, epoch],
        timeout=timeout,
    )


@pytest.mark.slow
def test_the_playground_trains_live_and_exports_a_file_reglab_runs(server, browser_page, tmp_path):
    page, seen = browser_page
    open_with(page, server, SMALL)
    regions = page.get_by_label("decision regions of baseline", exact=True)
    epoch_reached(page, "baseline", 0)
    assert page.input_value("#epochs") == "15" and page.input_value("#hidden") == "16, 16"  # the URL's setup
    before = regions.evaluate("c => c.toDataURL()")

    page.get_by_role("button", name="Play", exact=True).click()
    epoch_reached(page, "baseline", 8)
    after = regions.evaluate("c => c.toDataURL()")
    assert after != before  # the decision regions moved as the networks trained
    assert page.get_by_label("decision regions of dropout", exact=True).count() == 1
    assert "of 2 stopped" in page.locator('section.variant[aria-label="variant baseline"] .progress').inner_text()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("region", name="variant dropout").get_by_label("dropout", exact=True).fill("0.2")
    page.wait_for_function("() => decodeURIComponent(location.hash).includes('\"dropout\":0.2')")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export", exact=True).click()
    toml = tmp_path / download.value.suggested_filename
    download.value.save_as(toml)
    page.get_by_role("button", name="Pause", exact=True).click()
    assert page.locator("#error").is_hidden()

    assert seen["problems"] == []
    local = (f"http://127.0.0.1:{server}/", f"ws://127.0.0.1:{server}/", "data:", "blob:")
    assert [u for u in seen["requests"] if not u.startswith(local)] == []  # works offline
    assert 20_000 < SCREENSHOT.stat().st_size < 5_000_000

    assert toml.name == "playground.toml" and "dropout = 0.2" in toml.read_text()
    out = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run([sys.executable, "-m", "reglab", "run", str(toml), "--out", str(out), "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with open(out / "summary.csv", newline="") as f:
        variants = {row["variant"] for row in csv.DictReader(f)}
    assert variants == {"baseline", "dropout"}


@pytest.mark.slow
def test_the_default_workload_runs_in_the_page(server, browser_page):
    """Four variants x 10 seeds play without a console problem; the frame rate the page sees is
    printed for the record, not asserted (benchmarks/playground.py measures it)."""
    page, seen = browser_page
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(time.perf_counter()) if isinstance(payload, bytes) else None))
    open_with(page, server, BUSY)
    epoch_reached(page, "baseline", 0, timeout=30_000)
    page.get_by_role("button", name="Play", exact=True).click()
    epoch_reached(page, "baseline", 3, timeout=30_000)
    start, count = time.perf_counter(), len(frames)
    page.wait_for_timeout(3000)
    elapsed, received = time.perf_counter() - start, len(frames) - count
    epoch = page.locator('section.variant[aria-label="variant baseline"] .progress').inner_text()
    page.get_by_role("button", name="Pause", exact=True).click()
    print(f"\nplayground, default workload: {received / elapsed:.1f} frames/s in the page over {elapsed:.1f} s; {epoch}; status: {page.locator('#status').inner_text()}")
    assert seen["problems"] == []
