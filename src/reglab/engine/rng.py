"""Counter-based randomness: every random number is a pure function of its coordinates.

A member's initial weights, its row order in each epoch and its dropout masks are derived from
keys like ``(seed, "shuffle", epoch)`` or ``(seed, "dropout", epoch, step, layer)`` and the index
of the element, never from a generator whose stream depends on how many members share a
population or in which order they were drawn. That is what makes a member's trajectory the same
whether it trains alone, among 400 others, or in a different chunk.

Keys are folded with PCG's output permutation used as a hash (Jarzynski & Olano, "Hash Functions
for GPU Rendering", 2020) on int64 tensors holding 32-bit values, so every product stays below
2**63. The bulk bits (one hash per element of a dropout mask) use Chris Wellons's "lowbias32"
integer hash on int32 tensors, whose products wrap modulo 2**32 as two's-complement hardware does;
int32 runs at twice the vector width of int64 on a CPU. A test checks those bits against a
pure-Python reference.

>>> import torch
>>> k = derive_keys(torch.tensor([0, 1]), STREAM_SHUFFLE, 3)
>>> u = uniform(k, (4,))
>>> u.shape, bool(((u >= 0) & (u < 1)).all())
(torch.Size([2, 4]), True)
"""

from __future__ import annotations

from .lazy import torch

_MASK32 = 0xFFFFFFFF

# Stream identifiers: one per purpose, so that e.g. the shuffle of epoch 3 never shares a key
# with the dropout mask of epoch 3.
STREAM_INIT = 1
STREAM_SHUFFLE = 2
STREAM_NOISE = 3


def pcg_hash(x: torch.Tensor) -> torch.Tensor:
    """Hash 32-bit values held in an int64 tensor to 32-bit values (PCG RXS-M-XS)."""
    state = (x * 747796405 + 2891336453) & _MASK32
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _MASK32
    return (word >> 22) ^ word


def derive_keys(seeds: torch.Tensor, *words: int | torch.Tensor) -> torch.Tensor:
    """Fold counters into one 32-bit key per member: ``h = hash(h ^ word)`` for each word.

    ``seeds`` is a (K,) integer tensor; each word is a Python int or a tensor broadcastable to it.
    """
    h = pcg_hash(seeds.to(torch.int64) & _MASK32)
    for w in words:
        if isinstance(w, torch.Tensor):
            w = w.to(torch.int64)
        h = pcg_hash(h ^ (w & _MASK32))
    return h


class EpochKeys:
    """The noise keys of every step of one epoch, ``(K, steps)`` per (stream, layer), derived on
    first use with one :func:`derive_keys` for all steps: the same keys as
    ``derive_keys(seeds, STREAM_NOISE, stream, epoch, step, layer)`` one step at a time (integer
    arithmetic, element by element), at the cost of one step's. Folding six words costs ~60 small
    operations, which a population of one paid for every dropout layer at every step."""

    def __init__(self, seeds: torch.Tensor, epoch: int, steps: int) -> None:
        self.seeds, self.epoch, self.steps = seeds, epoch, steps
        self._keys: dict[tuple[int, int], torch.Tensor] = {}

    def noise(self, stream: int, layer: int) -> torch.Tensor:
        keys = self._keys.get((stream, layer))
        if keys is None:
            steps = torch.arange(self.steps, device=self.seeds.device)
            keys = self._keys[stream, layer] = derive_keys(self.seeds.view(-1, 1), STREAM_NOISE, stream, self.epoch, steps, layer)
        return keys


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


_LOWBIAS_M1 = _signed32(0x7FEB352D)
_LOWBIAS_M2 = _signed32(0x846CA68B)


def lowbias32(x: torch.Tensor) -> torch.Tensor:
    """Wellons's lowbias32 on an int32 tensor (bits as uint32; ``>>`` masked to be logical)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _LOWBIAS_M1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _LOWBIAS_M2
    return x ^ ((x >> 16) & 0xFFFF)


def random_bits(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """32 random bits per element as int32, shape ``(K, *shape)``: element i of member k is
    ``lowbias32(key_k ^ i)``."""
    n = 1
    for s in shape:
        n *= s
    k32 = (keys.to(torch.int64) & _MASK32).to(torch.int32).reshape(-1, 1)  # wraps to signed
    index = torch.arange(n, device=keys.device, dtype=torch.int32)
    return lowbias32(k32 ^ index).reshape(keys.shape[0], *shape)


def uniform(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 uniforms in [0, 1) with 24 bits of resolution, shape ``(K, *shape)``."""
    return ((random_bits(keys, shape) >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))


def normal(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 standard normals, shape ``(K, *shape)``, by Box-Muller from two 24-bit uniforms.

    Each member's draws are made in a block padded to a multiple of 32 elements, so that the
    transcendental functions never put one of its elements in torch's scalar tail loop (which
    rounds differently): element i of member k depends on its key and i only.
    """
    n = 1
    for s in shape:
        n *= s
    padded = -(-n // 32) * 32
    bits = random_bits(keys, (2, padded))
    u1 = (((bits[:, 0] >> 8) & 0xFFFFFF) + 1).to(torch.float32) * (1.0 / (1 << 24))  # (0, 1]
    u2 = ((bits[:, 1] >> 8) & 0xFFFFFF).to(torch.float32) * (1.0 / (1 << 24))  # [0, 1)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * torch.pi) * u2)
    return z[:, :n].reshape(keys.shape[0], *shape)


def keep_mask(keys: torch.Tensor, shape: tuple[int, ...], drop_probability: torch.Tensor) -> torch.Tensor:
    """float32 0/1 mask of shape ``(K, *shape)``: each element is 0 with ``drop_probability[k]``
    (rounded to a multiple of 2**-16), else 1.

    Every 32-bit hash feeds two elements (16 bits each), and the mask is made with integer
    arithmetic and one conversion: on a CPU, boolean tensors and ``torch.where`` take a slow path.
    """
    n = 1
    for s in shape:
        n *= s
    bits = random_bits(keys, ((n + 1) // 2,))
    halves = torch.stack([bits & 0xFFFF, (bits >> 16) & 0xFFFF], dim=-1).reshape(keys.shape[0], -1)[:, :n]
    threshold = torch.round(drop_probability.to(torch.float64) * 65536).to(torch.int32).view(-1, 1)
    kept = ((halves - threshold) >> 31) + 1  # 0 where halves < threshold, else 1
    return kept.to(torch.float32).reshape(keys.shape[0], *shape)


def permutations(seeds: torch.Tensor, epoch: int, n: int) -> torch.Tensor:
    """The row order of each member in ``epoch``: a (K, n) int64 tensor of permutations of range(n).

    A member's permutation depends on its seed and the epoch only (ties of the 32-bit sort keys are
    broken by row index, so the order is fully determined).
    """
    keys = derive_keys(seeds, STREAM_SHUFFLE, epoch)
    return torch.sort(random_bits(keys, (n,)), dim=1, stable=True).indices
