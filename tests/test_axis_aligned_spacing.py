"""AxisAlignedSpacingd gives MONAI Spacingd's grid, voxels, metadata and inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Invertd, Orientationd, Spacingd

from monai_attn.transforms import AxisAlignedSpacingd

PIXDIM = (2.0, 2.0, 2.0)


def scan(affine: np.ndarray, shape=(1, 45, 38, 21)) -> MetaTensor:
    """A smooth volume with sharp edges (HU-like values) on ``affine``."""
    rng = np.random.default_rng(3)
    voxels = rng.normal(0, 50, shape).astype(np.float32)
    voxels[:, 10:30, 5:25, 4:15] += 1000.0
    return MetaTensor(torch.from_numpy(voxels), affine=torch.as_tensor(affine))


def lps(spacing=(0.8, 0.7, 2.5)) -> np.ndarray:
    """A DICOM-like voxel-to-RAS affine: x and y stored right-to-left and front-to-back."""
    return np.diag([-spacing[0], -spacing[1], spacing[2], 1.0]) + np.array(
        [[0, 0, 0, 120.0], [0, 0, 0, 90.0], [0, 0, 0, -300.0], [0, 0, 0, 0]])


def oblique() -> np.ndarray:
    """Axes turned 10 degrees about z (a tilted acquisition that Orientationd cannot undo)."""
    angle = np.deg2rad(10)
    affine = np.eye(4)
    affine[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    affine[:3, :3] *= 0.9
    return affine


@pytest.mark.parametrize("affine", [lps((0.8, 0.7, 2.5)), lps((2.0, 3.1, 0.6)), oblique()],
                         ids=["clinical", "up-and-down", "oblique"])
def test_same_grid_voxels_and_trace_as_monai(affine) -> None:
    """Down- and up-sampling per axis, after Orientationd as in the CT pipeline."""
    data = Orientationd("image", axcodes="RAS")({"image": scan(affine)})
    ours_transform = AxisAlignedSpacingd("image", pixdim=PIXDIM)
    monai_transform = Spacingd("image", pixdim=PIXDIM, mode="bilinear", dtype=torch.float32)
    ours, monai = ours_transform(dict(data))["image"], monai_transform(dict(data))["image"]
    assert ours.shape == monai.shape and ours.dtype == monai.dtype == torch.float32
    np.testing.assert_allclose(ours.affine.numpy(), monai.affine.numpy(), atol=1e-9)
    np.testing.assert_allclose(ours.numpy(), monai.numpy(), atol=1e-2)  # HU of values up to 1200: float32 rounding
    assert [op["class"] for op in ours.applied_operations] == [op["class"] for op in monai.applied_operations]
    assert not ours.pending_operations
    # MONAI's Invertd reads our trace as its own: back on the input grid, the same voxels.
    back_ours = Invertd("image", transform=ours_transform, orig_keys="image")({"image": ours})["image"]
    back_monai = Invertd("image", transform=monai_transform, orig_keys="image")({"image": monai})["image"]
    assert back_ours.shape == data["image"].shape
    np.testing.assert_allclose(back_ours.numpy(), back_monai.numpy(), atol=1e-2)


def test_labels_are_resampled_by_monai() -> None:
    """Nearest-neighbour keys go through MONAI's resampling: identical label values."""
    image = scan(lps())
    label = MetaTensor((image > 500).to(torch.float32), affine=image.affine)
    ours = AxisAlignedSpacingd(["image", "label"], pixdim=PIXDIM, mode=["bilinear", "nearest"])(
        {"image": image, "label": label})["label"]
    monai = Spacingd("label", pixdim=PIXDIM, mode="nearest", dtype=torch.float32)({"label": label})["label"]
    assert ours.sum() > 0 and torch.equal(ours.as_tensor(), monai.as_tensor())


def test_other_dtypes_are_resampled_by_monai() -> None:
    """The separable path computes float32; a float64 request gets MONAI's float64 values."""
    image = scan(lps())
    ours = AxisAlignedSpacingd("image", pixdim=PIXDIM, dtype=torch.float64)({"image": image})["image"]
    monai = Spacingd("image", pixdim=PIXDIM, mode="bilinear", dtype=torch.float64)({"image": image})["image"]
    assert torch.equal(ours.as_tensor(), monai.as_tensor())


@pytest.mark.parametrize("affine", [lps((0.8, 0.7, 2.5)), lps((2.0, 3.1, 0.6))], ids=["clinical", "up-and-down"])
def test_int16_scan_gives_the_float32_result(affine) -> None:
    """An int16 scan as read (integers kept) resamples to what its float32 copy gives, as float32."""
    hu = scan(affine)
    integers = MetaTensor(hu.as_tensor().round().to(torch.int16), affine=hu.affine)
    floats = MetaTensor(integers.as_tensor().float(), affine=hu.affine)
    transform = AxisAlignedSpacingd("image", pixdim=PIXDIM)
    from_int = transform({"image": Orientationd("image", axcodes="RAS")({"image": integers})["image"]})["image"]
    from_float = transform({"image": Orientationd("image", axcodes="RAS")({"image": floats})["image"]})["image"]
    assert from_int.dtype == torch.float32 and from_int.shape == from_float.shape
    np.testing.assert_allclose(from_int.numpy(), from_float.numpy(), atol=1e-3)
