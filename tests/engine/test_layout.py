"""Every kernel the engine runs on a whole population gives member i what it gives member i alone.

The engine's inventory of places where a member's numbers are a slice of a stacked tensor, and
what could make a kernel's result depend on the slice's position (its address, its lane in a
vector loop, the thread that computes it):

- matrix products (forward, both gradients): BLAS picks code paths by address -> every operand
  and product goes through ``layout.blas_operand`` / ``layout.empty`` (``test_products_...``);
- parameters, gradients and optimizer moments live in ``Stacked``, members on 64-byte
  boundaries (``test_stacked_...``); the optimizer's elementwise passes are exact arithmetic;
- activations, losses and metrics: elementwise functions whose vector and scalar code round
  differently would depend on the population's size and the thread count
  (``test_elementwise_...``, forward and gradient, at 1-4 threads);
- reductions per member (the loss's mean over rows, the penalties' sums, the one-unit head's
  row sums, the bias gradient) (``test_reductions_...``);
- random numbers (dropout masks, noise, initial weights): counter-based, and the normals'
  transcendental functions (``test_random_...``).

Each test builds a population of identical members and checks every member against the same
computation on one member, in the layouts the engine produces, over sizes chosen to put members at
every offset modulo 16 floats and tensors past torch's parallel grain (32,768 elements).
"""

import itertools

import pytest
import torch

from reglab.engine import Architecture, layout, rng
from reglab.engine.losses import binary_accuracy, binary_crossentropy, categorical_accuracy, categorical_crossentropy
from reglab.engine.losses import mean_absolute_error, mean_squared_error, member_mean, member_sum
from reglab.engine.model import ACTIVATIONS, _bmm, gradients
from reglab.engine.stacked import Stacked

THREADS = (1, 2, 3, 4)
POPULATIONS = (2, 3, 5, 33, 70)


@pytest.fixture(params=THREADS, ids=lambda n: f"{n} threads")
def threads(request):
    saved = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(saved)


def _population(one: torch.Tensor, K: int) -> torch.Tensor:
    """K copies of ``one`` (shape (1, ...)) in one contiguous tensor: member i starts i * size in."""
    return one.expand(K, *one.shape[1:]).contiguous()


def _mismatches(alone: torch.Tensor, together: torch.Tensor) -> list[int]:
    return [i for i in range(together.shape[0]) if not torch.equal(alone[0], together[i])]


# -- matrix products ------------------------------------------------------------------------------

SIZES = [*range(1, 18), 22, 31, 33, 87, 129]


def _stacked(one: torch.Tensor, K: int, transposed: bool, shift: int = 0) -> torch.Tensor:
    """K copies of ``one`` (1, r, c), row-major or as the transposed view of a column-major
    stack (the layout autograd hands a product's gradient), starting ``shift`` floats into a
    buffer."""
    source = one.transpose(1, 2) if transposed else one
    population = torch.empty(shift + K * source.numel())[shift:].view(K, *source.shape[1:])
    population.copy_(source.expand(K, *source.shape[1:]))
    return population.transpose(1, 2) if transposed else population


@pytest.mark.parametrize("m", [1, 7, 32])
def test_products_do_not_depend_on_where_a_member_sits(m):
    """``_bmm`` of contiguous populations (members at every offset), of transposed views and of
    operands starting mid-buffer, against the member alone in the same layout, for every pair of
    sizes above."""
    g = torch.Generator().manual_seed(m)
    failures = []
    for k, n in itertools.product(SIZES, SIZES):
        a1, b1 = torch.randn(1, m, k, generator=g), torch.randn(1, k, n, generator=g)
        for transpose_a, transpose_b in itertools.product((False, True), (False, True)):
            alone = _bmm(_stacked(a1, 1, transpose_a), _stacked(b1, 1, transpose_b))
            for K, shift in itertools.product((2, 3, 17), (0, 3)):  # 3: a buffer that starts 12 bytes in
                a, b = _stacked(a1, K, transpose_a, shift), _stacked(b1, K, transpose_b)
                if bad := _mismatches(alone, _bmm(a, b)):
                    failures.append((m, k, n, K, shift, transpose_a, transpose_b, bad))
    assert not failures, f"(m, k, n, population, shift, transposed a, transposed b, members): {failures[:10]}"


def test_a_product_written_into_a_buffer_is_the_product():
    """The trainer's kernel gradients are written into their place in Stacked storage."""
    a, b = torch.randn(5, 3, 22), torch.randn(5, 22, 87)
    out = Stacked.zeros([torch.zeros(5, 3, 87)]).views[0]
    result = _bmm(a, b, out=out)
    assert result.data_ptr() == out.data_ptr() and torch.equal(result, _bmm(a, b))
    with pytest.raises(ValueError, match="64-byte boundary"):
        _bmm(a, b, out=torch.zeros(1 + 5 * 3 * 87)[1:].view(5, 3, 87))  # 4 bytes off


def test_dense_gradients_do_not_depend_on_where_a_member_sits():
    """Forward and gradients of dense layers as the trainer computes them (``gradients``), each
    member against the layers alone: a linear layer below the one tested passes the tested layer's
    input gradient on into its own kernel gradient."""
    g = torch.Generator().manual_seed(0)
    for fan_in, fan_out, rows, K in itertools.product((3, 22, 87), (5, 22, 87), (1, 7), (2, 7)):
        arch = Architecture(n_inputs=3, hidden=(fan_in,), activation="linear", task="regression", n_outputs=fan_out)
        shapes = [(1, 3, fan_in), (1, fan_in), (1, fan_in, fan_out), (1, fan_out)]
        params1 = [torch.randn(s, generator=g) for s in shapes]
        x1, up1 = torch.randn(1, rows, 3, generator=g), torch.randn(1, rows, fan_out, generator=g)

        def run(params, x, up):
            out = Stacked.zeros(params).views
            with torch.no_grad():
                logits, _ = gradients(arch, params, x, lambda z: (z * up).sum((1, 2)), out)
            return [logits, *out]

        alone = run(params1, x1, up1)
        together = run([_population(p, K) for p in params1], _population(x1, K), _population(up1, K))
        names = ("output", "first kernel gradient", "first bias gradient", "kernel gradient", "bias gradient")
        for name, a, t in zip(names, alone, together):
            assert not _mismatches(a, t), f"{name} of a {fan_in}x{fan_out} layer, {rows} rows, population {K}"


# -- Stacked storage -------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [1, 2, 3, 7, 33])
def test_stacked_members_start_on_64_byte_boundaries(K):
    shapes = [(K, w, v) for w, v in itertools.product((1, 3, 22, 87), (1, 5, 87))] + [(K, w) for w in (1, 3, 22, 87)]
    stacked = Stacked.of([torch.randn(s) for s in shapes])
    for view, shape in zip(stacked.views, shapes):
        assert tuple(view.shape) == shape and layout.is_member_aligned(view)
        assert all(view[i].data_ptr() % 64 == 0 for i in range(K))
    for kernel in stacked.views[:-4]:
        assert layout.blas_operand(kernel).data_ptr() == kernel.data_ptr()  # taken as it is, no copy


# -- elementwise functions -------------------------------------------------------------------------


def _targets(task, logits):
    if task == "binary":
        return (logits > 0).float()
    return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()


ELEMENTWISE = {
    **{f"activation {name}": (fn, None) for name, fn in ACTIVATIONS.items()},
    "binary crossentropy": (binary_crossentropy(True), "binary"),
    "binary crossentropy from logits": (binary_crossentropy(False), "binary"),
    "categorical crossentropy": (categorical_crossentropy(True), "multiclass"),
    "categorical crossentropy from logits": (categorical_crossentropy(False), "multiclass"),
    "mse": (mean_squared_error, "multiclass"),
    "mae": (mean_absolute_error, "multiclass"),
    "binary accuracy": (binary_accuracy, "binary"),
    "categorical accuracy": (categorical_accuracy, "multiclass"),
}
# (rows, columns): per-member sizes that are and are not multiples of 16 and 32, and populations
# of these whose total passes torch's parallel grain.
BLOCKS = [(1, 1), (1, 5), (7, 1), (7, 22), (37, 3), (48, 22), (64, 87), (37, 257)]


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_work_does_not_depend_on_the_population(name, threads):
    fn, task = ELEMENTWISE[name]
    g = torch.Generator().manual_seed(len(name))
    failures = []
    for rows, columns in BLOCKS:
        if task == "binary":
            columns = 1
        elif task == "multiclass":
            columns = max(columns, 2)
        x1 = torch.randn(1, rows, columns, generator=g) * 4
        x1[0, 0, 0] = 100.0  # far out in a tail of the function, where an overflow would show
        call = (lambda x: fn(x)) if task is None else (lambda x: fn(x, _targets(task, x.detach())))

        def run(x):
            x = x.clone().requires_grad_(True)
            y = call(x)
            grad = torch.autograd.grad(y, x, torch.ones_like(y))[0] if y.requires_grad else None
            return y.detach(), grad

        y1, g1 = run(x1)
        if g1 is not None:
            assert torch.isfinite(g1).all(), f"{name}: a gradient that is not finite"
        for K in POPULATIONS:
            y, grad = run(_population(x1, K))
            if bad := _mismatches(y1, y) + (_mismatches(g1, grad) if g1 is not None else []):
                failures.append((rows, columns, K, sorted(set(bad))[:5]))
    assert not failures, f"{name} at {threads} threads: (rows, columns, population, members): {failures}"


# -- reductions ------------------------------------------------------------------------------------

REDUCTIONS = {
    "member_sum": lambda x: member_sum(x.reshape(x.shape[0], -1)),
    "member_mean": lambda x: member_mean(x.reshape(x.shape[0], -1)),
    "row sums (the one-unit head)": lambda x: x.sum(-1),
    "column sums (the bias gradient)": lambda x: x.sum(1),
    "penalty sums of a Stacked view": lambda x: member_sum(torch.abs(Stacked.of([x]).views[0]).reshape(x.shape[0], -1)),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_do_not_depend_on_the_population(name, threads):
    fn = REDUCTIONS[name]
    g = torch.Generator().manual_seed(1)
    failures = []
    for rows, columns in [*BLOCKS, (129, 257), (1000, 3)]:
        x1 = torch.randn(1, rows, columns, generator=g)
        for K in POPULATIONS:
            if bad := _mismatches(fn(x1), fn(_population(x1, K))):
                failures.append((rows, columns, K, bad[:5]))
    assert not failures, f"{name} at {threads} threads: (rows, columns, population, members): {failures}"


# -- random numbers --------------------------------------------------------------------------------


def test_random_numbers_do_not_depend_on_the_population(threads):
    """Uniforms (initial weights), normals (Gaussian noise) and keep masks (dropout), drawn for
    a population whose members all hold one key, against the key alone."""
    key = rng.derive_keys(torch.tensor([7]), rng.STREAM_NOISE, 1, 2, 3)
    failures = []
    for shape in [(1,), (5,), (7, 22), (37, 257), (48, 87)]:
        draws = {
            "uniform": lambda keys: rng.uniform(keys, shape),
            "normal": lambda keys: rng.normal(keys, shape),
            "keep_mask": lambda keys: rng.keep_mask(keys, shape, torch.full((len(keys),), 0.3)),
        }
        for (what, draw), K in itertools.product(draws.items(), POPULATIONS):
            if bad := _mismatches(draw(key), draw(key.expand(K))):
                failures.append((what, shape, K, bad[:5]))
    assert not failures, f"at {threads} threads: (draw, shape, population, members): {failures}"
