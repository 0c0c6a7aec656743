import numpy as np
import pytest
import torch
from scipy import stats

from reglab.engine import rng


def test_uniform_is_a_pure_function_of_key_and_index():
    seeds = torch.tensor([0, 1, 2, 3])
    keys = rng.derive_keys(seeds, rng.STREAM_NOISE, 5, 2)
    a = rng.uniform(keys, (7, 3))
    b = rng.uniform(rng.derive_keys(seeds[2:3], rng.STREAM_NOISE, 5, 2), (7, 3))
    assert torch.equal(a[2:3], b)
    assert not torch.equal(a[0], a[1])


def test_every_counter_changes_the_stream():
    seeds = torch.tensor([7])
    base = rng.uniform(rng.derive_keys(seeds, rng.STREAM_NOISE, 1, 2, 3), (64,))
    for words in [(rng.STREAM_SHUFFLE, 1, 2, 3), (rng.STREAM_NOISE, 2, 2, 3), (rng.STREAM_NOISE, 1, 3, 3), (rng.STREAM_NOISE, 1, 2, 4)]:
        other = rng.uniform(rng.derive_keys(seeds, *words), (64,))
        assert not torch.equal(base, other), words


def test_uniform_range_and_distribution():
    keys = rng.derive_keys(torch.arange(50), rng.STREAM_INIT, 0)
    u = rng.uniform(keys, (2000,))
    assert u.dtype == torch.float32
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    # Kolmogorov-Smirnov against U(0, 1) over 100k draws, and no correlation between adjacent members.
    assert stats.kstest(u.flatten().numpy(), "uniform").pvalue > 1e-3
    r = np.corrcoef(u[:-1].flatten().numpy(), u[1:].flatten().numpy())[0, 1]
    assert abs(r) < 0.02


def test_permutations_are_permutations_and_differ_by_seed_and_epoch():
    seeds = torch.tensor([0, 1])
    p0 = rng.permutations(seeds, 0, 80)
    for row in p0:
        assert sorted(row.tolist()) == list(range(80))
    assert not torch.equal(p0[0], p0[1])
    assert not torch.equal(p0, rng.permutations(seeds, 1, 80))
    assert torch.equal(p0[1], rng.permutations(seeds[1:], 0, 80)[0])


@pytest.mark.parametrize("n", [2, 5, 33])
def test_permutations_are_uniform(n):
    # Position of row 0 over many seeds: uniform over the n positions.
    perms = rng.permutations(torch.arange(20000), 3, n)
    pos = (perms == 0).nonzero()[:, 1].numpy()
    counts = np.bincount(pos, minlength=n)
    assert stats.chisquare(counts).pvalue > 1e-3


def _lowbias32_reference(x: int) -> int:
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    x ^= x >> 16
    return x


@pytest.mark.parametrize("n", [1, 7, 64, 1000])  # vector loops and scalar tails alike
def test_bulk_bits_equal_a_pure_python_reference(n):
    seeds = torch.tensor([0, 12345, 2**32 - 1])
    keys = rng.derive_keys(seeds, rng.STREAM_NOISE, 4)
    bits = rng.random_bits(keys, (n,))
    for k, key in enumerate(keys.tolist()):
        expected = [_lowbias32_reference(key ^ i) for i in range(n)]
        got = [b & 0xFFFFFFFF for b in bits[k].tolist()]
        assert got == expected


def test_keep_mask_drops_with_the_probability():
    keys = rng.derive_keys(torch.arange(4), rng.STREAM_NOISE, 0)
    p = torch.tensor([0.0, 0.1, 0.5, 0.97])
    mask = rng.keep_mask(keys, (100_001,), p)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    dropped = 1.0 - mask.mean(1)
    np.testing.assert_allclose(dropped.numpy(), p.numpy(), atol=0.005)
    assert float(dropped[0]) == 0.0


def test_an_epochs_keys_are_each_steps_keys():
    """The trainer derives every step's noise keys once an epoch (EpochKeys); a hook asking its
    context for a step's keys, for all members or some, gets those one derivation per step gives."""
    from reglab.engine.pieces import StepContext

    seeds = torch.tensor([0, 7, 2**31 - 1, 12345, 3], dtype=torch.int64)
    epoch_keys = rng.EpochKeys(seeds, epoch=4, steps=9)
    for step in range(9):
        with_cache = StepContext(seeds, torch.zeros(5), epoch=4, step=step, epoch_keys=epoch_keys)
        without = StepContext(seeds, torch.zeros(5), epoch=4, step=step)
        for stream, layer in [(1, 0), (1, 2), (2, 0), (3, 1)]:
            expected = rng.derive_keys(seeds, rng.STREAM_NOISE, stream, 4, step, layer)
            assert torch.equal(with_cache.noise_keys(stream, layer), expected)
            assert torch.equal(without.noise_keys(stream, layer), expected)
            rows = torch.tensor([1, 4])
            assert torch.equal(with_cache.noise_keys(stream, layer, rows), expected[rows])
