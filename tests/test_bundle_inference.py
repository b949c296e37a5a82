"""The bundles' inference configs: common.json + inference.json under MONAI's own tools and ``segment``.

Every inference path (``python -m monai.bundle run``, ``ConfigWorkflow``, ``Segmenter.from_bundle``,
``monai-attn segment --bundle`` and a TorchScript exported with ``ckpt_export``) reads the same
``configs/common.json``, so they must give the same labels; each setting lives in one file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from PIL import Image
from test_inference import one_thread  # noqa: F401  (autouse fixture: one torch thread)

from monai_attn.bundle.lookup import resolve_bundle
from monai_attn.cli import main
from monai_attn.inference import Segmenter
from monai_attn.synthetic import generate_abdomen_ct_case

REPO = Path(__file__).resolve().parents[1]
SHORT_NAMES = ("ct", "retina", "cells")
#: Overrides that keep the CT bundle fast on a tiny phantom (8 mm finds no organ in it; 4 mm does).
CT_FAST = {"spacing_mm": [4.0, 4.0, 4.0], "roi_size": [32, 32, 32], "device": "cpu", "precision": "fp32"}




def configs(short: str) -> Path:
    return resolve_bundle(short) / "configs"


def ct_case(folder: Path, name: str = "case_000.nii.gz") -> Path:
    """A small abdominal CT phantom (HU) written as NIfTI."""
    folder.mkdir(parents=True, exist_ok=True)
    hu, _, affine = generate_abdomen_ct_case(0, 0, (48, 48, 24), (4.0, 4.0, 6.0))
    path = folder / name
    nib.save(nib.Nifti1Image(hu.astype(np.float32), affine), str(path))
    return path


def photo(folder: Path, kind: str, size=(72, 96)) -> Path:
    """A small PNG: an RGB fundus photograph (retina) or a grey EM-like section (cells), (height, width)."""
    from skimage import data
    from skimage.transform import resize

    folder.mkdir(parents=True, exist_ok=True)
    image = data.retina() if kind == "retina" else data.camera()
    small = (resize(image, size, anti_aliasing=True) * 255).round().astype(np.uint8)
    path = folder / f"{kind}.png"
    Image.fromarray(small).save(path)
    return path


def label_values(short: str) -> set[int]:
    meta = json.loads((configs(short) / "metadata.json").read_text())
    return {int(k) for k in meta["network_data_format"]["outputs"]["pred"]["channel_def"]}


# --- MONAI's bundle tools ------------------------------------------------------------------------


@pytest.mark.parametrize("short", SHORT_NAMES)
def test_inference_config_has_every_property_monai_requires(short, tmp_path):
    cases = tmp_path / "in"
    if short == "ct":
        ct_case(cases)
    else:
        photo(cases, short)
    folder = configs(short)
    workflow = ConfigWorkflow(
        config_file=[str(folder / "common.json"), str(folder / "inference.json")],
        meta_file=str(folder / "metadata.json"),
        workflow_type="infer",
        input=str(cases),
        output_dir=str(tmp_path / "out"),
        device="cpu",
    )
    workflow.initialize()
    assert workflow.check_properties() == []
    # the properties resolve to the objects segment uses
    assert len(workflow.parser.get_parsed_content("datalist")) == 1
    inferer = workflow.parser.get_parsed_content("inferer")
    if short in ("retina", "ct"):  # two passes, both through the sliding-window inferer
        assert inferer.__class__.__name__ == {"retina": "DiscCropInferer", "ct": "LookFirstInferer"}[short]
        inferer = inferer.inferer
    assert inferer.__class__.__name__ == "SegmentationInferer"


def test_monai_bundle_run_writes_the_labels_segmenter_gives(tmp_path):
    case = ct_case(tmp_path / "in")
    folder = configs("ct")
    files = "['{}','{}']".format(folder / "common.json", folder / "inference.json")
    overrides = []
    for key, value in CT_FAST.items():
        overrides += [f"--{key}", json.dumps(value)]
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files,
               "--meta_file", str(folder / "metadata.json"), "--input", str(case.parent),
               "--output_dir", str(tmp_path / "out"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted((tmp_path / "out").glob("*.nii.gz"))
    assert [p.name for p in written] == [case.name]
    ran = nib.load(str(written[0]))
    direct = Segmenter.from_bundle("ct", overrides=CT_FAST).segment(case)
    assert ran.shape == direct.labels.shape == nib.load(str(case)).shape
    np.testing.assert_allclose(ran.affine, nib.load(str(case)).affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(ran.dataobj), direct.labels)
    assert direct.labels.any()  # a real segmentation, not two empty maps


# --- segment with every bundle ---------------------------------------------------------------


@pytest.mark.parametrize("short", ["retina", "cells"])
def test_segment_2d_bundle_writes_a_png_label_map_of_the_input_size(short, tmp_path, capsys):
    image = photo(tmp_path / "in", short, size=(72, 96))
    out = tmp_path / "out.png"
    code = main(["segment", "--bundle", short, "-i", str(image), "-o", str(out), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as written:
        labels = np.asarray(written)
        assert written.size == (96, 72)  # (width, height) of the input
    assert labels.shape == (72, 96)
    assert set(np.unique(labels).tolist()) <= label_values(short)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.png"]


def test_ckpt_export_torchscript_needs_no_config_and_matches_the_bundle(tmp_path, capsys):
    bundle = resolve_bundle("ct")
    folder = bundle / "configs"
    exported = tmp_path / "model.ts"
    command = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(exported),
               "--ckpt_file", str(bundle / "models" / "model.pt"), "--meta_file", str(folder / "metadata.json"),
               "--config_file", "['{}','{}']".format(folder / "common.json", folder / "inference.json"),
               "--bundle_root", str(bundle)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    case = ct_case(tmp_path / "in")
    fast = ["--device", "cpu", "--precision", "fp32", "--roi-size", "32", "32", "32"]
    assert main(["segment", "--model", str(exported), "-i", str(case), "-o", str(tmp_path / "ts.nii.gz"), *fast]) == 0
    assert main(["segment", "--bundle", "ct", "-i", str(case), "-o", str(tmp_path / "ct.nii.gz"), *fast]) == 0
    scripted = np.asarray(nib.load(str(tmp_path / "ts.nii.gz")).dataobj)
    eager = np.asarray(nib.load(str(tmp_path / "ct.nii.gz")).dataobj)
    assert scripted.shape == nib.load(str(case)).shape
    np.testing.assert_array_equal(scripted, eager)
    assert eager.any()


# --- one place for each setting --------------------------------------------------------------


def source_configs(folder: Path) -> list[Path]:
    """The JSON files of a bundle's configs/ written by hand: not the standalone files generated from them."""
    from monai_attn.bundle.standalone import STANDALONE

    return sorted(p for p in folder.rglob("*.json") if p.relative_to(folder).as_posix() not in STANDALONE)


def files_holding(folder: Path, pattern: str) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in source_configs(folder)
                  if re.search(pattern, p.read_text(encoding="utf-8")))


def json_values(node):
    """Every value in a parsed JSON document, containers included, depth first."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from json_values(child)


def test_hu_window_values_live_only_in_common_json():
    """The window is a setting of common.json; everything else refers to it as @hu_window.

    Prose (metadata descriptions) is not a setting and is not checked here.
    """
    folder = configs("ct")
    window = [float(v) for v in json.loads((folder / "common.json").read_text())["hu_window"]]

    def holds_window(path: Path) -> bool:
        for value in json_values(json.loads(path.read_text(encoding="utf-8"))):
            if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
                if [float(v) for v in value] == window:
                    return True
            if isinstance(value, str) and value.startswith("$") and re.search(
                r"\[\s*{:g}(\.0*)?\s*,\s*{:g}(\.0*)?\s*\]".format(*window), value
            ):
                return True  # a window written into an expression
        return False

    assert sorted(p.name for p in source_configs(folder) if holds_window(p)) == ["common.json"]
    assert files_holding(folder, r'"hu_window"\s*:\s*\[') == ["common.json"]


@pytest.mark.parametrize("short", SHORT_NAMES)
def test_label_names_live_only_in_metadata_json(short):
    folder = configs(short)
    meta = json.loads((folder / "metadata.json").read_text())
    names = [n for k, n in meta["network_data_format"]["outputs"]["pred"]["channel_def"].items() if k != "0"]
    assert names
    for name in names:
        assert files_holding(folder, rf'"{re.escape(name)}"') == ["metadata.json"], name


def test_ct_bundle_run_and_segment_hold_the_weights_in_channels_last_and_share_the_backend() -> None:
    """``python -m monai.bundle run`` builds the network as ``segment`` does: NCDHW weights ran the
    bf16 window 1.4-2.6x slower on the CPU (docs/benchmarks.md section 3)."""
    import torch

    from monai_attn.bundle.configs import bundle_parser

    parser = bundle_parser(resolve_bundle("ct"), {"device": "cpu", "backend": "openvino"})
    network = parser.get_parsed_content("network")
    weights = [m.weight for m in network.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 3, 3)]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in weights)
    segmenter = Segmenter.from_bundle("ct", {"device": "cpu", "backend": "openvino"})
    assert parser.get_parsed_content("inferer").backend == segmenter.inferer.backend == "openvino"
