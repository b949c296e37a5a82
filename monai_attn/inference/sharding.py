"""Sharding ``segment`` cases over the processes of a torch.distributed world.

Under ``torchrun --nnodes N --nproc_per_node G -m monai_attn.cli segment -i CASES -o OUT``
every process sees the same sorted case list; :func:`select_shard` gives each rank every
``world_size``-th case of it, so every case is segmented exactly once. The world is joined
only when torchrun's ``WORLD_SIZE`` is above 1 (gloo on CPU, NCCL when CUDA is there), and a
rank runs on ``cuda:LOCAL_RANK`` when CUDA is there. After the batch, :func:`gather_summary`
collects every rank's done/failed cases and quality-control verdicts with
``torch.distributed.all_gather_object``, so rank 0 can print one combined summary and every
rank can exit non-zero when any case failed anywhere.

``--num-parts/--part-id`` (independent jobs started by a scheduler, each maybe a torchrun
world of its own) still apply first: the world shards the cases of its part.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
import torch
import torch.distributed as dist

from monai_attn.inference.batch import BatchSummary, Case, select_part

@dataclass(frozen=True)
class Shard:
    """This process's place in a torch.distributed world (rank 0 of 1 when run alone).

    Attributes:
        rank: global rank, 0..world_size-1 (torchrun's ``RANK``).
        world_size: number of processes over all nodes (``WORLD_SIZE``).
        local_rank: rank on this node, which picks the GPU (``LOCAL_RANK``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """True when several processes share the cases."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, which prints the combined summary."""
        return self.rank == 0

    @property
    def device(self) -> str | None:
        """``cuda:LOCAL_RANK`` in a distributed world with CUDA, else None (the usual choice)."""
        return f"cuda:{self.local_rank}" if self.distributed and torch.cuda.is_available() else None


def current_shard(environ: Mapping[str, str] | None = None) -> Shard:
    """The shard described by torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Without those variables (a plain run) this is rank 0 of a world of 1.

    Raises:
        ValueError: the variables are not integers or the rank is outside the world.
    """
    env = os.environ if environ is None else environ
    try:
        shard = Shard(
            rank=int(env.get("RANK", 0)),
            world_size=int(env.get("WORLD_SIZE", 1)),
            local_rank=int(env.get("LOCAL_RANK", 0)),
        )
    except ValueError as err:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers: {err}") from None
    if shard.world_size < 1 or not 0 <= shard.rank < shard.world_size:
        raise ValueError(f"RANK {shard.rank} is outside a world of WORLD_SIZE {shard.world_size}")
    return shard


@contextmanager
def process_group(shard: Shard) -> Iterator[Shard]:
    """Join the torch.distributed world of ``shard`` for the duration of the block.

    Does nothing for a world of one. Otherwise initialises the default process group from
    torchrun's environment (``MASTER_ADDR``/``MASTER_PORT``): NCCL with this rank's GPU when
    CUDA is there, gloo otherwise; and destroys it on exit, unless it was already initialised
    by the caller.
    """
    if not shard.distributed or dist.is_initialized():
        yield shard
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(shard.local_rank)  # NCCL's collectives run on the current device
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield shard
    finally:
        dist.destroy_process_group()


def select_shard(cases: Sequence[Case], num_parts: int, part_id: int, shard: Shard) -> list[Case]:
    """The cases this process segments: part ``part_id`` of ``num_parts``, then every
    ``world_size``-th case of that part from ``rank`` on.

    The ranks of one world together cover their part exactly once; a rank may get no case
    when the part has fewer cases than the world has ranks.
    """
    return select_part(cases, num_parts, part_id)[shard.rank :: shard.world_size]


def gather_summary(
    summary: BatchSummary, verdicts: Mapping[str, str], shard: Shard
) -> tuple[BatchSummary, dict[str, str]]:
    """Every rank's batch outcome and quality-control verdicts, combined on every rank.

    A collective call: every rank of the world must make it, also a rank with no case.
    Case ids are sorted, the time is the slowest rank's; in a world of one the inputs are
    returned as they are.

    Args:
        summary: this rank's :class:`BatchSummary`.
        verdicts: this rank's ``{case_id: "ok" | "warn" | "fail"}``.
        shard: this process's place in the world.
    """
    if not shard.distributed:
        return summary, dict(verdicts)
    gathered: list[tuple[BatchSummary, dict[str, str]] | None] = [None] * shard.world_size
    dist.all_gather_object(gathered, (summary, dict(verdicts)))
    parts = [part for part in gathered if part is not None]
    combined = BatchSummary(
        done=sorted(case_id for part, _ in parts for case_id in part.done),
        failed=sorted(failure for part, _ in parts for failure in part.failed),
        seconds=max(part.seconds for part, _ in parts),
    )
    return combined, dict(sorted(item for _, part_verdicts in parts for item in part_verdicts.items()))
