"""Data sharing for the bundles' torchrun workflows (``multi_gpu_train.json``, ``multi_gpu_evaluate.json``).

MONAI's ``DistributedSampler`` gives each rank its share of a data set. On small data sets it
fails late and obscurely: with fewer cases than ranks an uneven sampler raises "the dataset
length is less than the number of participating ranks" from deep inside the config parser, and
an even one silently repeats cases. :func:`distributed_sampler` picks the right mode for the
role and says in one line what to change when the data set is too small.
"""

from __future__ import annotations

from collections.abc import Sized

import torch
import torch.distributed as dist
from monai.data import DistributedSampler

from monai_attn.errors import InputError
from monai_attn.wording import plural

#: Sampler roles: training pads every rank to the same number of batches, validation does not.
SAMPLER_ROLES = ("training", "validation")


def default_backend() -> str:
    """``"nccl"`` when CUDA is there, else ``"gloo"`` (the bundles' ``dist_backend`` default)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def distributed_sampler(
    dataset: Sized, role: str = "validation", num_replicas: int | None = None, rank: int | None = None
) -> DistributedSampler:
    """A ``DistributedSampler`` for a training or validation data set, checked against the world size.

    - ``"training"``: shuffled, ``even_divisible=True``: every rank runs the same number of
      iterations per epoch, which DDP's gradient all-reduce needs (a few cases are repeated
      to pad the last round).
    - ``"validation"`` (also evaluation): in order, ``even_divisible=False``: every case is
      scored exactly once; ranks may hold one case more than others.

    Args:
        dataset: the data set to share.
        role: ``"training"`` or ``"validation"``.
        num_replicas, rank: the world size and this rank (default: the initialised process group).

    Raises:
        InputError: fewer cases than ranks (every rank needs at least one case).
    """
    if role not in SAMPLER_ROLES:
        raise ValueError(f"role must be one of {SAMPLER_ROLES}, got {role!r}")
    world = num_replicas if num_replicas is not None else dist.get_world_size()
    cases = len(dataset)
    if cases < world:
        if role == "training":
            hint = "start fewer processes (torchrun --nproc_per_node) or add training cases"
        else:
            hint = "start fewer processes (torchrun --nproc_per_node), or validate on more cases (fewer --n_folds)"
        raise InputError(f"{plural(cases, role + ' case')} cannot be shared among {world} processes: {hint}")
    training = role == "training"
    return DistributedSampler(
        dataset, even_divisible=training, num_replicas=num_replicas, rank=rank, shuffle=training
    )
