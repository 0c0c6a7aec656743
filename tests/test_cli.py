import subprocess
import sys

import pytest

import reglab
from reglab.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "reglab.cli", *args], capture_output=True, text=True, timeout=300)


def test_version_through_the_entry_point():
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"reglab {reglab.__version__}"


def test_example_prints_a_table_per_variant():
    out = run("example", "--seeds", "3", "--epochs", "20")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "5 variants x 3 seeds = 15 networks" in lines[0]
    for name in ("baseline", "l1 1e-3", "l2 1e-3", "dropout 0.5", "early stopping"):
        row = next(line for line in lines if line.startswith(name))
        assert row.count("±") == 3


def test_no_command_is_a_usage_error():
    out = run()
    assert out.returncode == 2
    assert "usage: reglab" in out.stderr


@pytest.mark.parametrize("args, seeds", [(["--quick"], 3), (["--quick", "--seeds", "20"], 20), ([], 20), (["--seeds", "5"], 5)])
def test_demo_seeds_are_what_the_words_say(monkeypatch, tmp_path, args, seeds):
    import reglab.demo

    seen = {}

    def fake(out, seeds, quick, **kwargs):
        seen.update(seeds=seeds, quick=quick)
        return tmp_path / "report.html"

    monkeypatch.setattr(reglab.demo, "run_demo", fake)
    assert main(["demo", "--quiet", "--out", str(tmp_path / "d"), *args]) == 0
    assert seen == {"seeds": seeds, "quick": "--quick" in args}
