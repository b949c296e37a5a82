"""Dataset layouts, folds, descriptors and label remapping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged
from PIL import Image

from monai_attn.dataset_preparation import disc_cup_label, split_tiff_stack
from monai_attn.datasets import (
    LABEL_SCHEMES,
    detect_layout,
    get_descriptor,
    list_descriptors,
    load_datalist,
    remap_for,
    split_cases,
)
from monai_attn.errors import InputError
from monai_attn.io.readers import MedicalImageReader
from monai_attn.transforms import RemapLabels, RemapLabelsd, label_transforms


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture()
def msd_dataset(tmp_path):
    root = tmp_path / "Task09_Spleen"
    cases = [f"spleen_{i}" for i in (2, 10, 3)]
    for case in cases:
        touch(root / "imagesTr" / f"{case}.nii.gz")
        touch(root / "labelsTr" / f"{case}.nii.gz")
    touch(root / "imagesTs" / "spleen_1.nii.gz")
    touch(root / "imagesTr" / "._spleen_2.nii.gz")  # macOS metadata files in the real tarballs
    meta = {
        "name": "Spleen",
        "labels": {"0": "background", "1": "spleen"},
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases],
        "test": ["./imagesTs/spleen_1.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_msd_layout(msd_dataset):
    datalist = load_datalist(msd_dataset)
    assert datalist["layout"] == "msd"
    assert datalist["labels"] == {0: "background", 1: "spleen"}
    assert [item["case_id"] for item in datalist["training"]] == ["spleen_10", "spleen_2", "spleen_3"]
    first = datalist["training"][0]
    assert first["image"] == str(msd_dataset / "imagesTr" / "spleen_10.nii.gz")
    assert first["label"] == str(msd_dataset / "labelsTr" / "spleen_10.nii.gz")
    assert datalist["test"] == [{"image": str(msd_dataset / "imagesTs" / "spleen_1.nii.gz"), "case_id": "spleen_1"}]


def test_msd_missing_file_is_reported(msd_dataset):
    (msd_dataset / "labelsTr" / "spleen_3.nii.gz").unlink()
    with pytest.raises(
        InputError, match=r"dataset.json lists 1 files that do not exist, e.g. labelsTr/spleen_3.nii.gz"
    ):
        load_datalist(msd_dataset)


def test_nnunet_layout(tmp_path):
    root = tmp_path / "Dataset010_Abdomen"
    for case in ("abd_001", "abd_002"):
        touch(root / "imagesTr" / f"{case}_0000.nii.gz")
        touch(root / "imagesTr" / f"{case}_0001.nii.gz")
        touch(root / "labelsTr" / f"{case}.nii.gz")
    touch(root / "imagesTs" / "abd_101_0000.nii.gz")
    touch(root / "imagesTs" / "abd_101_0001.nii.gz")
    meta = {
        "channel_names": {"0": "CT", "1": "CT_delayed"},
        "labels": {"background": 0, "spleen": 1, "kidney": 2},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    assert detect_layout(root) == "nnunet"
    datalist = load_datalist(root)
    assert datalist["labels"] == {0: "background", 1: "spleen", 2: "kidney"}
    assert [item["case_id"] for item in datalist["training"]] == ["abd_001", "abd_002"]
    assert datalist["training"][0]["image"] == [
        str(root / "imagesTr" / "abd_001_0000.nii.gz"),
        str(root / "imagesTr" / "abd_001_0001.nii.gz"),
    ]
    assert datalist["training"][0]["label"] == str(root / "labelsTr" / "abd_001.nii.gz")
    assert [item["case_id"] for item in datalist["test"]] == ["abd_101"]

    (root / "imagesTr" / "abd_002_0001.nii.gz").unlink()
    with pytest.raises(InputError, match="abd_002_0001.nii.gz"):
        load_datalist(root)


def test_folder_layouts(tmp_path):
    plain = tmp_path / "plain"
    for case in ("a", "b"):
        touch(plain / "images" / f"{case}.png")
        touch(plain / "labels" / f"{case}.png")
    touch(plain / "images" / "c.png")
    datalist = load_datalist(plain)
    assert datalist["layout"] == "folders"
    assert [(i["case_id"], i["label"].endswith("labels/a.png")) for i in datalist["training"]][0] == ("a", True)
    assert [i["case_id"] for i in datalist["test"]] == ["c"]

    # KiTS: one folder per case, driven by the descriptor
    kits = tmp_path / "kits19" / "data"
    for case in ("case_00000", "case_00001"):
        touch(kits / case / "imaging.nii.gz")
        touch(kits / case / "segmentation.nii.gz")
    touch(kits / "case_00210" / "imaging.nii.gz")
    datalist = load_datalist(kits, descriptor="kits19")
    assert [i["case_id"] for i in datalist["training"]] == ["case_00000", "case_00001"]
    assert [i["case_id"] for i in datalist["test"]] == ["case_00210"]
    assert datalist["labels"] == {0: "background", 1: "kidney", 2: "tumour"}

    # BTCV: different prefixes for images and labels, test images elsewhere
    btcv = tmp_path / "RawData"
    touch(btcv / "Training" / "img" / "img0001.nii.gz")
    touch(btcv / "Training" / "label" / "label0001.nii.gz")
    touch(btcv / "Testing" / "img" / "img0061.nii.gz")
    datalist = load_datalist(btcv, descriptor="btcv")
    assert [(i["case_id"], i["label"].endswith("label0001.nii.gz")) for i in datalist["training"]] == [("0001", True)]
    assert [i["case_id"] for i in datalist["test"]] == ["0061"]

    orphan = tmp_path / "orphan"
    touch(orphan / "images" / "a.png")
    touch(orphan / "labels" / "z.png")
    with pytest.raises(InputError, match=r"1 labels have no image \(z\)"):
        load_datalist(orphan)


def test_unknown_layout(tmp_path):
    with pytest.raises(InputError, match="cannot tell the dataset layout"):
        load_datalist(tmp_path)


def test_folds_are_disjoint_cover_all_and_deterministic():
    items = [{"image": f"/d/case_{i:03d}.nii.gz", "case_id": f"case_{i:03d}"} for i in range(23)]
    validation_sets = []
    for fold in range(5):
        train, val = split_cases(items, n_folds=5, fold=fold, seed=7)
        assert len(train) + len(val) == 23 and len(val) in (4, 5)
        assert not {i["case_id"] for i in train} & {i["case_id"] for i in val}
        validation_sets.append({i["case_id"] for i in val})
        # same split whatever the input order
        assert split_cases(list(reversed(items)), n_folds=5, fold=fold, seed=7) == (train, val)
    assert set().union(*validation_sets) == {i["case_id"] for i in items}
    assert sum(len(s) for s in validation_sets) == 23
    assert split_cases(items, fold=0, seed=8)[1] != split_cases(items, fold=0, seed=7)[1]
    with pytest.raises(ValueError, match="fold must be in"):
        split_cases(items, n_folds=5, fold=5)


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("msd_task07_pancreas", [0, 1, 2], [0, 3, 3]),
        ("msd_task09_spleen", [0, 1], [0, 1]),
        ("kits19", [0, 1, 2], [0, 2, 2]),
        ("kits23", [0, 1, 2, 3], [0, 2, 2, 2]),
        ("btcv", list(range(14)), [0, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]),
        ("drive", [0, 255], [0, 1]),
        ("isbi2012_em", [0, 255], [1, 0]),
        ("totalsegmentator", [0, 1, 2, 3, 5, 7, 117], [0, 1, 2, 2, 0, 3, 0]),
        ("abdomenct1k", [0, 1, 2, 3, 4], [0, 0, 2, 1, 3]),
        ("amos22", list(range(16)), [0, 1, 2, 2, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0]),
        ("word", list(range(17)), [0, 0, 1, 2, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("flare22", list(range(14)), [0, 0, 2, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
    ],
)
def test_descriptor_remaps(name, source, expected):
    remap = RemapLabels(name)
    label = np.array(source, dtype=np.uint8).reshape(1, -1)
    np.testing.assert_array_equal(remap(label), np.array(expected).reshape(1, -1))


def test_every_descriptor_is_complete():
    names = list_descriptors()
    assert {
        "msd_task07_pancreas",
        "msd_task09_spleen",
        "kits19",
        "kits23",
        "btcv",
        "drishti_gs",
        "drive",
        "isbi2012_em",
        "totalsegmentator",
        "abdomenct1k",
        "amos22",
        "word",
        "flare22",
    } <= set(names)
    for name in names:
        descriptor = get_descriptor(name)
        assert descriptor["name"] == name
        assert descriptor["scheme"] in LABEL_SCHEMES
        assert descriptor["source"]["url"].startswith("http") and descriptor["source"]["licence"]
        if descriptor["modality"] == "CT":
            assert descriptor["preprocessing"]["hu_window"] == [-175, 250]
            assert len(descriptor["preprocessing"]["spacing_mm"]) == 3
    with pytest.raises(InputError, match="unknown dataset 'lits'"):
        get_descriptor("lits")


def test_remap_dict_form_on_metatensor_and_unknown_values():
    label = MetaTensor(torch.tensor([[[0.0, 1.0], [2.0, 11.0]]]), meta={"filename_or_obj": "label0001.nii.gz"})
    out = RemapLabelsd("label", remap_for("btcv"))({"label": label})["label"]
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "label0001.nii.gz"
    assert out.tolist() == [[[0.0, 1.0], [2.0, 3.0]]]
    assert label.tolist() == [[[0.0, 1.0], [2.0, 11.0]]]  # input untouched
    with pytest.raises(InputError, match=r"label values 14 are not in the remap table"):
        RemapLabels(remap_for("btcv"))(np.array([0, 14]))
    np.testing.assert_array_equal(RemapLabels({1: 1}, default=0)(np.array([0, 1, 5])), [0, 1, 0])


def test_preparation_helpers(tmp_path):
    pages = [Image.fromarray(np.full((8, 8), 10 * i, np.uint8)) for i in range(3)]
    pages[0].save(tmp_path / "train-volume.tif", save_all=True, append_images=pages[1:])
    written = split_tiff_stack(tmp_path / "train-volume.tif", tmp_path / "images")
    assert [p.name for p in written] == ["00.png", "01.png", "02.png"]
    assert np.asarray(Image.open(written[2])).max() == 20

    disc = np.zeros((10, 10), np.uint8)
    disc[2:8, 2:8] = 255
    disc[2, 2] = 100  # fewer than half the experts
    cup = np.zeros((10, 10), np.uint8)
    cup[4:6, 4:6] = 200
    label = disc_cup_label(disc, cup)
    assert label[2, 2] == 0 and label[3, 3] == 1 and label[4, 4] == 2 and label[0, 0] == 0
    assert (label == 2).sum() == 4 and (label == 1).sum() == 36 - 1 - 4


REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "real-ct"


def _totalsegmentator_case(root, case="s0011"):
    """The real CT arranged as the TotalSegmentator data set stores it: ct.nii.gz + one mask per class."""
    reference = nib.load(REAL_CT / "example_seg.nii.gz")
    labels = np.asarray(reference.dataobj)
    (root / case / "segmentations").mkdir(parents=True)
    shutil.copy(REAL_CT / "example_ct_sm.nii.gz", root / case / "ct.nii.gz")
    for value, name in {1: "spleen", 2: "kidney_right", 3: "kidney_left", 5: "liver", 7: "pancreas"}.items():
        nib.save(nib.Nifti1Image((labels == value).astype(np.uint8), reference.affine),
                 root / case / "segmentations" / f"{name}.nii.gz")
    return labels


@pytest.mark.skipif(not REAL_CT.is_dir(), reason="needs ../shared/real-ct")
def test_totalsegmentator_layout_combines_masks_into_our_scheme(tmp_path):
    labels = _totalsegmentator_case(tmp_path)
    (tmp_path / "s0012").mkdir()
    shutil.copy(REAL_CT / "example_ct_sm.nii.gz", tmp_path / "s0012" / "ct.nii.gz")  # no masks: a test case
    datalist = load_datalist(tmp_path, descriptor="totalsegmentator")
    assert [item["case_id"] for item in datalist["training"]] == ["s0011"]
    assert [item["case_id"] for item in datalist["test"]] == ["s0012"]
    assert [Path(p).name for p in datalist["training"][0]["label"]] == [
        "spleen.nii.gz", "kidney_right.nii.gz", "kidney_left.nii.gz", "pancreas.nii.gz"]
    loaded = Compose([LoadImaged("label", reader=MedicalImageReader(), ensure_channel_first=True, image_only=True),
                      *label_transforms("label", "totalsegmentator")])(datalist["training"][0])["label"]
    expected = np.select([labels == 1, np.isin(labels, [2, 3]), labels == 7], [1, 2, 3], 0)  # README's mapping
    np.testing.assert_array_equal(np.asarray(loaded[0]), expected)
    # TotalSegmentator's own multi-label output (117 classes) remaps with the same descriptor
    np.testing.assert_array_equal(RemapLabels("totalsegmentator")(labels), expected)
    (tmp_path / "s0011" / "segmentations" / "pancreas.nii.gz").unlink()
    with pytest.raises(InputError, match="case 's0011' lacks the masks of pancreas"):
        load_datalist(tmp_path, descriptor="totalsegmentator")


def test_abdomenct1k_flare22_word_and_amos_layouts(tmp_path):
    ct1k = tmp_path / "ct1k"
    for part, case in (("1", "Case_00001"), ("2", "Case_00401"), ("3", "Case_00801")):
        touch(ct1k / f"AbdomenCT-1K-ImagePart{part}" / f"{case}_0000.nii.gz")
    touch(ct1k / "Mask" / "Case_00001.nii.gz")
    touch(ct1k / "Mask" / "Case_00401.nii.gz")
    listed = load_datalist(ct1k, descriptor="abdomenct1k")
    assert [i["case_id"] for i in listed["training"]] == ["Case_00001", "Case_00401"]
    assert [i["case_id"] for i in listed["test"]] == ["Case_00801"]
    assert listed["training"][1]["image"].endswith("AbdomenCT-1K-ImagePart2/Case_00401_0000.nii.gz")

    flare = tmp_path / "flare"
    touch(flare / "images" / "FLARE22_Tr_0001_0000.nii.gz")
    touch(flare / "labels" / "FLARE22_Tr_0001.nii.gz")
    assert [i["case_id"] for i in load_datalist(flare, descriptor="flare22")["training"]] == ["FLARE22_Tr_0001"]

    word = tmp_path / "word"
    for split, case in (("Tr", "word_0002"), ("Val", "word_0001")):
        touch(word / f"images{split}" / f"{case}.nii.gz")
        touch(word / f"labels{split}" / f"{case}.nii.gz")
    assert [i["case_id"] for i in load_datalist(word, descriptor="word")["training"]] == ["word_0001", "word_0002"]

    amos = tmp_path / "amos22"
    entries = {"training": [], "validation": []}
    for split, folder, case in (("training", "Tr", "amos_0001"), ("training", "Tr", "amos_0540"),
                                ("validation", "Va", "amos_0008")):
        touch(amos / f"images{folder}" / f"{case}.nii.gz")
        touch(amos / f"labels{folder}" / f"{case}.nii.gz")
        entries[split].append({"image": f"./images{folder}/{case}.nii.gz", "label": f"./labels{folder}/{case}.nii.gz"})
    (amos / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "spleen"}, **entries}))
    # CT only (ids below 500); the labelled validation split counts as training data
    assert [i["case_id"] for i in load_datalist(amos, descriptor="amos22")["training"]] == ["amos_0001", "amos_0008"]


def test_remap_default_is_validated(tmp_path, monkeypatch):
    monkeypatch.setattr("monai_attn.datasets.DATASETS_DIR", tmp_path)
    base = {"name": "x", "title": "x", "modality": "CT", "scheme": "abdomen_ct", "layout": "msd",
            "citation": "x", "source": {"url": "https://x", "licence": "x"}, "labels": {0: "bg", 5: "spleen"}}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({**base, "remap": {5: 1}}))
    with pytest.raises(InputError, match="every source label"):
        get_descriptor("x")
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({**base, "remap": {5: 1}, "remap_default": 0}))
    np.testing.assert_array_equal(RemapLabels("x")(np.array([0, 5, 9])), [0, 1, 0])
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({**base, "remap": {5: 1}, "remap_default": 7}))
    with pytest.raises(InputError, match="leave the 'abdomen_ct' scheme"):
        get_descriptor("x")
