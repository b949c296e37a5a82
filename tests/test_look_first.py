"""LookFirstInferer: the coarse look's box, the full pass when the look cannot be trusted, counts, settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_attn.errors import InputError
from monai_attn.inference import LookFirstInferer, SegmentationInferer
from monai_attn.inference.look_first import FULL_PASS_REASONS

#: label 1 where the intensity is in [0.3, 0.6), label 2 from 0.6 (BandNet).
BANDS = (0.3, 0.6)
SHAPE = (64, 64, 64)
ROI = (16, 16, 16)


class BandNet(torch.nn.Module):
    """A 1x1x1 convolution whose argmax is the intensity band: the same logits whatever the windows."""

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = 3
        self.conv = torch.nn.Conv3d(1, 3, kernel_size=1)
        biases = torch.zeros(3)
        for k, threshold in enumerate(BANDS, start=1):
            biases[k] = biases[k - 1] - 10.0 * threshold
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.0, 10.0, 20.0]).view(3, 1, 1, 1, 1))
            self.conv.bias.copy_(biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest single-threaded, and the CPU is shared with other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def organs(*, first: bool = True, second: bool = True, tail: bool = False) -> torch.Tensor:
    """(1, 1, 64, 64, 64): with ``first`` an 8^3 organ of label 2 at x, y, z 20-27 and with ``second`` one
    of label 1 at x 30-37; ``tail``: a one-voxel line of label 1 from the second organ to x = 62 (too
    thin for the coarse grid)."""
    image = torch.zeros(1, 1, *SHAPE)
    if first:
        image[0, 0, 20:28, 20:28, 20:28] = 1.0
    if second:
        image[0, 0, 30:38, 20:28, 20:28] = 0.45
    if tail:
        image[0, 0, 38:63, 24, 24] = 0.45
    return image


def wrapped() -> SegmentationInferer:
    return SegmentationInferer(ROI, 1, 0.25, precision="fp32", num_classes=3)


def test_the_box_holds_the_organs_and_the_labels_are_the_full_pass():
    net = BandNet()
    image = organs()
    look = LookFirstInferer(wrapped(), margin=4)
    full = wrapped()
    logits, reference = look(image, net), full(image, net)
    assert logits.shape == reference.shape == (1, 3, *SHAPE)
    assert torch.equal(torch.argmax(logits, 1), torch.argmax(reference, 1))
    (box,) = look.boxes
    # the organs (x 20-37, y and z 20-27) as the 43^3 coarse grid sees them (its voxels straddling an
    # organ's face hold part of it), +- 4 voxels
    assert [(b.start, b.stop) for b in box] == [(15, 42), (15, 33), (15, 33)]
    assert look.counts.look == f"box {27 * 18 * 18 / 64 ** 3:.0%} of the image"
    assert look.counts.voxels_needed == full.counts.voxels_needed == 64 ** 3
    assert look.counts.voxels_computed < full.counts.voxels_computed / 1.5  # the look: 43^3 voxels
    assert look.counts.roi_size == ROI and look.counts.run > 0
    outside = torch.ones(SHAPE, dtype=torch.bool)
    outside[box] = False
    assert bool((torch.argmax(logits[0], 0)[outside] == 0).all())


@pytest.mark.parametrize("image, reason", [
    (organs(first=False), "missing"),             # only one of the two organ classes found
    (torch.zeros(1, 1, *SHAPE), "nothing"),
    (organs()[..., :15], "small"),                # thinner than a window
])
def test_the_full_pass_when_the_look_cannot_be_trusted(image, reason):
    net = BandNet()
    look = LookFirstInferer(wrapped(), margin=4)
    full = wrapped()
    logits = look(image, net)
    assert torch.equal(logits, full(image, net))
    assert look.boxes == [None] and look.counts.look == FULL_PASS_REASONS[reason]
    assert look.counts.voxels_computed >= full.counts.voxels_computed


def test_an_organ_at_the_box_edge_sends_the_image_to_the_full_pass():
    """The thin tail vanishes on the coarse grid; at full resolution it runs out of the box: full pass."""
    net = BandNet()
    image = organs(tail=True)
    look = LookFirstInferer(wrapped(), margin=0)
    logits = look(image, net)
    assert look.counts.look == FULL_PASS_REASONS["edge"] and look.boxes == [None]
    assert bool((torch.argmax(logits[0], 0)[38:63, 24, 24] == 1).all())  # the whole tail


def test_a_large_box_is_not_used_and_turned_off_is_the_wrapped_inferer():
    net = BandNet()
    image = organs()
    large = LookFirstInferer(wrapped(), margin=30, max_box_fraction=0.5)
    large(image, net)
    assert large.counts.look == FULL_PASS_REASONS["large"]
    off = LookFirstInferer(wrapped(), enabled="false")  # as a command line gives it
    full = wrapped()
    assert torch.equal(off(image, net), full(image, net))
    assert off.counts.look == "" and off.counts.voxels_computed == full.counts.voxels_computed


class GatedBandNet(BandNet):
    """BandNet with one "attention gate" whose alpha is 0.5 everywhere (for the attention-map path)."""

    size_divisor = 1

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.conv(x), [torch.full_like(x, 0.5)]


def test_metatensor_in_and_out_and_attention_maps_zero_outside_the_box():
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    image = MetaTensor(organs(), affine=affine)
    look = LookFirstInferer(wrapped(), margin=4)
    logits, alpha = look(image, GatedBandNet(), attention_maps=True)
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
