"""The wheel built from the repository carries the code, the bundles and the dataset descriptors.

Built offline from a copy of the source tree with the current environment's setuptools
(``pip wheel --no-build-isolation``), into which training outputs were dropped: they must stay
out of the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMES = ("abdomen_ct_attention_unet", "retina_attention_unet", "cells_attention_unet")
#: Files each bundle must ship (the configs the docs run, the model card, the licence, the weights).
BUNDLE_FILES = (
    "LICENSE", "configs/metadata.json", "configs/common.json", "configs/train.json", "configs/evaluate.json",
    "configs/inference.json", "configs/multi_gpu_train.json", "configs/multi_gpu_evaluate.json", "configs/logging.conf",
    "configs/parts/inference.json", "configs/parts/train.json", "configs/parts/evaluate.json",
    "docs/README.md", "models/model.pt",
)
#: What a training run, an evaluation or Python may leave in a bundle folder.
STRAYS = ("runs/events.out.tfevents.1", "eval/report/summary.json", "models/checkpoint_epoch=3.pt",
          "models/model.ts", "configs/__pycache__/x.cpython-311.pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"pyproject.toml needs setuptools>=77 (SPDX licence), found {setuptools.__version__}")
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", "runs", "demo_output")
    for item in REPO.iterdir():
        if item.name in ("monai_attn", "bundles", "datasets", "pyproject.toml", "README.md", "LICENSE"):
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, source / item.name, **({"ignore": ignore} if item.is_dir() else {}))
    for name in NAMES:
        for stray in STRAYS:
            (source / "bundles" / name / stray).parent.mkdir(parents=True, exist_ok=True)
            (source / "bundles" / name / stray).write_bytes(b"x")
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
         str(source)], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "deprecat" not in (result.stdout + result.stderr).lower(), "setuptools warns at install"
    (built,) = out.glob("monai_attn-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_every_module_of_the_package(wheel):
    names = set(wheel.namelist())
    missing = [
        str(p.relative_to(REPO)) for p in sorted((REPO / "monai_attn").rglob("*.py"))
        if "__pycache__" not in p.parts and str(p.relative_to(REPO)) not in names
    ]
    assert missing == [], "add the package to [tool.setuptools] packages in pyproject.toml"


def test_wheel_holds_the_bundles_and_nothing_a_run_left(wheel):
    names = set(wheel.namelist())
    for name in NAMES:
        for part in BUNDLE_FILES:
            assert f"monai_attn/bundles/{name}/{part}" in names
    shipped = sorted(n for n in names if n.startswith("monai_attn/bundles/"))
    assert len(shipped) == len(NAMES) * len(BUNDLE_FILES), sorted(set(shipped) - {
        f"monai_attn/bundles/{name}/{part}" for name in NAMES for part in BUNDLE_FILES})
    weights = wheel.read("monai_attn/bundles/abdomen_ct_attention_unet/models/model.pt")
    assert weights == (REPO / "bundles" / "abdomen_ct_attention_unet" / "models" / "model.pt").read_bytes()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_holds_the_dataset_descriptors(wheel):
    names = {n for n in wheel.namelist() if n.startswith("monai_attn/dataset_descriptors/")}
    expected = {f"monai_attn/dataset_descriptors/{p.name}" for p in (REPO / "datasets").iterdir()
                if p.suffix == ".yaml" or p.name == "README.md"}
    assert len(expected) >= 13
    assert names == expected


def test_wheel_metadata_has_the_spdx_licence_and_the_console_script(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    text = wheel.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel.namelist())
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "monai-attn = monai_attn.cli:main" in wheel.read(entry_points).decode()
