"""Deterministic random streams for phantoms.

Every phantom case draws its randomness from ``case_rng(kind, seed, index, *stream)``: a NumPy
generator seeded from the phantom kind, the data-set seed, the case index and an optional stream
key (e.g. a slice number). Case ``i`` therefore depends only on ``(seed, i)``: generating cases
0..9 or only case 7 gives identical bytes for case 7, and the order or parallelism of generation
does not matter.
"""

from __future__ import annotations

import zlib

import numpy as np


def case_rng(kind: str, seed: int, index: int, *stream: int) -> np.random.Generator:
    """A generator for phantom ``kind`` (e.g. ``"abdomen-ct"``), data-set ``seed`` and case ``index``.

    ``stream`` adds further non-negative integers (e.g. a slice index) to obtain independent
    streams within one case.
    """
    if seed < 0 or index < 0 or any(s < 0 for s in stream):
        raise ValueError(f"seed, index and stream keys must be non-negative, got {seed}, {index}, {stream}")
    return np.random.default_rng([zlib.crc32(kind.encode()), seed, index, *stream])
