"""Bundle docs and metadata have what the MONAI model zoo expects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
NAMES = ["abdomen_ct_attention_unet", "retina_attention_unet", "cells_attention_unet"]


@pytest.mark.parametrize("name", NAMES)
def test_readme_sections(name: str) -> None:
    text = (BUNDLES / name / "docs" / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    for section in ("MONAI Bundle Commands", "References", "License"):
        assert section in headings, (name, headings)
    commands = text.split("## MONAI Bundle Commands", 1)[1].split("\n## ", 1)[0]
    for command in ("monai.bundle run", "train.json", "evaluate.json", "inference.json", "ckpt_export", "onnx_export",
                    "dynamic_shapes", "--input_shape"):
        assert command in commands, (name, command)
    assert (BUNDLES / name / "LICENSE").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_metadata_value_ranges_and_references(name: str) -> None:
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    fmt = meta["network_data_format"]
    for tensor in (*fmt["inputs"].values(), *fmt["outputs"].values()):
        low, high = tensor["value_range"]
        assert low < high
    assert len(meta["references"]) >= 3 or name == "abdomen_ct_attention_unet"
    if name == "abdomen_ct_attention_unet":
        assert fmt["inputs"]["image"]["value_range"] == [0, 1]  # the HU window scaled and clipped


@pytest.mark.parametrize("name", NAMES)
def test_standalone_configs_are_current(name: str) -> None:
    """configs/{inference,train,evaluate}.json are generated from common.json and configs/parts/:
    edit those, then run python -m monai_attn.bundle.standalone."""
    from monai_attn.bundle.standalone import stale_files

    assert stale_files(BUNDLES / name) == []


def test_standalone_merge_follows_monai(tmp_path) -> None:
    from monai.bundle import ConfigParser

    from monai_attn.bundle.standalone import merged_config

    first = {"imports": ["$import os"], "a": 1, "d": {"x": 1}}
    second = {"+imports": ["$import json"], "a": 2, "+d": {"y": 2}, "+new": [1]}
    for i, content in enumerate((first, second)):
        (tmp_path / f"{i}.json").write_text(json.dumps(content))
    parser = ConfigParser()
    parser.read_config([str(tmp_path / "0.json"), str(tmp_path / "1.json")])
    assert merged_config([first, second]) == {k: v for k, v in parser.get().items() if k != "_meta_"}


def test_stale_standalone_config_is_named(tmp_path) -> None:
    import shutil

    from monai_attn.bundle.standalone import main

    shutil.copytree(BUNDLES / "cells_attention_unet" / "configs", tmp_path / "configs")
    common = json.loads((tmp_path / "configs" / "common.json").read_text())
    common["overlap"] = 0.5
    (tmp_path / "configs" / "common.json").write_text(json.dumps(common))
    assert main(["--check", str(tmp_path)]) == 1
    assert main([str(tmp_path)]) == 0 and main(["--check", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "configs" / "inference.json").read_text())["overlap"] == 0.5


def test_inference_config_runs_alone_from_the_bundle_folder(tmp_path) -> None:
    """The model zoo's habit: cd into the bundle, run configs/inference.json alone."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    image = tmp_path / "images" / "section.png"
    image.parent.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(image)
    done = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
         "--input", str(image.parent), "--output_dir", str(tmp_path / "out")],
        cwd=BUNDLES / "cells_attention_unet", capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "section.png").is_file()


def test_segment_refuses_a_bundle_whose_standalone_config_is_stale(tmp_path, capsys) -> None:
    import shutil

    from monai_attn.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLES / "cells_attention_unet", bundle, ignore=shutil.ignore_patterns("models"))
    common = json.loads((bundle / "configs" / "common.json").read_text())
    (bundle / "configs" / "common.json").write_text(json.dumps({**common, "overlap": 0.5}))
    image = tmp_path / "section.png"
    from PIL import Image

    Image.new("L", (32, 32)).save(image)
    assert main(["segment", "--bundle", str(bundle), "--trust-config", "-i", str(image), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inference.json: is not current with common.json" in err
    assert "python -m monai_attn.bundle.standalone" in err


@pytest.mark.parametrize("name", NAMES)
def test_check_properties_answers_before_any_data_is_there(name, tmp_path) -> None:
    """MONAI's property check on configs/inference.json alone, with the default (absent) input;
    running it then refuses the missing input, naming it."""
    from monai.bundle import ConfigWorkflow

    configs = BUNDLES / name / "configs"
    flow = ConfigWorkflow(config_file=str(configs / "inference.json"), meta_file=str(configs / "metadata.json"),
                          logging_file=False, workflow_type="infer", input=str(tmp_path / "absent"),
                          output_dir=str(tmp_path / "out"))
    flow.initialize()
    assert flow.check_properties() == []
    with pytest.raises(RuntimeError) as caught:  # MONAI wraps what an expression raises
        flow.run()
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert str(caught.value.__cause__).endswith("absent: no such file or folder (set --input)")


@pytest.mark.parametrize("name", NAMES)
def test_training_configs_answer_check_properties_before_any_data(name, tmp_path) -> None:
    """train.json and evaluate.json alone parse with no data folder; running refuses it first, naming it."""
    from monai.bundle import ConfigWorkflow

    configs = BUNDLES / name / "configs"
    for config in ("train.json", "evaluate.json"):
        flow = ConfigWorkflow(config_file=str(configs / config), meta_file=str(configs / "metadata.json"),
                              logging_file=False, workflow_type="train", dataset_dir=str(tmp_path / "absent"),
                              output_dir=str(tmp_path / "run"))
        flow.initialize()
        assert flow.check_properties() == [], config
        with pytest.raises(RuntimeError) as caught:
            flow.run()
        assert str(caught.value.__cause__).endswith("absent: dataset folder does not exist"), config
