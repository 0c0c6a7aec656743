import tomllib
from importlib import resources

import pytest

from reglab.errors import UserError
from reglab.spec import Experiment

BASE = """
name = "t"
seeds = 3
[data]
dataset = "seed-regularization"
[train]
epochs = 5
"""


def load(text, tmp_path, name="e.toml"):
    p = tmp_path / name
    p.write_text(text)
    return Experiment.from_file(p)


def error(text, tmp_path):
    with pytest.raises(UserError) as err:
        load(text, tmp_path)
    return str(err.value).replace(str(tmp_path) + "/", "")


@pytest.mark.parametrize(
    "name",
    ["dropout-classification", "dropout-regression", "early-stopping", "regularization", "dropout-sweep", "weight-decay-vs-l2", "prechelt-vs-patience", "proximal-l1", "noise-and-max-norm"],
)
def test_shipped_examples_are_valid(name):
    with resources.as_file(resources.files("reglab.examples").joinpath(f"{name}.toml")) as path:
        e = Experiment.from_file(path)
    assert e.spec.name == name and len(e.spec.variant) >= 2


def test_defaults_and_variants(tmp_path):
    e = load(BASE + '[[variant]]\nname = "a"\n[[variant]]\nname = "b"\ndropout = [0.1, 0.2]\nl2 = 1e-4\n[variant.early_stopping]\npatience = 3\n', tmp_path)
    assert e.seeds() == [0, 1, 2]
    b = e.spec.variant[1]
    kinds = [type(t).__name__ for t in e.techniques(b)]
    assert kinds == ["Dropout", "EarlyStopping", "L2"]  # by technique name
    assert e.techniques(e.spec.variant[0]) == ()
    assert e.spec.model.hidden == [128, 128] and e.spec.train.optimizer == "adam"


def test_sweeps_expand_into_variants(tmp_path):
    e = load(BASE + "[sweep]\ndropout = [0.0, 0.5]\nl2 = {log = [1e-4, 1e-2], num = 3}\n", tmp_path)
    names = [v.name for v in e.spec.variant]
    assert names == [f"dropout={d:g} l2={l:g}" for d in (0.0, 0.5) for l in (1e-4, 1e-3, 1e-2)]
    assert e.spec.variant[4].dropout == 0.5 and e.spec.variant[4].l2 == pytest.approx(1e-3)
    e = load(BASE + '[[variant]]\nname = "es"\n[variant.early_stopping]\nmin_delta = 0.01\n[sweep]\n"early_stopping.patience" = [5, 10]\n', tmp_path)
    assert [v.early_stopping.patience for v in e.spec.variant] == [5, 10]
    assert [v.name for v in e.spec.variant] == ["es early_stopping.patience=5", "es early_stopping.patience=10"]


def test_resolved_toml_round_trips(tmp_path):
    e = load(BASE + "[sweep]\ndropout = [0.0, 0.5]\n", tmp_path)
    text = e.to_toml({"version": "x"})
    again = load(text, tmp_path, "resolved.toml")
    assert again.fingerprint() == e.fingerprint()
    assert tomllib.loads(text)["reglab"] == {"version": "x"}


@pytest.mark.parametrize(
    "extra,expected",
    [
        ('[[variant]]\nname = "a"\n[[variant]]\nname = "b"\n[[variant]]\nname = "c"\ndropout = 1.2\n', "e.toml: variant[2].dropout: must be a number in [0, 1), got 1.2"),
        ('[[variant]]\nname = "a"\nl1 = -1\n', "e.toml: variant[0].l1: must be a number >= 0, got -1"),
        ('[[variant]]\nname = "a"\n[variant.early_stopping]\npatience = -2\n', "e.toml: variant[0].early_stopping.patience: must be an integer >= 0, got -2"),
        ('[[variant]]\nname = "a"\n[[variant]]\nname = "a"\n', "e.toml: variant: names must be unique, 'a' appears 2 times"),
        ("[model]\nactivation = \"swish\"\n", "e.toml: model.activation: must be one of 'relu', 'tanh', 'sigmoid', 'elu', 'gelu', 'linear', got 'swish'"),
        ("[model]\nhidden = [128, \"x\"]\n", "e.toml: model.hidden[1]: must be an integer, got 'x'"),
        ("colour = 1\n", "e.toml: train.colour: unknown key; allowed: optimizer, learning_rate, epochs, batch_size, momentum, nesterov, engine"),
    ],
)
def test_spec_errors_name_file_field_value_and_what_is_allowed(tmp_path, extra, expected):
    assert error(BASE + extra, tmp_path) == expected


BUILT_IN_KEYS = {"dropout", "early_stopping", "gaussian_dropout", "gaussian_noise", "input_noise", "l1", "l2", "max_norm", "mc_dropout"}
BUILT_IN_KEYS |= {"prechelt", "proximal_l1", "weight_decay", "weight_decay_biases"}


def _registered_keys(tables: bool = True, booleans: bool = True) -> set[str]:
    """Every registered technique's variant keys (a table technique: its table's name)."""
    from reglab.engine import registry

    flat = {s.key for cls in registry.techniques() if not cls.table for s in cls.settings() if booleans or s.rule.kind != "bool"}
    return flat | ({cls.name for cls in registry.techniques() if cls.table} if tables else set())


def test_an_unknown_variant_key_lists_every_key(tmp_path):
    head, allowed = error(BASE + '[[variant]]\nname = "a"\ndropuot = 0.5\n', tmp_path).split("; allowed: ")
    assert head == "e.toml: variant[0].dropuot: unknown key"
    keys = allowed.split(", ")
    assert keys[0] == "name" and keys[-6:] == ["learning_rate", "epochs", "batch_size", "optimizer", "momentum", "nesterov"]
    assert BUILT_IN_KEYS <= set(keys[1:-6]) == _registered_keys()  # a registered technique's keys too


def test_an_unsweepable_parameter_lists_the_sweepable_ones(tmp_path):
    head, allowed = error(BASE + "[sweep]\nhidden = [64, 128]\n", tmp_path).split("; sweepable: ")
    assert head == "e.toml: sweep.hidden: not a sweepable parameter"
    keys = allowed.split(", ")
    assert keys[-6:] == ["learning_rate", "epochs", "batch_size", "momentum", "early_stopping.<parameter>", "prechelt.<parameter>"]
    assert BUILT_IN_KEYS - {"weight_decay_biases", "early_stopping", "prechelt"} <= set(keys[:-6])
    assert set(keys[:-6]) == _registered_keys(tables=False, booleans=False)  # a table's go as table.<parameter>


def test_unknown_top_level_key(tmp_path):
    assert error("colour = 1\n" + BASE, tmp_path) == "e.toml: colour: unknown key; allowed: name, seeds, data, model, train, variant, sweep, report"


def test_type_and_structure_errors(tmp_path):
    assert error(BASE.replace("epochs = 5", 'epochs = "many"'), tmp_path) == "e.toml: train.epochs: must be an integer, got 'many'"
    assert error(BASE.replace("epochs = 5", "epochs = 0"), tmp_path) == "e.toml: train.epochs: must be an integer >= 1, got 0"
    assert error(BASE.replace('dataset = "seed-regularization"', ""), tmp_path) == (
        'e.toml: data: give exactly one of dataset = "<built-in>" or path = "<file>"'
    )
    assert error(BASE.replace("seeds = 3", "seeds = [1, 1]"), tmp_path) == "e.toml: seeds: must not repeat a seed, got [1, 1]"
    assert error(BASE + "[data]\n", tmp_path).startswith("e.toml: not valid TOML")
    assert error(BASE.replace('dataset = "seed-regularization"', 'dataset = "moons"\nvalidation = 1.5'), tmp_path) == (
        "e.toml: data.validation: must be a number in (0, 1), got 1.5"
    )
    assert error(BASE.replace('dataset = "seed-regularization"', 'dataset = "moons"\ntest = -0.1'), tmp_path) == (
        "e.toml: data.test: must be a number in [0, 1), got -0.1"
    )
    assert error("name = 1\n[data]\ndataset = 'moons'\n", tmp_path) == "e.toml: name: must be a string, got 1"
    assert error('name = "x"\n', tmp_path) == "e.toml: data: is required"
    assert error("name = \n", tmp_path).startswith("e.toml: not valid TOML:")
    with pytest.raises(UserError) as err:
        Experiment.from_file(tmp_path / "missing.toml")
    assert str(err.value) == f"{tmp_path / 'missing.toml'}: file not found"


def test_variants_may_override_the_optimizer(tmp_path):
    from reglab.engine import SGD, Adam

    e = load(BASE + '[[variant]]\nname = "adam"\n[[variant]]\nname = "sgd"\noptimizer = "sgd"\nmomentum = 0.9\nnesterov = true\n', tmp_path)
    assert e.optimizer(e.spec.variant[0]) == Adam()
    assert e.optimizer(e.spec.variant[1]) == SGD(momentum=0.9, nesterov=True)
    assert error(BASE + '[[variant]]\nname = "s"\noptimizer = "sgd"\nmomentum = 2.0\n', tmp_path) == (
        "e.toml: variant[0].momentum: must be a number in [0, 1], got 2.0"
    )


def test_report_section(tmp_path):
    variants = '[[variant]]\nname = "base"\n[[variant]]\nname = "drop"\ndropout = 0.5\n'
    e = load(BASE + variants + '[report]\nbaseline = "base"\nxlim = [-1, 2]\nreference = { drop = { test_loss = 0.03 } }\n', tmp_path)
    assert e.spec.report.baseline == "base" and e.spec.report.reference == {"drop": {"test_loss": 0.03}}
    # A one-parameter sweep is what the report plots against, unless the file says otherwise.
    assert load(BASE + "[sweep]\ndropout = [0.0, 0.5]\n", tmp_path).spec.report.sweep == "dropout"
    # The report's settings do not change what is trained: a run can be resumed after editing them.
    other = load(BASE + variants + '[report]\nbaseline = "drop"\n', tmp_path)
    assert other.fingerprint() == e.fingerprint()
    assert other.resolved()["report"]["baseline"] == "drop"


@pytest.mark.parametrize(
    "report, message",
    [
        ('baseline = "nope"', "report.baseline: must name a variant ('base', 'drop'), got 'nope'"),
        ("xlim = [2, 1]", "report.xlim: must be [low, high] with low < high, got [2, 1]"),
        ('sweep = "colour"', "report.sweep: must be a variant parameter such as dropout, l2 or early_stopping.patience, got 'colour'"),
        ("reference = { x = { test_loss = 1 } }", "report.reference: 'x' is not a variant; variants: 'base', 'drop'"),
        ("reference = { base = { test_r2 = 1 } }", "report.reference.'base'.test_r2: must be <train|val|test>_<loss|accuracy|mse|mae>, got 'test_r2'"),
        ("colour = 1", "report.colour: unknown key; allowed: baseline, xlim, ylim, sweep, reference, reference_source, note"),
    ],
)
def test_report_section_errors(tmp_path, report, message):
    variants = '[[variant]]\nname = "base"\n[[variant]]\nname = "drop"\ndropout = 0.5\n'
    assert error(BASE + variants + "[report]\n" + report + "\n", tmp_path) == "e.toml: " + message


def test_every_technique_from_an_experiment_file(tmp_path):
    text = BASE + """
[[variant]]
name = "all"
dropout = 0.2
weight_decay = 0.01
weight_decay_biases = true
max_norm = [2.0, 3.0]
proximal_l1 = 0.001
gaussian_noise = 0.1
input_noise = 0.05
gaussian_dropout = 0.1
mc_dropout = 20
[variant.prechelt]
criterion = "PQ"
alpha = 0.5
strip = 5
restore_best_weights = true
"""
    e = load(text, tmp_path)
    kinds = {type(t).__name__: t for t in e.techniques(e.spec.variant[0])}
    assert set(kinds) == {"Dropout", "WeightDecay", "MaxNorm", "ProximalL1", "GaussianNoise", "GaussianDropout", "MCDropout", "Prechelt"}
    assert kinds["MaxNorm"].max_norm == (2.0, 3.0) and kinds["WeightDecay"].biases is True
    assert kinds["GaussianNoise"].input_stddev == 0.05 and kinds["Prechelt"].criterion == "PQ"
    sweep = load(BASE + '[[variant]]\nname = "p"\n[variant.prechelt]\n[sweep]\n"prechelt.alpha" = [0.5, 1.0]\nweight_decay = [0.0, 0.01]\n', tmp_path)
    assert [(v.prechelt.alpha, v.weight_decay) for v in sweep.spec.variant] == [(0.5, 0.0), (0.5, 0.01), (1.0, 0.0), (1.0, 0.01)]


@pytest.mark.parametrize(
    "variant, message",
    [
        ("max_norm = -1", "variant[0].max_norm: must be a number >= 0, got -1"),
        ("max_norm = [1, 2, 3]", "variant[0].max_norm: must be one number or a list of 2 (one per layer), got [1.0, 2.0, 3.0]"),
        ("proximal_l1 = -0.1", "variant[0].proximal_l1: must be a number >= 0, got -0.1"),
        ("weight_decay = -1", "variant[0].weight_decay: must be a number >= 0, got -1"),
        ("gaussian_dropout = 1.5", "variant[0].gaussian_dropout: must be a number in [0, 1), got 1.5"),
        ("input_noise = -2", "variant[0].input_noise: must be a number >= 0, got -2"),
        (
            "mc_dropout = 10",
            "variant[0].mc_dropout: needs dropout or gaussian_dropout above 0 in the same variant (MC dropout samples them), "
            "got mc_dropout = 10 with neither",
        ),
        ("dropout = 0.1\nmc_dropout = -1", "variant[0].mc_dropout: must be an integer in [0, 10000], got -1"),
        ('[variant.prechelt]\ncriterion = "XY"', "variant[0].prechelt.criterion: must be one of 'GL', 'PQ', 'UP', got 'XY'"),
        ("[variant.prechelt]\nalpha = 0", "variant[0].prechelt.alpha: must be a number > 0, got 0"),
        ("[variant.prechelt]\nsize = 3", "variant[0].prechelt.size: unknown key; allowed: criterion, alpha, strips, strip, monitor, restore_best_weights"),
    ],
)
def test_technique_errors(tmp_path, variant, message):
    assert error(BASE + '[model]\nhidden = [8, 8]\n[[variant]]\nname = "v"\n' + variant + "\n", tmp_path) == "e.toml: " + message


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            '[[variant]]\nname = "m"\nmomentum = 0.9\n',
            'e.toml: variant[0].momentum: only applies with optimizer = "sgd", got momentum = 0.9 with optimizer = "adam"',
        ),
        (
            '[[variant]]\nname = "n"\nnesterov = true\n',
            'e.toml: variant[0].nesterov: only applies with optimizer = "sgd", got nesterov = true with optimizer = "adam"',
        ),
        (
            '[[variant]]\nname = "d"\ndropout = [0.0, 0.0]\nmc_dropout = 5\n',
            "e.toml: variant[0].mc_dropout: needs dropout or gaussian_dropout above 0 in the same variant (MC dropout samples them), "
            "got mc_dropout = 5 with neither",
        ),
        (
            '[[variant]]\nname = "b"\n[sweep]\n"early_stopping.patience" = [5, 10]\n',
            "e.toml: sweep.early_stopping.patience: no variant has a [variant.early_stopping] table to sweep; add one to the variants it should vary",
        ),
    ],
    ids=["momentum-under-adam", "nesterov-under-adam", "mc-dropout-without-dropout", "sweep-a-table-nobody-has"],
)
def test_settings_that_would_do_nothing_are_refused(tmp_path, extra, message):
    assert error(BASE + extra, tmp_path) == message


def test_train_momentum_under_adam_is_refused_and_under_sgd_accepted(tmp_path):
    text = BASE.replace("[train]\n", "[train]\nmomentum = 0.5\n")
    assert error(text, tmp_path) == 'e.toml: train.momentum: only applies with optimizer = "sgd", got momentum = 0.5 with optimizer = "adam"'
    assert load(text.replace("[train]\n", '[train]\noptimizer = "sgd"\n'), tmp_path).optimizer().momentum == 0.5
    variant = '[[variant]]\nname = "s"\noptimizer = "sgd"\nmomentum = 0.9\n'
    assert load(BASE + variant, tmp_path).optimizer(load(BASE + variant, tmp_path).spec.variant[0]).momentum == 0.9


def test_sweeping_a_table_parameter_leaves_variants_without_the_table_alone(tmp_path):
    e = load(BASE + '[[variant]]\nname = "baseline"\n[[variant]]\nname = "es"\n[variant.early_stopping]\n[sweep]\n"early_stopping.patience" = [5, 10]\n', tmp_path)
    assert [v.name for v in e.spec.variant] == ["baseline", "es early_stopping.patience=5", "es early_stopping.patience=10"]
    assert e.spec.variant[0].early_stopping is None


def test_momentum_is_checked_against_the_optimizer_it_applies_to(tmp_path):
    sgd = BASE.replace("[train]\n", '[train]\noptimizer = "sgd"\nmomentum = 0.9\n')
    e = load(sgd + '[[variant]]\nname = "sgd"\n[[variant]]\nname = "adam"\noptimizer = "adam"\n', tmp_path)
    assert e.optimizer(e.spec.variant[0]).momentum == 0.9 and e.optimizer(e.spec.variant[1]).name == "adam"
    adam = BASE.replace("[train]\n", "[train]\nmomentum = 0.5\n")
    e = load(adam + '[[variant]]\nname = "a"\n[[variant]]\nname = "s"\noptimizer = "sgd"\n', tmp_path)
    assert e.optimizer(e.spec.variant[1]).momentum == 0.5
