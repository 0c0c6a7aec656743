"""Debian's Chromium for the browser tests (the report's and the playground's): never a downloaded one."""

import os
import shutil

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = os.environ.get("REGLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium not found: `make test` installs Debian's chromium package (apt-get install chromium), or set REGLAB_CHROMIUM")
    return path
