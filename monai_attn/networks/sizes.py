"""Input sizes a network accepts, computed from its settings alone (no torch), so that a window
size can be checked on the command line before a network is built."""

from __future__ import annotations

from collections.abc import Sequence


def grid_unet_size_divisor(channels: Sequence[int]) -> int:
    """Every spatial input size of :class:`~monai_attn.networks.GridAttentionUNet` must be a
    multiple of this: one 2x pooling between consecutive levels of ``channels``."""
    return 2 ** (len(channels) - 1)
