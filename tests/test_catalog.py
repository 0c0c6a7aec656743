"""``reglab techniques`` and docs/techniques.md, both generated from the registry."""

from pathlib import Path

from reglab import catalog
from reglab.cli import main

DOC = Path(__file__).parent.parent / "docs" / "techniques.md"


def test_the_generated_table_is_current():
    assert DOC.read_text() == catalog.markdown(), "docs/techniques.md is stale: run `reglab techniques --markdown > docs/techniques.md`"


def test_reglab_techniques_lists_keys_allowed_values_defaults_and_references(capsys):
    assert main(["techniques"]) == 0
    out = capsys.readouterr().out
    for text in (
        "dropout",
        "a number in [0, 1), or a list of them",
        "early_stopping.patience",
        "an integer >= 0",
        "input_noise",
        "keras.callbacks.EarlyStopping",
        "Srivastava et al. 2014",
        "Prechelt 1998",
        "proximal_l1",
        "mc_dropout",
    ):
        assert text in out, text


def test_markdown_output_is_the_file(capsys):
    assert main(["techniques", "--markdown"]) == 0
    assert capsys.readouterr().out == DOC.read_text()
