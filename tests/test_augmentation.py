"""Domain randomisation of training patches: CT per-organ offsets and intensity chain, the EM chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from monai_attn.transforms import (
    RandLabelIntensityShiftd,
    RandSizeCropByLabelClassesd,
    RandTruncatedFieldOfViewd,
    ct_intensity_randomisation,
    em_intensity_randomisation,
)


def _patch() -> dict[str, torch.Tensor]:
    label = torch.zeros((1, 24, 24, 16))
    label[0, 2:10, 2:10, 2:8] = 1
    label[0, 12:20, 4:12, 4:10] = 2
    label[0, 14:22, 14:22, 8:14] = 3
    image = torch.linspace(0, 1, label.numel()).reshape(label.shape)
    return {"image": MetaTensor(image), "label": MetaTensor(label)}


def test_label_shift_moves_each_organ_by_its_own_constant_and_nothing_else():
    data = _patch()
    shift = RandLabelIntensityShiftd("image", "label", offsets=0.2, prob=1.0, label_prob=1.0)
    shift.set_random_state(3)
    out = shift(data)
    delta = (out["image"] - data["image"]).as_tensor()
    label = data["label"].as_tensor()
    assert torch.equal(out["label"].as_tensor(), label)
    assert torch.all(delta[label == 0] == 0)
    offsets = []
    for value in (1, 2, 3):
        inside = delta[label == value]
        assert torch.allclose(inside, inside[0].expand_as(inside), atol=1e-6)  # one offset per organ
        assert 0 < abs(float(inside[0])) <= 0.2
        offsets.append(float(inside[0]))
    assert len(set(np.round(offsets, 6))) == 3  # drawn independently


def test_label_shift_respects_its_probabilities_and_arguments():
    data = _patch()
    unchanged = RandLabelIntensityShiftd("image", "label", offsets=0.2, prob=0.0)(data)
    assert torch.equal(unchanged["image"].as_tensor(), data["image"].as_tensor())
    none_selected = RandLabelIntensityShiftd("image", "label", offsets=0.2, prob=1.0, label_prob=0.0)(data)
    assert torch.equal(none_selected["image"].as_tensor(), data["image"].as_tensor())
    with pytest.raises(ValueError, match="offsets >= 0"):
        RandLabelIntensityShiftd("image", "label", offsets=-1.0)


def test_intensity_randomisation_changes_the_image_only_and_scales_with_the_window():
    chain = Compose(ct_intensity_randomisation("image", "label", (-175.0, 250.0), prob=1.0))
    chain.set_random_state(0)
    data = _patch()
    out = chain(data)
    assert out["image"].shape == data["image"].shape and out["image"].dtype == torch.float32
    assert torch.equal(out["label"].as_tensor(), data["label"].as_tensor())
    assert not torch.allclose(out["image"].as_tensor(), data["image"].as_tensor())
    shift = chain.transforms[0]
    assert isinstance(shift, RandLabelIntensityShiftd)
    assert shift.offsets == pytest.approx(45.0 / 425.0)  # 45 HU in a 425 HU window
    with pytest.raises(ValueError, match="low < high"):
        ct_intensity_randomisation("image", "label", (250.0, -175.0))


def test_em_randomisation_runs_every_step_on_a_2d_section_and_keeps_its_structure():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    section = 0.3 + 0.4 * (torch.sin(xx / 3) > 0.8).float()  # dark background, pale stripes
    label = (torch.sin(xx / 3) > 0.8).float()
    for seed in range(3):
        chain = Compose(em_intensity_randomisation("image", prob=1.0))
        chain.set_random_state(seed)
        out = chain({"image": MetaTensor(section[None].clone()), "label": MetaTensor(label[None])})
        image = out["image"].as_tensor()[0]
        assert image.shape == (64, 64) and torch.isfinite(image).all()
        assert not torch.allclose(image, section, atol=1e-3)
        # every step is monotone or local: the stripes stay brighter than the background
        assert image[label == 1].mean() > image[label == 0].mean() + 0.1
        assert torch.equal(out["label"].as_tensor()[0], label)


def test_truncated_field_of_view_blanks_image_and_label_beyond_one_plane():
    data = _patch()
    cut = RandTruncatedFieldOfViewd("image", "label", prob=1.0, axes=(2,), cut_fraction=(0.5, 0.5))
    for seed in range(6):
        cut.set_random_state(seed)
        out = cut(data)
        image, label = out["image"].as_tensor(), out["label"].as_tensor()
        blank = (image == 0).all(dim=(0, 1, 2))  # per z slice
        assert blank.sum() == 8 and (blank[:8].all() or blank[8:].all())  # one side of z = 8
        assert torch.all(label[..., blank] == 0)
        kept = ~blank
        assert torch.equal(image[..., kept], data["image"].as_tensor()[..., kept])
        assert torch.equal(label[..., kept], data["label"].as_tensor()[..., kept])
    untouched = RandTruncatedFieldOfViewd("image", "label", prob=0.0)(data)
    assert torch.equal(untouched["image"].as_tensor(), data["image"].as_tensor())
    with pytest.raises(ValueError, match="cut_fraction"):
        RandTruncatedFieldOfViewd("image", "label", cut_fraction=(0.0, 1.0))


def test_random_size_patches_take_every_allowed_shape_from_one_place_in_image_and_label():
    shape = (40, 36, 30)
    index = torch.arange(np.prod(shape), dtype=torch.float32).reshape(1, *shape)
    label = torch.zeros((1, *shape))
    label[0, 18:22, 16:20, 12:18] = 1  # a small organ: centres fall on it half of the time
    data = {"image": MetaTensor(index), "label": MetaTensor(label)}
    crop = RandSizeCropByLabelClassesd(["image", "label"], "label", smallest=(16, 16, 8), largest=(32, 32, 24),
                                       step=8, ratios=[1, 1], num_classes=2, num_samples=2)
    crop.set_random_state(0)
    seen: list[set[int]] = [set(), set(), set()]
    for _ in range(40):
        first, second = crop(data)
        assert first["image"].shape == second["image"].shape  # one size per volume
        for patch in (first, second):
            size = patch["image"].shape[1:]
            for axis, n in enumerate(size):
                seen[axis].add(n)
            # the patch is one block of the volume, the same block in image and label
            start = np.unravel_index(int(patch["image"][0, 0, 0, 0]), shape)
            block = tuple(slice(s, s + n) for s, n in zip(start, size))
            assert torch.equal(patch["image"].as_tensor()[0], index[0][block])
            assert torch.equal(patch["label"].as_tensor()[0], label[0][block])
    assert seen == [{16, 24, 32}, {16, 24, 32}, {8, 16, 24}]
    again = crop.set_random_state(0)(data)[0]["image"]
    crop.set_random_state(0)
    assert torch.equal(crop(data)[0]["image"].as_tensor(), again.as_tensor())
    with pytest.raises(ValueError, match="whole steps of 16"):
        RandSizeCropByLabelClassesd(["image", "label"], "label", smallest=40, largest=96, ratios=[1, 1], num_classes=2)


def test_random_size_patch_larger_than_its_volume_is_padded_after_the_crop():
    """Along an axis shorter than the drawn size the patch holds the whole axis, padded with 0
    to the size (the volume itself is not padded beforehand)."""
    shape = (20, 12, 6)
    image = torch.arange(1, 1 + np.prod(shape), dtype=torch.float32).reshape(1, *shape)  # no 0 inside
    label = torch.ones((1, *shape))
    crop = RandSizeCropByLabelClassesd(["image", "label"], "label", smallest=(8, 16, 8), largest=(8, 16, 8),
                                       ratios=[0, 1], num_classes=2, num_samples=1)
    crop.set_random_state(1)
    patch = crop({"image": MetaTensor(image), "label": MetaTensor(label)})[0]
    assert patch["image"].shape == patch["label"].shape == (1, 8, 16, 8)
    inside = patch["image"][0] > 0
    assert int(inside.sum()) == 8 * 12 * 6  # all of y (12 of 16) and z (6 of 8), 8 of x
    assert torch.equal(patch["label"][0] > 0, inside)
    assert torch.equal(inside.any(dim=(0, 2)), torch.tensor([False, False] + [True] * 12 + [False, False]))
