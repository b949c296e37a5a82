"""MONAI bundles: configs, metadata, training (resume, reproducibility), evaluation, inference, export.

Fast tests run each bundle's real configs on tiny phantom data sets (a few voxels per organ,
1-2 iterations) through MONAI's own ``ConfigWorkflow``, as ``python -m monai.bundle run``
does. Slow tests run the CLI under ``torchrun`` (2 CPU processes, gloo) and check the shipped
weights against the Dice recorded in each bundle's metadata on freshly generated phantoms.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Events
from ignite.handlers import Checkpoint
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.handlers import CheckpointSaver
from monai.inferers import SimpleInferer
from PIL import Image

from monai_attn.errors import InputError
from monai_attn.synthetic import write_abdomen_ct_dataset, write_cells_dataset, write_retina_dataset
from monai_attn.training import KeyMetricState, PrecisionInferer, bundle_dir, last_checkpoint, warmup_lr_schedule

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
NAMES = ("abdomen_ct_attention_unet", "retina_attention_unet", "cells_attention_unet")

#: Metadata keys every bundle must have (MONAI bundle specification and the issue).
REQUIRED_METADATA = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version", "task", "description",
    "authors", "copyright", "data_source", "intended_use", "network_data_format", "eval_metrics", "training",
)
REQUIRED_TENSOR_FORMAT = (
    "type", "format", "modality", "num_channels", "spatial_shape", "dtype", "value_range", "channel_def",
)

#: Tiny-run overrides per bundle: small grids and patches, no worker processes, one fold split.
TINY = {
    "abdomen_ct_attention_unet": {"spacing_mm": [4.0, 4.0, 4.0], "patch_size": [16, 16, 16]},
    "retina_attention_unet": {"locator_size": [64, 64], "crop_size": [64, 64], "patch_size": [32, 32], "batch_size": 1,
                              "num_samples": 2},
    "cells_attention_unet": {"patch_size": [32, 32], "batch_size": 1, "num_samples": 2},
}
COMMON_TINY = {"num_workers": 0, "n_folds": 2, "epochs": 1, "val_interval": 1}


def config(name: str, *files: str) -> list[str]:
    return [str(BUNDLES / name / "configs" / f) for f in files]


def run_config(name: str, *files: str) -> list[str]:
    """The config files of a run: the bundle's common.json, then ``files`` merged over it."""
    return config(name, "common.json", *files)


def workflow(name: str, files: tuple[str, ...], root: Path, dataset: Path, **overrides) -> ConfigWorkflow:
    """The bundle's workflow as ``monai.bundle run`` builds it, on tiny data, outputs under ``root``.

    ``root`` is the bundle root, and for training also the run folder (``--output_dir``), so that a
    trained ``root`` is laid out as a bundle: ``models/model.pt``.
    """
    settings = {**COMMON_TINY, **TINY[name], **overrides}
    if files == ("train.json",):
        settings.setdefault("output_dir", str(root))
    flow = ConfigWorkflow(
        config_file=run_config(name, *files),
        meta_file=str(BUNDLES / name / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=None,
        bundle_root=str(root),
        dataset_dir=str(dataset),
        **settings,
    )
    return flow


def run_workflow(flow: ConfigWorkflow) -> ConfigWorkflow:
    flow.initialize()
    flow.run()
    flow.finalize()
    return flow


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """Tiny phantom data sets in MSD layout: 4 training cases each (2 train, 2 validation)."""
    root = tmp_path_factory.mktemp("phantoms")
    write_abdomen_ct_dataset(root / "ct", cases=4, seed=3, test_cases=1, size=(40, 40, 32), spacing_mm=(4.0, 4.0, 4.0),
                             dicom=True)
    write_retina_dataset(root / "retina", cases=4, seed=3, size=64)
    write_cells_dataset(root / "cells", cases=4, seed=3, size=64)
    return {"abdomen_ct_attention_unet": root / "ct", "retina_attention_unet": root / "retina",
            "cells_attention_unet": root / "cells"}


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory) -> dict[str, Path]:
    """Each bundle trained for one epoch (2 iterations) on its tiny data set: the bundle roots."""
    torch.set_num_threads(1)
    roots = {}
    for name in NAMES:
        root = tmp_path_factory.mktemp(name)
        run_workflow(workflow(name, ("train.json",), root, datasets[name]))
        roots[name] = root
    return roots


# --- metadata and config structure ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_metadata_has_required_keys_and_version_in_changelog(name):
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    assert [k for k in REQUIRED_METADATA if k not in meta] == []
    assert meta["name"] == name
    assert meta["version"] in meta["changelog"]
    for key in ("inputs", "outputs"):
        for tensor in meta["network_data_format"][key].values():
            assert [k for k in REQUIRED_TENSOR_FORMAT if k not in tensor] == []
            assert len(tensor["channel_def"]) == tensor["num_channels"]
    assert meta["eval_metrics"], "the metrics the shipped weights reached must be recorded"
    assert "monai-attn synth" in meta["training"]["data_command"]
    assert "monai.bundle run" in meta["training"]["train_command"]


@pytest.mark.parametrize("name", NAMES)
def test_bundle_layout_and_weights_size(name):
    folder = BUNDLES / name
    for part in ("configs/common.json", "configs/train.json", "configs/evaluate.json", "configs/inference.json",
                 "configs/multi_gpu_train.json", "configs/logging.conf", "configs/metadata.json",
                 "docs/README.md", "LICENSE", "models/model.pt"):
        assert (folder / part).is_file(), part
    weights = folder / "models" / "model.pt"
    assert weights.stat().st_size <= 10 * 2**20
    state = torch.load(weights, map_location="cpu", weights_only=True)
    network = ConfigParser(json.loads((folder / "configs" / "common.json").read_text()))
    network["bundle_root"] = str(folder)
    network.get_parsed_content("network_def").load_state_dict(state)  # strict: every key fits


@pytest.mark.parametrize("name", NAMES)
def test_configs_parse_and_instantiate(name, datasets, tmp_path):
    flow = workflow(name, ("train.json",), tmp_path, datasets[name])
    flow.initialize()
    parser = flow.parser
    network = parser.get_parsed_content("network_def")
    assert network.out_channels == parser.get_parsed_content("num_classes")
    sample = parser.get_parsed_content("train#preprocessing")(parser.get_parsed_content("train_data")[0])
    assert len(sample) == parser.get_parsed_content("num_samples")
    assert list(sample[0]["image"].shape[1:]) == parser.get_parsed_content("patch_size")
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.state.max_epochs == 1
    # evaluate.json and multi_gpu_train.json override existing ids or add new ones at the top or
    # under an existing parent (a typo such as "validate#evaluatr#..." would add a dead entry)
    for extra in ("evaluate.json", "multi_gpu_train.json"):
        for key in ConfigParser.load_config_file(config(name, extra)[0]):
            parent = key.rpartition("#")[0]
            assert not parent or parent in parser, (extra, key)


def test_bundle_dir_from_repository_and_bundle_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    assert Path(bundle_dir("retina_attention_unet")) == BUNDLES / "retina_attention_unet"
    monkeypatch.chdir(BUNDLES / "cells_attention_unet")
    assert Path(bundle_dir("cells_attention_unet")) == BUNDLES / "cells_attention_unet"
    with pytest.raises(InputError, match="no_such_bundle"):
        bundle_dir("no_such_bundle")


# --- training pieces ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cosine", "poly"])
def test_warmup_schedule_matches_formula(kind):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    schedule = warmup_lr_schedule(optimizer, total_steps=10, warmup_steps=4, kind=kind, power=0.9, end_factor=0.1)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [0.01 * (t + 1) / 4 for t in range(4)]
    for t in range(4, 12):
        p = min(1.0, (t - 4) / 6)
        shape = 0.5 * (1 + math.cos(math.pi * p)) if kind == "cosine" else (1 - p) ** 0.9
        expected.append(0.01 * (0.1 + 0.9 * shape))
    assert rates == pytest.approx(expected)
    assert rates[3] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.001)


def test_warmup_schedule_resumes_on_a_longer_run():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    short = warmup_lr_schedule(optimizer, total_steps=10, warmup_steps=0)
    for _ in range(5):
        optimizer.step()
        short.step()
    longer = warmup_lr_schedule(optimizer, total_steps=20, warmup_steps=0)
    longer.load_state_dict(short.state_dict())
    optimizer.step()
    longer.step()  # step 6 of the 20-step schedule, not of the 10-step one
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 6 / 20)))
    with pytest.raises(ValueError, match="kind"):
        warmup_lr_schedule(optimizer, total_steps=10, kind="step")


def test_last_checkpoint_takes_the_newest_complete_epoch(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    assert last_checkpoint(tmp_path) is None
    torch.save({"a": torch.zeros(1)}, tmp_path / "checkpoint_epoch=2.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "checkpoint_epoch=10.pt")
    (tmp_path / "checkpoint_epoch=11.pt").write_bytes((tmp_path / "checkpoint_epoch=10.pt").read_bytes()[:100])
    (tmp_path / "model.pt").write_bytes(b"")
    assert Path(last_checkpoint(tmp_path)).name == "checkpoint_epoch=10.pt"


def test_key_metric_state_round_trip(tmp_path):
    class Evaluator:
        class state:
            best_metric = 0.75
            best_metric_epoch = 3

    saver = CheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(1, 1)}, save_key_metric=True,
                            key_metric_filename="model.pt")
    saver._key_metric_checkpoint._saved.append(Checkpoint.Item(priority=0.75, filename="model.pt"))
    state = KeyMetricState(saver, Evaluator).state_dict()
    assert state["best_metric"] == 0.75 and state["best_metric_epoch"] == 3

    class Fresh:
        class state:
            best_metric = -1
            best_metric_epoch = -1

    fresh_saver = CheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(1, 1)}, save_key_metric=True,
                                  key_metric_filename="model.pt")
    KeyMetricState(fresh_saver, Fresh).load_state_dict(state)
    assert Fresh.state.best_metric == 0.75 and Fresh.state.best_metric_epoch == 3
    assert fresh_saver._key_metric_checkpoint._saved[0].priority == 0.75


def test_precision_inferer_fp32_matches_plain_and_bf16_returns_float32():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 1)).eval()
    x = torch.rand(1, 1, 8, 8, 8)
    plain = SimpleInferer()(x, net)
    same = PrecisionInferer(precision="fp32")(x, net)
    assert torch.allclose(same, plain, atol=1e-6)
    low = PrecisionInferer(precision="bf16")(x, net)
    assert low.dtype == torch.float32 and torch.allclose(low, plain, atol=0.05)
    pair = PrecisionInferer(precision="fp32")(x, lambda t: [t, t[:, :, ::2]])
    assert isinstance(pair, list) and pair[1].shape == (1, 1, 4, 8, 8)


# --- runs of the bundle configs on tiny data ----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_train_run_writes_best_model_and_epoch_checkpoint(name, trained):
    models = trained[name] / "models"
    assert (models / "checkpoint_epoch=1.pt").is_file()
    state = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    checkpoint = torch.load(models / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"network", "optimizer", "lr_scheduler", "trainer", "key_metric"}
    assert checkpoint["trainer"]["iteration"] == 2 and checkpoint["trainer"]["epoch_length"] == 2
    assert checkpoint["key_metric"]["best_metric_epoch"] == 1
    assert any(trained[name].glob("events.out.tfevents.*")), "TensorBoard events"
    assert (models / "model_last.pt").is_file()


def test_train_resumes_from_the_last_checkpoint(datasets, tmp_path):
    name = "retina_attention_unet"
    run_workflow(workflow(name, ("train.json",), tmp_path, datasets[name]))
    first = torch.load(tmp_path / "models" / "checkpoint_epoch=1.pt", weights_only=True)
    flow = workflow(name, ("train.json",), tmp_path, datasets[name], epochs=2)
    flow.initialize()
    trainer = flow.parser.get_parsed_content("train#trainer")
    network = flow.parser.get_parsed_content("network_def")
    evaluator = flow.parser.get_parsed_content("validate#evaluator")
    seen, at_start = [], {}

    def record_start(engine) -> None:
        at_start["weights"] = {k: v.clone() for k, v in network.state_dict().items()}
        at_start["best_metric"] = evaluator.state.best_metric

    trainer.add_event_handler(Events.EPOCH_STARTED, record_start)
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.append((e.state.epoch, e.state.iteration)))
    flow.run()
    assert seen == [(2, 3), (2, 4)], "only epoch 2 runs; epoch 1 comes from the checkpoint"
    for key, value in first["network"].items():
        assert torch.equal(at_start["weights"][key], value), key
    assert at_start["best_metric"] == first["key_metric"]["best_metric"]
    assert last_checkpoint(tmp_path / "models").endswith("checkpoint_epoch=2.pt")


@pytest.mark.parametrize("name", ["abdomen_ct_attention_unet", "retina_attention_unet", "cells_attention_unet"])
def test_training_starts_from_initial_weights_unless_resuming(name, datasets, trained, tmp_path):
    """Fine-tuning (every bundle; the fine-tuning recipes pass it): ``--initial_weights model.pt``
    loads the network only; a run folder's own epoch checkpoint takes precedence when resuming."""
    weights = trained[name] / "models" / "model.pt"
    start = torch.load(weights, map_location="cpu", weights_only=True)
    flow = workflow(name, ("train.json",), tmp_path, datasets[name], initial_weights=str(weights))
    flow.initialize()
    network = flow.parser.get_parsed_content("network_def")
    at_start = {}
    flow.parser.get_parsed_content("train#trainer").add_event_handler(
        Events.EPOCH_STARTED, lambda e: at_start.update({k: v.clone() for k, v in network.state_dict().items()}))
    flow.run()
    assert all(torch.equal(at_start[k], v) for k, v in start.items())
    assert (tmp_path / "models" / "checkpoint_epoch=1.pt").is_file()
    resumed = workflow(name, ("train.json",), tmp_path, datasets[name], initial_weights=str(weights), epochs=2)
    resumed.initialize()
    assert resumed.parser.get_parsed_content("train#initial_weights_loader") is None
    assert resumed.parser.get_parsed_content("train#checkpoint_loader") is not None


def test_training_shorter_than_the_validation_interval_leaves_a_model(datasets, tmp_path, caplog):
    """No validation ran: model.pt is the last epoch's weights, with a warning and a summary."""
    name = "cells_attention_unet"
    with caplog.at_level(logging.INFO):
        flow = run_workflow(workflow(name, ("train.json",), tmp_path, datasets[name], val_interval=5))
    models = tmp_path / "models"
    last = torch.load(models / "model_last.pt", map_location="cpu", weights_only=True)
    best = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    network = flow.parser.get_parsed_content("network_def").state_dict()
    assert all(torch.equal(last[k], network[k]) and torch.equal(best[k], network[k]) for k in network)
    assert "validation never ran" in caplog.text
    assert f"monai-attn publish --bundle {name} --checkpoint {models / 'model.pt'}" in caplog.text


def test_training_is_reproducible(datasets, tmp_path):
    name = "cells_attention_unet"
    for run in ("a", "b"):
        run_workflow(workflow(name, ("train.json",), tmp_path / run, datasets[name], val_interval=5))
    a = torch.load(tmp_path / "a" / "models" / "checkpoint_epoch=1.pt", weights_only=True)["network"]
    b = torch.load(tmp_path / "b" / "models" / "checkpoint_epoch=1.pt", weights_only=True)["network"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_run_writes_report_on_the_original_grid(name, datasets, trained):
    root = trained[name]
    flow = run_workflow(workflow(name, ("train.json", "evaluate.json"), root, datasets[name], save_predictions=True,
                                 output_dir=str(root / "eval")))
    summary = json.loads((root / "eval" / "report" / "summary.json").read_text())
    evaluator = flow.parser.get_parsed_content("validate#evaluator")
    assert 0.0 <= evaluator.state.metrics["val_mean_dice"] <= 1.0
    val_ids = sorted(Path(item["label"]).name.split(".")[0] for item in flow.parser.get_parsed_content("val_data"))
    predictions = sorted((root / "eval" / "predictions").iterdir())
    assert len(predictions) == len(val_ids)  # their names: test_evaluate_predictions_are_named_after_their_cases
    assert summary, "summary.json"
    label = Path(flow.parser.get_parsed_content("val_data")[0]["label"])
    if name == "abdomen_ct_attention_unet":
        reference, prediction = nib.load(label), nib.load(predictions[0])
        assert prediction.shape == reference.shape
        assert np.allclose(prediction.affine, reference.affine, atol=1e-4)
    else:
        assert np.asarray(Image.open(predictions[0])).shape == np.asarray(Image.open(label)).shape
    if name == "retina_attention_unet":  # the per-case vCDR errors name their images
        rows = (root / "eval" / "report" / "val_vcdr_abs_error_raw.csv").read_text().splitlines()[1:]
        assert sorted(Path(row.split(",")[0]).name.split(".")[0] for row in rows) == val_ids


def test_evaluate_predictions_are_named_after_their_cases(datasets, trained, tmp_path):
    name = "cells_attention_unet"
    flow = run_workflow(workflow(name, ("train.json", "evaluate.json"), trained[name], datasets[name],
                                 save_predictions=True, output_dir=str(tmp_path)))
    val_ids = sorted(Path(item["label"]).name.split(".")[0] for item in flow.parser.get_parsed_content("eval_data"))
    predictions = sorted((tmp_path / "predictions").iterdir())
    assert [p.name.split(".")[0] for p in predictions] == val_ids


def test_ct_inference_on_nifti_and_dicom(datasets, trained, tmp_path):
    name = "abdomen_ct_attention_unet"
    data = datasets[name]
    segmenter = {"spacing_mm": [4.0, 4.0, 4.0], "roi_size": [16, 16, 16], "device": "cpu"}
    for source in ("imagesTs", "imagesTs_dicom"):
        flow = ConfigWorkflow(config_file=run_config(name, "inference.json"), logging_file=False, workflow_type=None,
                              bundle_root=str(trained[name]), input=str(data / source),
                              output_dir=str(tmp_path / source), **segmenter)
        run_workflow(flow)
        written = sorted((tmp_path / source).iterdir())
        assert [p.name for p in written] == ["abdomen_004.nii.gz"]
        reference = nib.load(data / "labelsTs" / "abdomen_004.nii.gz")
        labels = nib.load(written[0])
        assert labels.shape == reference.shape
        assert np.allclose(labels.affine, reference.affine, atol=1e-3)
        assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2, 3}


@pytest.mark.parametrize("name", ["retina_attention_unet", "cells_attention_unet"])
def test_2d_inference_writes_label_pngs(name, datasets, trained, tmp_path):
    overrides = {k: v for k, v in TINY[name].items() if k in ("locator_size", "crop_size", "patch_size")}
    flow = ConfigWorkflow(config_file=run_config(name, "inference.json"), logging_file=False, workflow_type=None,
                          bundle_root=str(trained[name]), input=str(datasets[name] / "imagesTr"),
                          output_dir=str(tmp_path), **overrides)
    run_workflow(flow)
    images = sorted((datasets[name] / "imagesTr").iterdir())
    written = sorted(tmp_path.iterdir())
    assert [p.name for p in written] == [p.name for p in images]
    label = np.asarray(Image.open(written[0]))
    assert label.shape == np.asarray(Image.open(images[0])).shape[:2]
    assert set(np.unique(label)) <= set(range(flow.parser.get_parsed_content("num_classes")))


@pytest.mark.parametrize("name", NAMES)
def test_verify_net_in_out_and_torchscript_export_match_eager(name, trained, tmp_path):
    from monai.bundle import ckpt_export, verify_net_in_out

    meta = str(BUNDLES / name / "configs" / "metadata.json")
    inference = run_config(name, "inference.json")
    verify_net_in_out(net_id="network_def", meta_file=meta, config_file=inference, n=2, bundle_root=str(trained[name]))
    weights = trained[name] / "models" / "model.pt"
    exported = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(exported), ckpt_file=str(weights), meta_file=meta,
                config_file=inference, bundle_root=str(trained[name]))
    parser = ConfigParser(json.loads(Path(inference[0]).read_text()))  # common.json: network_def
    parser["bundle_root"] = str(trained[name])
    eager = parser.get_parsed_content("network_def")
    eager.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    eager.eval()
    scripted = torch.jit.load(str(exported)).eval()
    dims = eager.spatial_dims
    x = torch.rand(1, eager.in_channels, *([32] * dims))
    with torch.no_grad():
        assert torch.allclose(scripted(x), eager(x), atol=1e-5)


# --- slow: multi-process training and the shipped weights --------------------------------------


@pytest.mark.slow
def test_multi_gpu_config_under_torchrun_with_two_gloo_processes(datasets, tmp_path):
    name = "abdomen_ct_attention_unet"
    files = "['{}','{}','{}']".format(*run_config(name, "train.json", "multi_gpu_train.json"))
    overrides = []
    for key, value in {**COMMON_TINY, **TINY[name], "epochs": 2}.items():
        overrides += [f"--{key}", json.dumps(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "monai.bundle", "run",
               "--config_file", files, "--dataset_dir", str(datasets[name]), "--output_dir", str(tmp_path),
               *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    # 2 training cases over 2 ranks: one iteration per epoch and rank
    assert checkpoint["trainer"]["iteration"] == 2
    assert (tmp_path / "models" / "model.pt").is_file()


def _dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = prediction.sum() + reference.sum()
    return float(2 * np.logical_and(prediction, reference).sum() / total) if total else 1.0


@pytest.mark.slow
def test_shipped_ct_weights_reach_recorded_dice_on_fresh_phantoms(tmp_path):
    """Segment freshly generated held-out phantoms with ``monai-attn segment --bundle`` and score them."""
    from monai_attn.cli import main

    name = "abdomen_ct_attention_unet"
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    heldout = meta["training"]["heldout"]
    write_abdomen_ct_dataset(tmp_path / "data", cases=heldout["cases"], seed=heldout["seed"])
    assert main(["segment", "-i", str(tmp_path / "data" / "imagesTr"), "-o", str(tmp_path / "pred"),
                 "--bundle", str(BUNDLES / name), "--device", "cpu"]) == 0
    scores = {organ: [] for organ in ("spleen", "kidney", "pancreas")}
    for label_path in sorted((tmp_path / "data" / "labelsTr").iterdir()):
        reference = np.asarray(nib.load(label_path).dataobj)
        prediction = np.asarray(nib.load(tmp_path / "pred" / label_path.name).dataobj)
        for value, organ in enumerate(scores, start=1):
            scores[organ].append(_dice(prediction == value, reference == value))
    for organ, values in scores.items():
        assert np.mean(values) >= meta["eval_metrics"][f"{organ}_dice"] - 0.01, (organ, np.mean(values))


REAL_CT = REPO.parent / "shared" / "real-ct"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CT.is_dir(), reason="needs ../shared/real-ct")
def test_shipped_ct_weights_reach_recorded_dice_on_the_real_ct(tmp_path):
    """The real validation CT, segmented and scored with the project's own commands as a user would."""
    from monai_attn.cli import main

    name = "abdomen_ct_attention_unet"
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "example_ct_sm.nii.gz").write_bytes((REAL_CT / "example_seg.nii.gz").read_bytes())
    assert main(["segment", "-i", str(REAL_CT / "example_ct_sm.nii.gz"), "-o",
                 str(tmp_path / "pred" / "example_ct_sm.nii.gz"), "--device", "cpu"]) == 0
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-o",
                 str(tmp_path / "report"), "--gt-mapping", "totalsegmentator", "--workers", "1"]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    for organ, recorded in meta["real_ct_metrics"].items():
        label = str(summary["labels"][organ.removesuffix("_dice")])
        assert summary["mean"][label]["Dice"] >= recorded - 0.01, (organ, summary["mean"])


REAL_EM = REPO.parent / "shared" / "real-em"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_EM.is_dir(), reason="needs ../shared/real-em")
def test_shipped_cells_weights_reach_recorded_figures_on_the_real_em_sections(tmp_path):
    """The five real EM sections, segmented and scored with the project's own commands (real_em_command)."""
    from monai_attn.cli import main

    meta = json.loads((BUNDLES / "cells_attention_unet" / "configs" / "metadata.json").read_text())
    assert main(["segment", "--bundle", "cells", "-i", str(REAL_EM / "image"), "-o", str(tmp_path / "pred"),
                 "--device", "cpu"]) == 0
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(REAL_EM / "label"), "--gt-mapping",
                 "isbi2012_em", "--labels", "cell interior=0,membrane=1", "-o", str(tmp_path / "report"),
                 "--workers", "1"]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    recorded = meta["real_em_metrics"]
    assert summary["mean"]["1"]["Dice"] >= recorded["membrane_dice"] - 0.01, summary["mean"]
    assert summary["mean"]["0"]["Dice"] >= recorded["interior_dice"] - 0.01, summary["mean"]
    assert summary["pixel_error"]["mean"] <= recorded["pixel_error"] + 0.01, summary["pixel_error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["retina_attention_unet", "cells_attention_unet"])
def test_shipped_2d_weights_reach_recorded_dice_on_fresh_phantoms(name, tmp_path):
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    heldout = meta["training"]["heldout"]
    writer = write_retina_dataset if name.startswith("retina") else write_cells_dataset
    sizes = {"size": heldout["size"]} if "size" in heldout else {}  # the size the weights were measured at
    writer(tmp_path / "data", cases=heldout["cases"], seed=heldout["seed"], **sizes)
    flow = ConfigWorkflow(config_file=run_config(name, "inference.json"), logging_file=False, workflow_type=None,
                          input=str(tmp_path / "data" / "imagesTr"), output_dir=str(tmp_path / "pred"),
                          device="$torch.device('cpu')")
    run_workflow(flow)
    regions = ({"disc": (1, 2), "cup": (2,)} if name.startswith("retina") else {"membrane": (1,)})
    scores = {region: [] for region in regions}
    for label_path in sorted((tmp_path / "data" / "labelsTr").iterdir()):
        reference = np.asarray(Image.open(label_path))
        prediction = np.asarray(Image.open(tmp_path / "pred" / label_path.name))
        for region, values in regions.items():
            scores[region].append(_dice(np.isin(prediction, values), np.isin(reference, values)))
    for region, values in scores.items():
        assert np.mean(values) >= meta["eval_metrics"][f"{region}_dice"] - 0.01, (region, np.mean(values))

