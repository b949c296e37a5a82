"""Deterministic random streams for phantoms, with test cases on a stream training never uses.

Every phantom case draws its randomness from ``case_rng(kind, seed, index, *stream)``: a NumPy
generator seeded from the phantom kind, the generator seed, the case index and an optional
stream key (e.g. a slice number). A case therefore depends only on its ``(seed, index)``:
generating cases 0..9 or only case 7 gives identical bytes for case 7, and the order or
parallelism of generation does not matter.

Training and test cases of a data set come from disjoint seeds (:func:`case_key`): training
case ``i`` of ``--seed S`` is ``(S, i)``, test case ``j`` is ``(S + HELD_OUT_SEED_OFFSET, j)``.
Data-set seeds are limited to ``0 .. MAX_SEED`` (below the offset), so no test case of any data
set is ever a training case of another (``synth --cases 20 --test-cases 5`` test cases are not
among the ``--cases 32 --seed 0`` training cases a bundle was trained on).
"""

from __future__ import annotations

import zlib

import numpy as np

#: Added to the data-set seed for test cases; data-set seeds stay below it.
HELD_OUT_SEED_OFFSET = 2**31
#: Largest data-set seed (``--seed``).
MAX_SEED = HELD_OUT_SEED_OFFSET - 1


def case_rng(kind: str, seed: int, index: int, *stream: int) -> np.random.Generator:
    """A generator for phantom ``kind`` (e.g. ``"abdomen-ct"``), generator ``seed`` and case ``index``.

    ``stream`` adds further non-negative integers (e.g. a slice index) to obtain independent
    streams within one case.
    """
    if seed < 0 or index < 0 or any(s < 0 for s in stream):
        raise ValueError(f"seed, index and stream keys must be non-negative, got {seed}, {index}, {stream}")
    return np.random.default_rng([zlib.crc32(kind.encode()), seed, index, *stream])


def case_key(seed: int, index: int, cases: int) -> tuple[int, int]:
    """The ``(seed, index)`` case ``index`` of a data set is generated from.

    Args:
        seed: the data-set seed (``0 .. MAX_SEED``).
        index: position in the data set: ``0 .. cases-1`` training, ``cases ..`` test.
        cases: number of training cases.

    Returns:
        ``(seed, index)`` for a training case, ``(seed + HELD_OUT_SEED_OFFSET, index - cases)``
        for a test case.
    """
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"data-set seed must be 0 .. {MAX_SEED}, got {seed}")
    if index < cases:
        return seed, index
    return seed + HELD_OUT_SEED_OFFSET, index - cases
