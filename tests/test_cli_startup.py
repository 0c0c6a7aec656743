"""The command line answers at once: ``--version`` and ``--help`` import nothing heavy, ``validate``
imports only what checking the file needs. Facts about which modules load (in a fresh
interpreter), not timings; ``python -X importtime -m reglab validate FILE`` shows the costs."""

import json
import subprocess
import sys
from importlib import resources

import pytest

# Each of these takes from a tenth of a second (pyarrow) to over a second (torch, scikit-learn) to import.
HEAVY = ("torch", "numba", "matplotlib", "sklearn", "pandas", "pyarrow", "scipy", "numpy")

EXAMPLES = resources.files("reglab") / "examples"


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it leaves its answer in ``out``. Returns that answer and
    the heavy packages that were imported."""
    script = f"""
import json, sys
out = None
{code}
print(json.dumps({{"out": out, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def cli_in_process(*args: str) -> str:
    """Code that runs ``reglab ARGS`` through ``reglab.cli.main`` and keeps its exit status."""
    return f"""
import contextlib, io
from reglab.cli import main
buf = io.StringIO()
try:
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        out = [main({list(args)!r}), buf.getvalue()]
except SystemExit as exit:
    out = [exit.code, buf.getvalue()]
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], [], ["validate", "--help"], ["run", "--help"]])
def test_version_and_help_import_nothing_heavy(args):
    got = loaded_after(cli_in_process(*args))
    code, text = got["out"]
    assert code in (0, None, 2) and text, got
    assert got["heavy"] == []


def test_version_reads_the_installed_version():
    got = loaded_after(cli_in_process("--version") + "\nimport reglab\nout.append(reglab.__version__)")
    code, text, version = got["out"]
    assert code == 0 and text == f"reglab {version}\n"
    assert got["heavy"] == []


def test_import_reglab_is_light_and_every_export_still_imports():
    light = loaded_after("import reglab\nout = sorted(reglab.__all__)")
    assert light["heavy"] == []
    names = light["out"]
    assert {"Architecture", "Member", "Technique", "register", "train", "__version__"} <= set(names)
    got = loaded_after(
        "import importlib, reglab, reglab.engine\n"
        f"from reglab import {', '.join(names)}\n"
        "from reglab.engine.techniques.dropout import Dropout\n"
        "home = lambda n: importlib.import_module(reglab._LAZY[n], 'reglab')  # the engine, or the tuner for tune\n"
        "out = [[n for n in reglab.__all__ if n != '__version__' and getattr(reglab, n) is not getattr(home(n), n)],\n"
        "       sorted(set(reglab.__all__) - set(dir(reglab))), reglab.Dropout is Dropout is reglab.engine.Dropout]"
    )
    assert got["out"] == [[], [], True]  # technique classes come by name from the registry
    assert "torch" in got["heavy"]  # the engine's names are torch's users: imported on first use


def test_package_attributes_are_lazy_but_complete():
    got = loaded_after(
        "import reglab\n"
        "try:\n"
        "    reglab.no_such_name\n"
        "    missing = 'no error'\n"
        "except AttributeError as err:\n"
        "    missing = str(err)\n"
        "heavy_before = 'torch' in sys.modules\n"
        "out = [missing, heavy_before, reglab.engine.Dropout.__name__, reglab.data.__name__]"
    )
    assert got["out"] == ["module 'reglab' has no attribute 'no_such_name'", False, "Dropout", "reglab.data"]


SEED_EXAMPLES = sorted(p.name for p in EXAMPLES.iterdir() if p.name.endswith(".toml") and 'dataset = "seed-' in p.read_text())


def test_validate_imports_neither_plotting_nor_data_libraries_for_the_seed_examples():
    """The seed datasets are read without pandas, and their fixed splits need no scikit-learn:
    validating their examples imports numpy and pydantic only; torch never (every setting is
    checked by declarations that import without it). Then an example on scikit-learn's
    breast_cancer with a stratified split imports scikit-learn, and still no matplotlib or torch."""
    assert len(SEED_EXAMPLES) >= 8
    paths = [str(EXAMPLES / name) for name in SEED_EXAMPLES]
    got = loaded_after(
        f"""
import contextlib, io
from reglab.cli import main
out = []
with contextlib.redirect_stdout(io.StringIO()):
    out.append([main(["validate", p]) for p in {paths!r}])
    out.append(sorted(m for m in {HEAVY!r} if m in sys.modules))
    out.append(main(["validate", {str(EXAMPLES / "proximal-l1.toml")!r}]))
"""
    )
    codes, heavy_after_seed, code_sklearn = got["out"]
    assert codes == [0] * len(paths) and code_sklearn == 0
    assert heavy_after_seed == ["numpy"]
    assert "matplotlib" not in got["heavy"] and "torch" not in got["heavy"] and "numba" not in got["heavy"] and "sklearn" in got["heavy"]


def test_the_deferred_torch_imports_on_first_use_and_pickles():
    """The stand-in the declarations use for torch: nothing is imported until a name is read, and
    it survives pickling (Ray ships functions by value, with the module globals they read)."""
    got = loaded_after(
        "import pickle\n"
        "from reglab.engine.lazy import torch\n"
        "before = 'torch' in sys.modules\n"
        "copy = pickle.loads(pickle.dumps(torch))\n"
        "still = 'torch' in sys.modules\n"
        "out = [before, still, copy.float32 is torch.float32, str(copy.zeros(2).dtype)]"
    )
    assert got["out"] == [False, False, True, "torch.float32"]


def test_the_reports_figures_change_no_global_setting_on_import():
    """Importing the report's figures leaves matplotlib as the user had it: no rcParams changed,
    no backend chosen, pyplot not imported (the report's style is a context around each figure)."""
    got = loaded_after(
        "import matplotlib\n"
        "before = matplotlib.rcParams.copy()\n"
        "import reglab.report.figures\n"
        "after = matplotlib.rcParams.copy()\n"
        "out = [sorted(k for k in before if str(before[k]) != str(after[k])), 'matplotlib.pyplot' in sys.modules]"
    )
    assert got["out"] == [[], False]
