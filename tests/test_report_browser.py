"""The report as a person sees it: opened in headless Chromium (Debian's package), no console
errors, every image loaded, every experiment's section and tables there; a screenshot is kept."""

import os
from pathlib import Path

from browser import FLAGS, chromium

from reglab.demo import EXPERIMENTS

SCREENSHOT = Path(os.environ.get("REGLAB_SCREENSHOT", Path(__file__).parent.parent / "build" / "report-screenshot.png"))


def test_report_in_a_browser(quick_demo, tmp_path):
    from playwright.sync_api import sync_playwright

    _, report, _ = quick_demo
    problems, requests = [], []
    with sync_playwright() as p:
        # Playwright gives the browser a fresh, empty profile of its own.
        browser = p.chromium.launch(executable_path=chromium(), args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        sections = page.eval_on_selector_all("section.experiment", "ss => ss.map(s => [s.id, s.querySelectorAll('table.summary tbody tr').length, s.querySelectorAll('table.paired tbody tr').length, s.querySelector('h2').innerText])")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        browser.close()
    assert problems == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # works offline
    assert len(images) >= 12 and all(complete and w > 0 and h > 0 for _, complete, w, h in images), images
    assert [s[0] for s in sections] == list(EXPERIMENTS) and [s[3] for s in sections] == list(EXPERIMENTS)
    variants = {"dropout-classification": 2, "dropout-regression": 2, "early-stopping": 7, "regularization": 4}
    for name, summary_rows, paired_rows, _ in sections:
        assert summary_rows == variants[name] and paired_rows == variants[name] - 1, name
    assert width <= 1300  # wide tables scroll inside their box, the page does not
    assert SCREENSHOT.stat().st_size > 50_000
