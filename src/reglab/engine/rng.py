"""Counter-based randomness: every random number is a pure function of its coordinates.

A member's initial weights, its row order in each epoch and its dropout masks are derived from
keys like ``(seed, "shuffle", epoch)`` or ``(seed, "dropout", epoch, step, layer)`` and the index
of the element, never from a generator whose stream depends on how many members share a
population or in which order they were drawn. That is what makes a member's trajectory the same
whether it trains alone, among 400 others, or in a different chunk.

The hash is PCG's output permutation used as a hash (Jarzynski & Olano, "Hash Functions for GPU
Rendering", 2020), computed on int64 tensors holding 32-bit values so that every product stays
below 2**63: no overflow, identical bits on every device.

>>> import torch
>>> k = derive_keys(torch.tensor([0, 1]), STREAM_SHUFFLE, 3)
>>> u = uniform(k, (4,))
>>> u.shape, bool(((u >= 0) & (u < 1)).all())
(torch.Size([2, 4]), True)
"""

from __future__ import annotations

import torch

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


def random_bits(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """32-bit hashes of shape ``(K, *shape)``: element i of member k is ``hash(key_k ^ i)``."""
    n = 1
    for s in shape:
        n *= s
    index = torch.arange(n, device=keys.device, dtype=torch.int64)
    return pcg_hash(keys.reshape(-1, 1) ^ index).reshape(keys.shape[0], *shape)


def uniform(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 uniforms in [0, 1) with 24 bits of resolution, shape ``(K, *shape)``."""
    return (random_bits(keys, shape) >> 8).to(torch.float32) * (1.0 / (1 << 24))


def permutations(seeds: torch.Tensor, epoch: int, n: int) -> torch.Tensor:
    """The row order of each member in ``epoch``: a (K, n) int64 tensor of permutations of range(n).

    A member's permutation depends on its seed and the epoch only (ties of the 32-bit sort keys are
    broken by row index, so the order is fully determined).
    """
    keys = derive_keys(seeds, STREAM_SHUFFLE, epoch)
    return torch.sort(random_bits(keys, (n,)), dim=1, stable=True).indices
