"""``segment`` under torch.distributed: cases shared by rank, one combined summary, one exit code.

The distributed tests run 2 gloo processes on the CPU: the sharding and gathering functions
with a cheap fake work function, then the real command line in both ways it is started
(torch.multiprocessing, to read each rank's exit code; torchrun, as users start it: slow).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from monai_attn.inference.batch import Case, run_batch
from monai_attn.inference.sharding import Shard, current_shard, gather_summary, process_group, select_shard
from test_inference import ThresholdNet, ct_config, phantom_hu, write_nifti

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_env(rank: int, world_size: int, port: int) -> dict[str, str]:
    """The variables torchrun sets for one rank on one node."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def cases(n: int) -> list[Case]:
    return [Case(f"case_{i:02d}", Path(f"in/case_{i:02d}.nii.gz"), Path(f"out/case_{i:02d}.nii.gz")) for i in range(n)]


def test_current_shard_reads_torchrun_variables():
    assert current_shard({}) == Shard(rank=0, world_size=1, local_rank=0)
    shard = current_shard({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (shard.rank, shard.world_size, shard.local_rank, shard.distributed, shard.is_main) == (5, 8, 1, True, False)
    with pytest.raises(ValueError, match="RANK 8 is outside a world of WORLD_SIZE 8"):
        current_shard({"RANK": "8", "WORLD_SIZE": "8"})
    with pytest.raises(ValueError, match="must be integers"):
        current_shard({"RANK": "x", "WORLD_SIZE": "2"})


@pytest.mark.parametrize(("n_cases", "num_parts", "world_size"), [(7, 1, 2), (10, 2, 3), (2, 1, 4), (9, 3, 2)])
def test_parts_and_ranks_cover_every_case_once(n_cases, num_parts, world_size):
    every = cases(n_cases)
    taken = [
        c.case_id
        for part in range(num_parts)
        for rank in range(world_size)
        for c in select_shard(every, num_parts, part, Shard(rank=rank, world_size=world_size))
    ]
    assert sorted(taken) == [c.case_id for c in every]  # each exactly once
    sizes = [len(select_shard(every, num_parts, 0, Shard(rank=r, world_size=world_size))) for r in range(world_size)]
    assert max(sizes) - min(sizes) <= 1  # balanced within a part


def _fake_batch_rank(rank: int, world_size: int, port: int, n_cases: int, out_dir: str) -> None:
    """One rank: fake-segment its shard (appending to a log per case; case_03 fails), gather."""
    os.environ.update(world_env(rank, world_size, port))
    with process_group(current_shard()) as shard:
        assert dist.is_initialized() and dist.get_backend() == "gloo"
        mine = select_shard(cases(n_cases), 1, 0, shard)

        def work(case: Case) -> None:
            with open(Path(out_dir) / f"{case.case_id}.log", "a") as log:
                log.write(f"rank {shard.rank}\n")
            if case.case_id == "case_03":
                raise ValueError("fake failure")

        summary = run_batch(work, mine)
        verdicts = {cid: ("warn" if cid == "case_04" else "ok") for cid in summary.done}
        summary, verdicts = gather_summary(summary, verdicts, shard)
        result = {"done": summary.done, "failed": summary.failed, "verdicts": verdicts,
                  "mine": [c.case_id for c in mine]}
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    assert not dist.is_initialized()  # the group is destroyed on leaving the block


def test_gather_summary_combines_every_rank_with_gloo(tmp_path):
    n_cases = 5
    mp.spawn(_fake_batch_rank, args=(2, free_port(), n_cases, str(tmp_path)), nprocs=2, join=True)
    ids = [c.case_id for c in cases(n_cases)]
    logs = {cid: (tmp_path / f"{cid}.log").read_text().splitlines() for cid in ids}
    assert all(len(lines) == 1 for lines in logs.values()), logs  # every case run exactly once
    assert logs["case_00"] == ["rank 0"] and logs["case_01"] == ["rank 1"]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0]["mine"] == ["case_00", "case_02", "case_04"] and results[1]["mine"] == ["case_01", "case_03"]
    for result in results:  # both ranks hold the whole picture
        assert result["done"] == ["case_00", "case_01", "case_02", "case_04"]
        assert result["failed"] == [["case_03", f"{Path('in/case_03.nii.gz')}: ValueError: fake failure"]]
        assert result["verdicts"] == {"case_00": "ok", "case_01": "ok", "case_02": "ok", "case_04": "warn"}


def test_world_of_one_needs_no_process_group():
    summary = run_batch(lambda case: None, cases(2))
    with process_group(current_shard({})) as shard:
        assert not dist.is_initialized()
        combined, verdicts = gather_summary(summary, {"case_00": "ok"}, shard)
    assert combined is summary and verdicts == {"case_00": "ok"}


@pytest.fixture()
def tiny_cases(tmp_path) -> tuple[Path, list[str]]:
    """Four small phantoms and ``--model/--config`` arguments of a thresholding TorchScript model."""
    folder = tmp_path / "cases"
    folder.mkdir()
    for i in range(4):
        write_nifti(folder / f"case_{i}.nii.gz", phantom_hu((24, 20, 8), seed=i), np.eye(4))
    weights = tmp_path / "threshold.ts"
    torch.jit.save(torch.jit.script(ThresholdNet()), str(weights))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ct_config(roi_size=[32, 32, 32], spacing_mm=None, postprocess=False)))
    return folder, ["--model", str(weights), "--config", str(config), "--trust-config", "--precision", "fp32"]


def _cli_rank(rank: int, world_size: int, port: int, argv: list[str], out_dir: str) -> None:
    """One rank of ``monai-attn segment``: its exit code goes to ``code<rank>``."""
    from monai_attn.cli import main

    os.environ.update(world_env(rank, world_size, port))
    torch.set_num_threads(1)
    (Path(out_dir) / f"code{rank}").write_text(str(main(argv)))


def test_segment_fails_on_every_rank_when_one_rank_fails_a_case(tiny_cases, tmp_path):
    folder, model = tiny_cases
    (folder / "case_1.nii.gz").write_bytes(b"")  # rank 1's first case: unreadable
    out = tmp_path / "out"
    argv = ["segment", "-i", str(folder), "-o", str(out), *model]
    mp.spawn(_cli_rank, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True)
    assert [(tmp_path / f"code{r}").read_text() for r in (0, 1)] == ["1", "1"]
    assert sorted(p.name for p in out.iterdir()) == ["case_0.nii.gz", "case_2.nii.gz", "case_3.nii.gz"]


@pytest.mark.slow
def test_torchrun_segment_writes_every_case_once(tiny_cases, tmp_path):
    folder, model = tiny_cases
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_port", str(free_port()), "-m", "monai_attn.cli", "segment", "-i", str(folder), "-o", str(out),
               *model]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    runs = re.findall(r"^(case_\d): [\d.]+ s \(.*windows?(?: of \S+)? run", log, flags=re.MULTILINE)
    assert sorted(runs) == ["case_0", "case_1", "case_2", "case_3"]  # each case segmented once, over both ranks
    assert sorted(p.name for p in out.iterdir()) == [f"case_{i}.nii.gz" for i in range(4)]
    assert log.count("segmented 4 of 4 cases") == 1  # one combined summary, from rank 0
