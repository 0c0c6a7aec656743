"""A corpus of user mistakes, one folder each under ``tests/corpus/``: the files, ``args`` (the
command line, run in a copy of the folder) and ``expected`` (the one line it must print, ``{dir}``
standing for the folder). Each must exit 2 with exactly that line, no traceback, and write nothing.
Grow it: a new folder is a new case, no code to edit."""

import shutil
import shlex
from pathlib import Path

import pytest

from reglab.cli import main

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "args").exists())


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_corpus_is_there():
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_a_user_mistake_gets_one_line(tmp_path, monkeypatch, capsys, case):
    folder = tmp_path / case
    shutil.copytree(CORPUS / case, folder)
    monkeypatch.chdir(folder)
    before = _listing(folder)
    code = main(shlex.split((folder / "args").read_text()))
    err = capsys.readouterr().err
    expected = (folder / "expected").read_text().strip().replace("{dir}", str(folder.resolve()))
    assert (code, err) == (2, expected + "\n")
    assert _listing(folder) == before  # nothing half-written
