"""The documentation: the site builds with warnings as errors, its generated pages are current,
and the README stays short with links that lead somewhere."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current():
    stale = [name for name, text in _generate().pages().items() if (ROOT / "docs" / name).read_text() != text]
    assert not stale, f"stale: {stale}; run `python docs/generate.py`"


def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("reglab.engine.trainer.train", "reglab.sklearn.MLPClassifier", "reglab.keras.from_keras"):
        assert f'id="{name}"' in api  # the API page is generated from the docstrings, not empty
    reference = (tmp_path / "site" / "reference" / "experiment-file" / "index.html").read_text()
    assert "standardize" in reference and "early_stopping" in reference


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
