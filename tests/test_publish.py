"""Training writes run folders, never bundles; ``monai-attn publish`` is the step that updates a bundle."""

from __future__ import annotations

import difflib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from monai_attn.cli import main
from monai_attn.bundle.configs import bundle_parser

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
NAMES = ("abdomen_ct_attention_unet", "retina_attention_unet", "cells_attention_unet")


# --- training paths -----------------------------------------------------------------------------


def _train_parser(name: str, *extra: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / name / "configs" / f) for f in ("common.json", "train.json", *extra)])
    parser.read_meta(str(BUNDLES / name / "configs" / "metadata.json"))
    parser.update(overrides)
    return parser


@pytest.mark.parametrize("name", NAMES)
def test_training_writes_a_new_run_folder_under_the_current_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = _train_parser(name)
    run = parser.get_parsed_content("output_dir")
    assert re.fullmatch(rf"runs/{name}/\d{{8}}-\d{{6}}", run), run
    assert parser.get_parsed_content("train#checkpoint_saver#save_dir") == f"{run}/models"
    assert parser.get_parsed_content("validate#best_model_saver#save_dir") == f"{run}/models"
    assert parser.get_parsed_content("resume_checkpoint") is None
    assert not (tmp_path / "runs").exists(), "nothing is written before training starts"


@pytest.mark.parametrize("name", NAMES)
def test_reused_run_folder_resumes_and_evaluation_reads_the_shipped_weights(name, tmp_path):
    (tmp_path / "models").mkdir()
    torch.save({"a": torch.zeros(1)}, tmp_path / "models" / "checkpoint_epoch=3.pt")
    parser = _train_parser(name, output_dir=str(tmp_path))
    assert parser.get_parsed_content("resume_checkpoint") == str(tmp_path / "models" / "checkpoint_epoch=3.pt")
    evaluate = _train_parser(name, "evaluate.json")
    assert Path(evaluate.get_parsed_content("validate#handlers#0#load_path")) == BUNDLES / name / "models" / "model.pt"


# --- publish ------------------------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A copy of the cells bundle (the smallest network), at version 0.3.0."""
    copy = tmp_path / "cells"
    shutil.copytree(BUNDLES / "cells_attention_unet", copy, ignore=shutil.ignore_patterns("runs", "eval"))
    metadata = json.loads((copy / "configs" / "metadata.json").read_text())
    metadata["version"] = "0.3.0"
    metadata["changelog"] = {"0.3.0": "third", **metadata["changelog"]}
    metadata["training"]["heldout"] = {"seed": 1000, "cases": 1, "size": 64}  # a small, quick gate
    (copy / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=4))
    return copy


def _network(bundle: Path) -> torch.nn.Module:
    return bundle_parser(bundle, trust=True).get_parsed_content("network_def")  # the test's own copy


def _trained_state(bundle: Path) -> dict[str, torch.Tensor]:
    """Weights of the bundle's network that differ from the shipped ones."""
    torch.manual_seed(7)
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in _network(bundle).state_dict().items()}


def _publish(capsys, bundle: Path, checkpoint: Path, version: str, notes: str = "retrained",
             *extra: str) -> tuple[int, str, str]:
    code = main(["publish", "--bundle", str(bundle), "--checkpoint", str(checkpoint), "--version", version,
                 "--notes", notes, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_publish_replaces_weights_bumps_version_and_prepends_changelog(bundle, tmp_path, capsys):
    """A forced candidate: weights replaced, the old ones kept, metadata edited in place."""
    before_text = (bundle / "configs" / "metadata.json").read_text()
    before = json.loads(before_text)
    state = _trained_state(bundle)
    checkpoint = tmp_path / "run" / "models" / "model.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save(state, checkpoint)
    code, out, err = _publish(capsys, bundle, checkpoint, "1.0.0", "  retrained on 40 more phantoms  ", "--force")
    assert (code, err) == (0, "")
    assert out == f"{bundle / 'models' / 'model.pt'}: published as version 1.0.0\n"
    shipped = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert shipped.keys() == state.keys() and all(torch.equal(shipped[k], state[k]) for k in state)
    _network(bundle).load_state_dict(shipped)  # strict
    after_text = (bundle / "configs" / "metadata.json").read_text()
    after = json.loads(after_text)
    assert after["version"] == "1.0.0"
    assert list(after["changelog"].items()) == [("1.0.0", "retrained on 40 more phantoms"),
                                                *before["changelog"].items()]
    assert set(after["eval_metrics"]) == {"membrane_dice", "mean_dice"}
    assert {k: v for k, v in after.items() if k not in ("version", "changelog", "eval_metrics")} == \
           {k: v for k, v in before.items() if k not in ("version", "changelog", "eval_metrics")}
    changed = [line for line in difflib.ndiff(before_text.splitlines(), after_text.splitlines())
               if line[:1] in "+-" and "eval_metrics" not in line]
    assert len([line for line in changed if line.startswith("-")]) <= 1 + len(before["eval_metrics"]), changed
    history = bundle / "models" / "history" / "model_0.3.0.pt"
    assert history.read_bytes() == (BUNDLES / "cells_attention_unet" / "models" / "model.pt").read_bytes()
    assert sorted(p.name for p in (bundle / "models").iterdir()) == ["history", "model.pt"], "no temporary files"
    assert oct((bundle / "models" / "model.pt").stat().st_mode & 0o777) == \
           oct((BUNDLES / "cells_attention_unet" / "models" / "model.pt").stat().st_mode & 0o777)


def test_publish_refuses_a_candidate_worse_than_the_shipped_weights(bundle, tmp_path, capsys):
    torch.save(_trained_state(bundle), tmp_path / "model.pt")
    code, _, err = _publish(capsys, bundle, tmp_path / "model.pt", "1.0.0")
    assert code == 1 and err.count("\n") == 1
    assert re.match(r"error: the candidate is worse than the shipped weights on 1 held-out phantom "
                    r"\(seed 1000\): membrane 0\.\d+ < 0\.\d+; nothing changed", err), err
    assert _unchanged(bundle)


def test_publish_scores_an_equal_candidate_and_writes_its_figures(bundle, tmp_path, capsys):
    """The shipped weights as the candidate pass the gate; eval_metrics are what was measured."""
    shutil.copy(bundle / "models" / "model.pt", tmp_path / "model.pt")
    from monai_attn.synthetic.cells import write_cells_dataset

    real = write_cells_dataset(tmp_path / "real", 1, 7, size=64).parent  # stands in for a real section and labels
    image, reference = next((real / "imagesTr").iterdir()), next((real / "labelsTr").iterdir())
    assert _publish(capsys, bundle, tmp_path / "model.pt", "0.4.0", "same weights",
                    "--heldout-data", str(tmp_path / "heldout"), "--real-case", str(image), str(reference))[0] == 0
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    metrics = metadata["eval_metrics"]
    from monai_attn.evaluation import evaluate_folders
    from monai_attn.inference import Segmenter

    segmenter = Segmenter.from_bundle(bundle, trust=True)
    for phantom in (tmp_path / "heldout" / "imagesTr").iterdir():
        segmenter.segment_to_file(phantom, tmp_path / "pred" / phantom.name, output_types=["png"])
    run = evaluate_folders(tmp_path / "pred", tmp_path / "heldout" / "labelsTr", segmenter.label_names)
    assert metrics["membrane_dice"] == pytest.approx(run.results[0].metrics[1].dice, abs=5e-4)
    segmenter.segment_to_file(image, tmp_path / "pred_real" / image.name, output_types=["png"])
    real_run = evaluate_folders(tmp_path / "pred_real", real / "labelsTr", segmenter.label_names)
    assert metadata["real_em_metrics"] == {"membrane_dice": round(real_run.results[0].metrics[1].dice, 3)}


def test_publish_takes_the_network_out_of_an_epoch_checkpoint(bundle, tmp_path, capsys):
    state = _trained_state(bundle)
    checkpoint = tmp_path / "checkpoint_epoch=4.pt"
    torch.save({"network": state, "optimizer": {"state": {}, "param_groups": []}, "trainer": {"epoch": 4}},
               checkpoint)
    assert _publish(capsys, bundle, checkpoint, "1.0", "retrained", "--force")[0] == 0
    shipped = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert shipped.keys() == state.keys() and all(torch.equal(shipped[k], state[k]) for k in state)


def _unchanged(bundle: Path) -> bool:
    """The copy still has the shipped weights, its metadata at 0.3.0, and no temporary files."""
    weights = (bundle / "models" / "model.pt").read_bytes()
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    return (weights == (BUNDLES / "cells_attention_unet" / "models" / "model.pt").read_bytes()
            and metadata["version"] == "0.3.0" and list(metadata["changelog"])[0] == "0.3.0"
            and len(list((bundle / "models").iterdir())) == 1
            and sorted(p.name for p in (bundle / "configs").iterdir())
            == sorted(p.name for p in (BUNDLES / "cells_attention_unet" / "configs").iterdir()))


@pytest.mark.parametrize("version", ["0.3.0", "0.3", "0.2.9", "0.0.1"])
def test_publish_refuses_a_version_not_greater_than_the_bundle(version, bundle, tmp_path, capsys):
    torch.save(_trained_state(bundle), tmp_path / "model.pt")
    code, out, err = _publish(capsys, bundle, tmp_path / "model.pt", version)
    assert (code, out) == (1, "")
    assert err == (f"error: {bundle / 'configs' / 'metadata.json'}: version {version} is not greater than "
                   "the bundle's version 0.3.0\n")
    assert _unchanged(bundle)


@pytest.mark.parametrize(("version", "notes", "message"), [
    ("v1", "x", "--version 'v1' is not dot-separated numbers such as 0.4.0"),
    ("1.0.0", "  ", "--notes is empty: say what changed and what the new weights reach"),
])
def test_publish_refuses_bad_arguments(version, notes, message, bundle, tmp_path, capsys):
    torch.save(_trained_state(bundle), tmp_path / "model.pt")
    assert _publish(capsys, bundle, tmp_path / "model.pt", version, notes) == (1, "", f"error: {message}\n")
    assert _unchanged(bundle)


def test_publish_refuses_a_checkpoint_that_is_no_state_dict(bundle, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, _, err = _publish(capsys, bundle, junk, "1.0.0")
    assert code == 1
    assert err.startswith(f"error: {junk}: not a checkpoint torch.load(weights_only=True) reads (")
    assert err.count("\n") == 1 and "Traceback" not in err
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert _publish(capsys, bundle, tmp_path / "list.pt", "1.0.0")[2] == \
        f"error: {tmp_path / 'list.pt'}: holds no state dict (tensors by parameter name)\n"
    assert _publish(capsys, bundle, tmp_path / "missing.pt", "1.0.0")[2] == \
        f"error: {tmp_path / 'missing.pt'}: checkpoint not found\n"
    assert _unchanged(bundle)


def test_publish_refuses_weights_that_do_not_fit_network_def(bundle, tmp_path, capsys):
    state = _trained_state(bundle)
    keys = list(state)
    wrong, dropped = keys[0], keys[1]
    shape = tuple(state[wrong].shape)
    state[wrong] = torch.zeros(shape[0] + 1, *shape[1:])
    del state[dropped]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "model.pt")
    code, _, err = _publish(capsys, bundle, tmp_path / "model.pt", "1.0.0")
    assert code == 1
    assert err == (
        f"error: {tmp_path / 'model.pt'}: does not fit the bundle's network_def: 1 missing ({dropped}), "
        f"1 unexpected (extra.weight), 1 of the wrong shape ({wrong}: {(shape[0] + 1, *shape[1:])} instead of "
        f"{shape})\n"
    )
    assert _unchanged(bundle)


def test_publish_by_short_name_resolves_the_shipped_bundle(tmp_path, capsys):
    """``--bundle cells`` names the shipped bundle; a refused version leaves it alone."""
    torch.save({"x": torch.zeros(1)}, tmp_path / "model.pt")
    metadata = BUNDLES / "cells_attention_unet" / "configs" / "metadata.json"
    current = json.loads(metadata.read_text())["version"]
    code, _, err = _publish(capsys, "cells", tmp_path / "model.pt", "0.0.0")
    assert (code, err) == (1, f"error: {metadata}: version 0.0.0 is not greater than the bundle's version {current}\n")


def test_publish_refuses_tensors_of_the_right_shape_that_cannot_be_copied(bundle, tmp_path, capsys):
    state = _trained_state(bundle)
    first = next(k for k, v in state.items() if v.dim() == 4)
    state[first] = state[first].to_sparse()  # the right shape, but no dense parameter can take it
    torch.save(state, tmp_path / "model.pt")
    code, _, err = _publish(capsys, bundle, tmp_path / "model.pt", "1.0.0")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'model.pt'}: does not load into the bundle's network_def (")
    assert first in err
    assert _unchanged(bundle)


def test_publish_compares_a_wider_candidate_with_the_shipped_weights_widened(bundle, tmp_path, capsys):
    """A candidate at twice the width: the gate scores the shipped weights widened (the same
    outputs), so the shipped weights as the wider candidate pass it and are published."""
    from monai_attn.bundle.standalone import write_standalone
    from monai_attn.networks.widen import widen_state_dict

    narrow = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    common = bundle / "configs" / "common.json"
    config = json.loads(common.read_text())
    config["network_def"]["channels"] = [2 * c for c in config["network_def"]["channels"]]
    common.write_text(json.dumps(config, indent=4))
    write_standalone(bundle)
    wide = widen_state_dict(narrow, _network(bundle), torch.Generator().manual_seed(3))
    torch.save(wide, tmp_path / "wide.pt")
    code, _, err = _publish(capsys, bundle, tmp_path / "wide.pt", "0.4.0", "the same network, twice as wide")
    assert code == 1 and "pass --trust-config if you trust it" in err  # an edited bundle's configs may run code
    code, _, err = _publish(capsys, bundle, tmp_path / "wide.pt", "0.4.0", "the same network, twice as wide",
                            "--trust-config")
    assert (code, err) == (0, "")
    shipped = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(shipped[k], wide[k]) for k in wide)
    assert (bundle / "models" / "history" / "model_0.3.0.pt").is_file()
    torch.save(_trained_state(bundle), tmp_path / "worse.pt")  # a wide candidate that is worse is still refused
    code, _, err = _publish(capsys, bundle, tmp_path / "worse.pt", "0.5.0", "worse", "--trust-config")
    assert code == 1 and "the candidate is worse than the shipped weights" in err
