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
