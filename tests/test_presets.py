"""Task pipelines: CT preprocessing geometry and inversion, patch sampling, 2-D pipelines."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Randomizable
from monai.utils import set_determinism
from PIL import Image
from test_io import oblique_affine

from monai_attn.inference import ResampleToInputd
from monai_attn.io import load_image, save_like
from monai_attn.presets import (
    cells_train_transforms,
    cells_val_transforms,
    ct_inference_transforms,
    ct_train_transforms,
    ct_val_transforms,
    retina_train_transforms,
    retina_val_transforms,
)

SHAPE = (48, 56, 16)
#: The CT presets have no defaults: these are the settings every CT test here uses.
CT = {"hu_window": (-175.0, 250.0), "body_threshold_hu": -500.0, "body_margin_mm": 10.0}
SPACING = (1.5, 1.5, 2.0)




@pytest.fixture()
def phantom_ct(tmp_path):
    """A body ellipsoid (40 HU) in air with a small 'pancreas' (label 3, 150 HU) and 'spleen' (label 1)."""
    affine = oblique_affine()
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    centre = world.reshape(-1, 3).mean(0)
    body = np.linalg.norm((world - centre) / [18, 18, 20], axis=-1) < 1
    pancreas = np.linalg.norm((world - centre - [6, 0, 0]) / [4, 4, 8], axis=-1) < 1
    spleen = np.linalg.norm((world - centre + [8, 0, 0]) / [5, 5, 8], axis=-1) < 1
    hu = np.where(body, 40, -1000)
    hu[pancreas], hu[spleen] = 150, 60
    label = np.zeros(SHAPE, np.uint8)
    label[spleen], label[pancreas] = 1, 3
    nib.save(nib.Nifti1Image(hu.astype(np.int16), affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "label.nii.gz")
    return tmp_path / "ct.nii.gz", tmp_path / "label.nii.gz", hu, label


def test_ct_preprocessing_geometry_and_intensity(phantom_ct):
    image_path, label_path, hu, _ = phantom_ct
    data = ct_val_transforms(spacing_mm=SPACING, **CT)({"image": str(image_path), "label": str(label_path)})
    image, label = data["image"], data["label"]
    np.testing.assert_allclose(image.pixdim.numpy(), [1.5, 1.5, 2.0], atol=1e-6)
    assert nib.aff2axcodes(image.affine.numpy()) == ("R", "A", "S")  # closest to RAS; the 0.4 rad tilt stays
    assert image.shape == label.shape and 0.0 <= image.min() and image.max() <= 1.0
    assert set(label.unique().tolist()) == {0.0, 1.0, 3.0}
    # body crop: the field of view shrinks to the body plus margin, air outside is gone
    body_extent_mm = 2 * np.array([18, 18, 20])
    extent_mm = np.array(image.shape[1:]) * [1.5, 1.5, 2.0]
    assert np.all(extent_mm < body_extent_mm + 2 * 10 + 2 * 2.0 + 1e-6)
    assert np.all(extent_mm >= body_extent_mm)
    # HU window: 150 HU -> (150 + 175) / 425
    pancreas_values = image[label == 3]
    assert abs(float(pancreas_values.median()) - 325 / 425) < 0.02


def test_ct_inference_inverts_to_input_grid(phantom_ct, tmp_path):
    image_path, _, hu, _ = phantom_ct
    pre = ct_inference_transforms(spacing_mm=SPACING, **CT)
    data = pre({"image": str(image_path)})
    assert data["input"].shape == (1, *SHAPE)  # the scan as read is kept for the way back
    assert data["image"].shape != data["input"].shape
    # a "prediction" on the model grid: soft tissue brighter than 100 HU
    threshold = (100 + 175) / 425
    data["pred"] = MetaTensor((data["image"].as_tensor() > threshold).to(torch.uint8), affine=data["image"].affine)
    data = ResampleToInputd(("pred",), mode="nearest")(data)
    assert data["pred"].shape == (1, *SHAPE) and data["pred"].dtype == torch.uint8
    out = save_like(data["pred"], data["input"], tmp_path / "seg.nii.gz")

    written, source = nib.load(out), nib.load(image_path)
    assert written.shape == source.shape
    assert np.allclose(written.affine, source.affine, atol=1e-5)
    reference = hu > 100
    predicted = np.asarray(written.dataobj) > 0
    dice = 2 * (reference & predicted).sum() / (reference.sum() + predicted.sum())
    assert dice > 0.8


def test_ct_inference_takes_a_read_scan_as_well_as_a_path(phantom_ct):
    image_path, _, _, _ = phantom_ct
    pre = ct_inference_transforms(spacing_mm=SPACING, **CT)
    from_path = pre({"image": str(image_path)})
    from_image = pre({"image": load_image(image_path)})
    torch.testing.assert_close(from_image["image"].as_tensor(), from_path["image"].as_tensor())
    np.testing.assert_allclose(from_image["image"].affine, from_path["image"].affine)
    np.testing.assert_allclose(from_image["body_centre_mm"], from_path["body_centre_mm"])


def test_ct_train_patches_oversample_small_organ(phantom_ct):
    image_path, label_path, _, _ = phantom_ct
    set_determinism(seed=0)
    train = ct_train_transforms(
        spacing_mm=SPACING, **CT, patch_size=(16, 16, 8), num_samples=8, class_ratios=(1, 0, 0, 1), affine_prob=0.0, label_mapping=None
    )
    patches = train({"image": str(image_path), "label": str(label_path)})
    set_determinism(seed=None)
    assert len(patches) == 8
    assert all(p["image"].shape == (1, 16, 16, 8) and p["label"].shape == (1, 16, 16, 8) for p in patches)
    with_pancreas = sum(bool((p["label"] == 3).any()) for p in patches)
    assert with_pancreas >= 3  # half the centres are on the pancreas (a few flips may move none out)
    assert all(float(p["label"].max()) <= 3 for p in patches)


def test_ct_train_patches_of_random_shape_stay_within_the_asked_sizes(phantom_ct):
    """With ``patch_size_min`` each volume's patches take a shape between it and ``patch_size``
    (steps of 16 voxels); the cached class indices still feed the crop."""
    image_path, label_path, _, _ = phantom_ct
    set_determinism(seed=0)
    train = ct_train_transforms(spacing_mm=SPACING, **CT, patch_size=(48, 32, 32), patch_size_min=(16, 16, 16),
                                num_samples=1, affine_prob=0.0, rotate90_prob=0.0, label_mapping=None)
    shapes = {tuple(train({"image": str(image_path), "label": str(label_path)})[0]["image"].shape[1:])
              for _ in range(12)}
    set_determinism(seed=None)
    assert len(shapes) > 3
    assert all(s[0] in (16, 32, 48) and s[1] in (16, 32) and s[2] in (16, 32) for s in shapes), shapes


def test_ct_train_class_indices_are_cached_and_dropped_after_the_crop(phantom_ct):
    """The class indices are computed before the first random step, so CacheDataset keeps them."""
    image_path, label_path, _, _ = phantom_ct
    train = ct_train_transforms(spacing_mm=SPACING, **CT, patch_size=(16, 16, 8), num_samples=2, label_mapping=None)
    first_random = train.get_index_of_first(lambda t: isinstance(t, Randomizable))
    cached = train({"image": str(image_path), "label": str(label_path)}, end=first_random)
    label = np.asarray(cached["label"][0])
    np.testing.assert_array_equal(np.sort(cached["label_cls_indices"][3]), np.flatnonzero(label.ravel() == 3))
    patches = train(cached, start=first_random)
    assert all(set(p) >= {"image", "label"} and "label_cls_indices" not in p for p in patches)


def test_ct_train_remaps_labels_from_descriptor(tmp_path):
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    hu = np.full((24, 24, 12), 40, np.int16)
    label = np.zeros((24, 24, 12), np.uint8)
    label[8:16, 8:16, 4:8] = 2  # MSD pancreas "tumour"
    label[10:12, 10:12, 5:7] = 1
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "label.nii.gz")
    data = ct_val_transforms(spacing_mm=SPACING, **CT, label_mapping="msd_task07_pancreas")(
        {"image": str(tmp_path / "ct.nii.gz"), "label": str(tmp_path / "label.nii.gz")}
    )
    assert set(data["label"].unique().tolist()) == {0.0, 3.0}


def _planar_pair(tmp_path, rgb: bool):
    rng = np.random.default_rng(0)
    height, width = 90, 120
    image = rng.integers(0, 255, (height, width, 3) if rgb else (height, width), dtype=np.uint8)
    label = np.zeros((height, width), np.uint8)
    label[30:60, 40:80] = 1
    label[40:50, 55:65] = 2
    Image.fromarray(image).save(tmp_path / "image.png")
    Image.fromarray(label).save(tmp_path / "label.png")
    return {"image": str(tmp_path / "image.png"), "label": str(tmp_path / "label.png")}


def test_retina_pipelines(tmp_path):
    pair = _planar_pair(tmp_path, rgb=True)
    val = retina_val_transforms(image_size=(64, 48))(pair)
    assert val["image"].shape == (3, 64, 48) and val["label"].shape == (1, 64, 48)
    assert set(val["label"].unique().tolist()) == {0.0, 1.0, 2.0}
    per_channel_mean = val["image"].mean(dim=(1, 2))
    np.testing.assert_allclose(per_channel_mean.numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(val["image"].std(dim=(1, 2), unbiased=False).numpy(), 1.0, atol=1e-3)

    patches = retina_train_transforms(image_size=(64, 48), patch_size=(32, 32), num_samples=6)(pair)
    assert len(patches) == 6
    assert all(p["image"].shape == (3, 32, 32) and p["label"].shape == (1, 32, 32) for p in patches)
    assert sum(bool((p["label"] == 2).any()) for p in patches) >= 2  # the small cup is sampled
    assert all(set(p["label"].unique().tolist()) <= {0.0, 1.0, 2.0} for p in patches)


def test_retina_vessel_labels_remapped(tmp_path):
    Image.fromarray(np.zeros((70, 80, 3), np.uint8)).save(tmp_path / "image.png")
    vessels = np.zeros((70, 80), np.uint8)
    vessels[5:8] = 255
    Image.fromarray(vessels).save(tmp_path / "label.png")
    data = retina_val_transforms(image_size=None, label_mapping="drive")(
        {"image": str(tmp_path / "image.png"), "label": str(tmp_path / "label.png")}
    )
    assert set(data["label"].unique().tolist()) == {0.0, 1.0}
    assert int(data["label"].sum()) == 3 * 80


def test_cells_pipelines(tmp_path):
    pair = _planar_pair(tmp_path, rgb=False)
    val = cells_val_transforms(label_mapping={0: 0, 1: 1, 2: 1})(pair)
    assert val["image"].shape == (1, 120, 90)
    assert abs(float(val["image"].mean())) < 1e-4
    set_determinism(seed=0)
    patches = cells_train_transforms(
        patch_size=(64, 64), num_samples=3, elastic_prob=1.0, label_mapping={0: 0, 1: 1, 2: 1}
    )(pair)
    set_determinism(seed=None)
    assert len(patches) == 3
    for patch in patches:
        assert patch["image"].shape == (1, 64, 64) and patch["label"].shape == (1, 64, 64)
        assert set(patch["label"].unique().tolist()) <= {0.0, 1.0}  # nearest interpolation keeps labels


def test_body_crop_box_and_centroid_match_an_independent_computation():
    from scipy import ndimage

    from monai_attn.transforms import CropToBodyd

    rng = np.random.default_rng(0)
    hu = np.full((40, 36, 12), -1000.0, np.float32)
    hu[8:30, 5:20, 2:9] = rng.uniform(-400, 200, (22, 15, 7))  # body: every voxel above -500 HU
    hu[12, 25, 10] = 50.0  # one bright voxel outside the block still counts as body
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    affine[:3, 3] = (-30.0, 10.0, 100.0)
    out = CropToBodyd("image", source_key="image", threshold_hu=-500, margin_mm=4.0)(
        {"image": MetaTensor(torch.from_numpy(hu[None]), affine=torch.from_numpy(affine))})
    body = hu > -500
    lo, hi = np.argwhere(body).min(axis=0), np.argwhere(body).max(axis=0) + 1
    margin = np.array([2, 2, 1])  # 4 mm: 2 voxels of 2 mm, one of 5 mm (rounded up)
    start, end = np.maximum(lo - margin, 0), np.minimum(hi + margin, hu.shape)
    np.testing.assert_array_equal(out["image"][0].numpy(), hu[tuple(slice(a, b) for a, b in zip(start, end))])
    centre = np.array(ndimage.center_of_mass(body))
    np.testing.assert_allclose(out["body_centre_mm"], affine[:3, :3] @ centre + affine[:3, 3], atol=1e-6)


@pytest.mark.parametrize("threshold_hu", [-500.0, -500.5])
def test_ct_inference_on_int16_as_read_equals_the_float32_path(tmp_path, threshold_hu):
    """The scan is kept int16 as read (``input``), and the network input is what float32 voxels give,
    the body threshold included (-500 HU exactly is not body at -500, is at -500.5)."""
    from monai_attn.io import load_image
    from monai_attn.presets.ct import ct_inference_transforms

    rng = np.random.default_rng(4)
    hu = np.full((48, 40, 14), -1000, np.int16)
    hu[10:38, 8:30, 2:12] = rng.integers(-120, 300, (28, 22, 10))
    hu[6, 4, 7], hu[44, 36, 7] = -500, -499  # on the threshold, just above it
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "ct.nii.gz")
    pre = ct_inference_transforms(spacing_mm=(2.0, 2.0, 2.0), hu_window=(-175.0, 250.0),
                                  body_threshold_hu=threshold_hu, body_margin_mm=2.0, check_input=False)
    from_file = pre({"image": str(tmp_path / "ct.nii.gz")})
    from_float = pre({"image": load_image(tmp_path / "ct.nii.gz", expect="ct")})
    assert from_file["input"].dtype == torch.int16 and from_float["input"].dtype == torch.float32
    np.testing.assert_array_equal(from_file["input"][0].numpy(), hu)
    assert from_file["image"].dtype == torch.float32 and from_file["image"].shape == from_float["image"].shape
    np.testing.assert_allclose(from_file["image"].numpy(), from_float["image"].numpy(), atol=1e-6)
    np.testing.assert_allclose(from_file["image"].affine.numpy(), from_float["image"].affine.numpy())
