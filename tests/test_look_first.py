"""LookFirstInferer: the coarse look's box, the full pass when the look cannot be trusted, counts, settings."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from monai_attn.errors import InputError
from monai_attn.inference import LookFirstInferer, SegmentationInferer
from monai_attn.inference.look_first import FULL_PASS_REASONS

from test_inference import ThresholdNet, one_thread  # noqa: F401

SHAPE = (64, 64, 64)
ROI = (16, 16, 16)
#: ThresholdNet's label of each organ's intensity, and where each organ starts along x (8^3 cubes at y, z 20-27).
ORGAN_VALUE = {1: 0.6, 2: 0.8, 3: 1.0}
ORGAN_X = {1: 20, 2: 30, 3: 40}


def organs(labels=(1, 2, 3), *, tail: bool = False) -> torch.Tensor:
    """(1, 1, 64, 64, 64): an 8^3 cube per label in ``labels`` (ThresholdNet's intensities); ``tail``: a
    one-voxel line of label 1 from its cube to x = 1 (too thin for the coarse grid)."""
    image = torch.zeros(1, 1, *SHAPE)
    for label in labels:
        x = ORGAN_X[label]
        image[0, 0, x:x + 8, 20:28, 20:28] = ORGAN_VALUE[label]
    if tail:
        image[0, 0, 1:20, 24, 24] = ORGAN_VALUE[1]
    return image


def wrapped() -> SegmentationInferer:
    return SegmentationInferer(ROI, 1, 0.25, precision="fp32", num_classes=4)


def test_the_box_holds_the_organs_and_the_labels_are_the_full_pass():
    net = ThresholdNet()
    image = organs()
    look = LookFirstInferer(wrapped(), margin=4)
    full = wrapped()
    logits, reference = look(image, net), full(image, net)
    assert logits.shape == reference.shape == (1, 4, *SHAPE)
    assert torch.equal(torch.argmax(logits, 1), torch.argmax(reference, 1))  # a 1x1x1 network: windows do not matter
    (box,) = look.boxes
    organs_box = [(20, 48), (20, 28), (20, 28)]
    for b, (lo, hi) in zip(box, organs_box):
        assert b.start <= lo - 4 and b.stop >= hi + 4 and b.stop - b.start <= hi - lo + 4 + 4 + 3  # margin, coarse voxels
    fraction = (box[0].stop - box[0].start) * (box[1].stop - box[1].start) * (box[2].stop - box[2].start) / 64 ** 3
    assert fraction < 0.2 and look.counts.look == f"box {fraction:.0%} of the image"
    assert look.counts.voxels_needed == full.counts.voxels_needed == 64 ** 3
    assert look.counts.voxels_computed < full.counts.voxels_computed / 1.5  # the look: 43^3 voxels
    assert look.counts.roi_size == ROI and look.counts.run > 0
    outside = torch.ones(SHAPE, dtype=torch.bool)
    outside[box] = False
    assert bool((torch.argmax(logits[0], 0)[outside] == 0).all())


@pytest.mark.parametrize("image, reason", [
    (organs((1, 2)), "missing"),                  # two of the three organ classes
    (torch.zeros(1, 1, *SHAPE), "nothing"),
    (organs()[..., :15], "small"),                # thinner than a window
])
def test_the_full_pass_when_the_look_cannot_be_trusted(image, reason):
    net = ThresholdNet()
    look = LookFirstInferer(wrapped(), margin=4)
    full = wrapped()
    logits = look(image, net)
    assert torch.equal(logits, full(image, net))
    assert look.boxes == [None] and look.counts.look == FULL_PASS_REASONS[reason]
    assert look.counts.voxels_computed >= full.counts.voxels_computed


def test_an_organ_at_the_box_edge_sends_the_image_to_the_full_pass():
    """The thin tail vanishes on the coarse grid; at full resolution it runs out of the box: full pass."""
    net = ThresholdNet()
    image = organs(tail=True)
    look = LookFirstInferer(wrapped(), margin=0)
    logits = look(image, net)
    assert look.counts.look == FULL_PASS_REASONS["edge"] and look.boxes == [None]
    assert bool((torch.argmax(logits[0], 0)[1:20, 24, 24] == 1).all())  # the whole tail


def test_a_large_box_is_not_used_and_turned_off_is_the_wrapped_inferer():
    net = ThresholdNet()
    image = organs()
    large = LookFirstInferer(wrapped(), margin=30, max_box_fraction=0.5)
    large(image, net)
    assert large.counts.look == FULL_PASS_REASONS["large"]
    off = LookFirstInferer(wrapped(), enabled="false")  # as a command line gives it
    full = wrapped()
    assert torch.equal(off(image, net), full(image, net))
    assert off.counts.look == "" and off.counts.voxels_computed == full.counts.voxels_computed


class GatedThresholdNet(ThresholdNet):
    """ThresholdNet with one "attention gate" whose alpha is 0.5 everywhere (for the attention-map path)."""

    size_divisor = 1

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.conv(x), [torch.full_like(x, 0.5)]


def test_metatensor_in_and_out_and_attention_maps_zero_outside_the_box():
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    image = MetaTensor(organs(), affine=affine)
    look = LookFirstInferer(wrapped(), margin=4)
    logits, alpha = look(image, GatedThresholdNet(), attention_maps=True)
    assert isinstance(logits, MetaTensor) and torch.equal(logits.affine, affine)
    (box,) = look.boxes
    assert box is not None and alpha.shape == (1, 1, *SHAPE)
    inside = torch.zeros(SHAPE, dtype=torch.bool)
    inside[box] = True
    assert torch.allclose(alpha[0, 0][inside], torch.tensor(0.5)) and bool((alpha[0, 0][~inside] == 0).all())


@pytest.mark.parametrize("kwargs, message", [
    ({"coarse_factor": 1.0}, r"coarse_factor must be > 1"),
    ({"margin": -1}, r"margin and min_component_voxels must be >= 0"),
    ({"max_box_fraction": 0.0}, r"max_box_fraction must be in \(0, 1\]"),
    ({"enabled": "maybe"}, r"look_first must be true or false, got 'maybe'"),
])
def test_settings_are_checked(kwargs, message):
    with pytest.raises(InputError, match=message):
        LookFirstInferer(wrapped(), **kwargs)
