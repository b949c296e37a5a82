"""The bundles' torchrun configs, and bundle workflows on data sets too small for their folds or ranks.

Fast tests check the configs' structure and settings, the sampler and fold helpers, the
one-line errors (also through a real ``python -m monai.bundle run``) and checkpoint retention.
Slow tests run ``multi_gpu_evaluate.json`` and ``multi_gpu_train.json`` under torchrun with two
gloo processes on the CPU.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine
from monai.bundle import ConfigParser
from monai.handlers import CheckpointLoader

from monai_attn.datasets import evaluation_cases, split_cases
from monai_attn.errors import InputError
from monai_attn.synthetic import write_cells_dataset
from monai_attn.training import EpochCheckpointSaver, distributed_sampler, last_checkpoint, one_line_errors
from monai_attn.errors import input_error_in
from test_bundles import BUNDLES, NAMES, config, run_config, run_workflow, workflow

REPO = Path(__file__).resolve().parents[1]
CELLS = "cells_attention_unet"


def parser_of(name: str, *files: str) -> ConfigParser:
    """The bundle's common.json with ``files`` merged over it, as a run reads them."""
    parser = ConfigParser()
    parser.read_config(run_config(name, *files))
    return parser


@pytest.mark.parametrize("name", NAMES)
def test_multi_gpu_evaluate_overrides_ids_that_exist(name):
    base = parser_of(name, "train.json", "evaluate.json")
    for key in ConfigParser.load_config_file(config(name, "multi_gpu_evaluate.json")[0]):
        parent = key.rpartition("#")[0]
        assert not parent or parent in base, key  # a typo would add a dead entry
    merged = parser_of(name, "train.json", "evaluate.json", "multi_gpu_evaluate.json")
    assert merged["validate#sampler"]["_target_"] == "monai_attn.training.distributed_sampler"
    assert merged["validate#sampler"]["role"] == "validation"
    assert merged["validate#dataloader#sampler"] == "@validate#sampler"
    assert merged["run"] == ["$monai_attn.datasets.require_dataset(@dataset_dir)", "$@validate#evaluator.run()"]
    assert any("destroy_process_group" in line for line in merged["finalize"])
    train = parser_of(name, "train.json", "multi_gpu_train.json")
    assert train["train#sampler"]["role"] == "training" and train["validate#sampler"]["role"] == "validation"


@pytest.mark.parametrize("files", [("evaluate.json", "multi_gpu_evaluate.json"), ("multi_gpu_train.json",)])
@pytest.mark.parametrize("cuda", [False, True])
def test_backend_and_device_follow_cuda_and_local_rank(files, cuda, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    parser = parser_of(CELLS, "train.json", *files)
    assert parser.get_parsed_content("dist_backend") == ("nccl" if cuda else "gloo")
    assert parser.get_parsed_content("device") == torch.device("cuda:1" if cuda else "cpu")
    parser["dist_backend"] = "gloo"  # the key that sets the backend: any override is used
    assert "backend=@dist_backend" in " ".join(parser["initialize"])


def test_validation_sampler_scores_every_case_once_and_training_pads_evenly():
    data = list(range(5))
    validation = [list(distributed_sampler(data, "validation", num_replicas=2, rank=r)) for r in (0, 1)]
    assert validation == [[0, 2, 4], [1, 3]]
    training = [list(distributed_sampler(data, "training", num_replicas=2, rank=r)) for r in (0, 1)]
    assert [len(t) for t in training] == [3, 3] and set(training[0] + training[1]) == set(data)
    with pytest.raises(ValueError, match="role must be one of"):
        distributed_sampler(data, "test", num_replicas=2, rank=0)


@pytest.mark.parametrize(("role", "hint"), [
    ("training", "start fewer processes (torchrun --nproc_per_node) or add training cases"),
    ("validation", "start fewer processes (torchrun --nproc_per_node), or validate on more cases (fewer --n_folds)"),
])
def test_fewer_cases_than_processes_is_one_clear_error(role, hint):
    with pytest.raises(InputError) as caught:
        distributed_sampler([0], role, num_replicas=2, rank=1)
    assert str(caught.value) == f"1 {role} case cannot be shared among 2 processes: {hint}"


def items(n: int) -> list[dict[str, str]]:
    return [{"case_id": f"case_{i:02d}", "image": f"case_{i:02d}.png"} for i in range(n)]


def test_split_into_more_folds_than_cases_says_what_to_change():
    with pytest.raises(InputError) as caught:
        split_cases(items(2), n_folds=8)
    assert str(caught.value) == (
        "2 cases cannot be split into 8 folds: every fold needs a case; add cases or lower --n_folds (at least 2)"
    )


def test_evaluation_cases_fall_back_to_all_cases_when_there_is_no_fold(caplog):
    fold = split_cases(items(10), n_folds=5, fold=2, seed=3)[1]
    assert len(fold) == 2 and evaluation_cases(items(10), n_folds=5, fold=2, seed=3) == fold
    assert evaluation_cases(items(10), evaluate_all=True) == items(10)
    with caplog.at_level(logging.WARNING, logger="monai_attn.datasets"):
        assert evaluation_cases(items(2), n_folds=8) == items(2)
    assert "2 cases are fewer than the 8 folds: evaluating all 2 cases, not a validation fold" in caplog.text


def wrapped_input_error() -> RuntimeError:
    """An InputError as MONAI's config parser passes it on: the cause of a RuntimeError."""
    try:
        try:
            raise InputError("too small", path="case.nii.gz")
        except InputError as err:
            raise RuntimeError("Failed to evaluate ConfigExpression") from err
    except RuntimeError as outer:
        return outer


def test_input_errors_end_a_run_in_one_line_and_others_keep_their_traceback(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(args[1]))
    one_line_errors()
    one_line_errors()  # installed once
    error = wrapped_input_error()
    sys.excepthook(RuntimeError, error, error.__traceback__)
    assert capsys.readouterr().err == "error: case.nii.gz: too small\n" and seen == []
    other = KeyError("x")
    sys.excepthook(KeyError, other, None)
    assert seen == [other]  # passed on to the hook before: the usual traceback
    monkeypatch.setenv("MONAI_ATTN_DEBUG", "1")
    sys.excepthook(RuntimeError, error, error.__traceback__)
    assert seen == [other, error] and capsys.readouterr().err == ""
    assert input_error_in(error) is error.__cause__ and input_error_in(other) is None


@pytest.fixture(scope="module")
def two_cells(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cells2")
    write_cells_dataset(folder, cases=2, seed=5, size=64)
    return folder


def test_bundle_training_on_too_few_cases_prints_one_error_line(two_cells, tmp_path):
    files = "['{}','{}']".format(*run_config(CELLS, "train.json"))
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files,
               "--dataset_dir", str(two_cells), "--bundle_root", str(tmp_path), "--n_folds", "8", "--epochs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.splitlines()[-1] == (
        "error: 2 cases cannot be split into 8 folds: every fold needs a case; "
        "add cases or lower --n_folds (at least 2)"
    )


def test_bundle_evaluation_of_fewer_cases_than_folds_scores_them_all(two_cells, tmp_path):
    flow = workflow(CELLS, ("train.json", "evaluate.json"), tmp_path, two_cells, n_folds=8,
                    ckpt_dir=str(BUNDLES / CELLS / "models"), output_dir=str(tmp_path / "eval"))
    run_workflow(flow)
    with open(tmp_path / "eval" / "report" / "per_case.csv", newline="") as table:
        assert len(list(csv.DictReader(table))) == 2


def test_epoch_checkpoints_keep_the_last_two_also_after_a_resume(tmp_path):
    network = torch.nn.Linear(2, 2)

    def train(epochs: int, resume: bool) -> list[str]:
        engine = Engine(lambda e, batch: 0)
        objects = {"network": network, "trainer": engine}
        if resume:
            CheckpointLoader(load_path=last_checkpoint(tmp_path), load_dict=objects).attach(engine)
        EpochCheckpointSaver(str(tmp_path), objects, n_saved=2, save_interval=1).attach(engine)
        engine.run([0, 1], max_epochs=epochs)
        return sorted(p.name for p in tmp_path.iterdir())

    assert train(4, resume=False) == ["checkpoint_epoch=3.pt", "checkpoint_epoch=4.pt"]
    assert train(7, resume=True) == ["checkpoint_epoch=6.pt", "checkpoint_epoch=7.pt"]  # MONAI alone: 3, 4, 6, 7
    assert train(1, resume=False) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=7.pt"]  # a fresh run is kept
    with pytest.raises(ValueError, match="n_saved must be at least 1"):
        EpochCheckpointSaver(str(tmp_path), {"network": network}, n_saved=0)


@pytest.mark.parametrize("name", NAMES)
def test_train_configs_keep_two_epoch_checkpoints(name):
    saver = parser_of(name, "train.json")["train#checkpoint_saver"]
    assert saver["_target_"] == "monai_attn.training.EpochCheckpointSaver" and saver["n_saved"] == 2


# --- slow: torchrun with two gloo processes ----------------------------------------------------


def torchrun(files: list[str], *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "monai.bundle", "run",
               "--config_file", "[" + ",".join(f"'{f}'" for f in files) + "]", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_multi_gpu_evaluate_matches_single_process_evaluation(tmp_path):
    data = tmp_path / "cells5"
    write_cells_dataset(data, cases=5, seed=6, size=64)
    common = ["--dataset_dir", str(data), "--evaluate_all", "True", "--ckpt_dir", str(BUNDLES / CELLS / "models")]
    done = torchrun(run_config(CELLS, "train.json", "evaluate.json", "multi_gpu_evaluate.json"), *common,
                    "--output_dir", str(tmp_path / "two"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                             str(run_config(CELLS, "train.json", "evaluate.json")), *common,
                             "--output_dir", str(tmp_path / "one")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert single.returncode == 0, single.stderr[-3000:]
    two, one = (json.loads((tmp_path / d / "report" / "summary.json").read_text()) for d in ("two", "one"))
    assert two["foreground_mean"]["dice"] == pytest.approx(one["foreground_mean"]["dice"], abs=1e-9)
    with open(tmp_path / "two" / "report" / "per_case.csv", newline="") as table:
        assert len(list(csv.DictReader(table))) == 5  # 3 + 2 cases, none repeated


@pytest.mark.slow
def test_multi_gpu_training_with_fewer_validation_cases_than_ranks_fails_in_one_line(tmp_path):
    data = tmp_path / "cells4"
    write_cells_dataset(data, cases=4, seed=6, size=64)
    done = torchrun(run_config(CELLS, "train.json", "multi_gpu_train.json"), "--dataset_dir", str(data),
                    "--n_folds", "4", "--bundle_root", str(tmp_path), "--num_workers", "0", cwd=tmp_path)
    assert done.returncode != 0
    expected = ("error: 1 validation case cannot be shared among 2 processes: start fewer processes "
                "(torchrun --nproc_per_node), or validate on more cases (fewer --n_folds)")
    lines = [line.split("]: ", 1)[-1] for line in done.stderr.splitlines()]  # torchrun prefixes "[rankN]: "
    assert lines.count(expected) == 2  # once per rank, no traceback from the ranks
    assert "Failed to evaluate ConfigExpression" not in done.stderr
