"""Segmenter: sliding window vs MONAI, empty-window skipping, precision, TTA, geometry, outputs, models."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import SpatialResample
from scipy import ndimage

from monai_attn.errors import InputError
from monai_attn.inference import (
    LogitsToLabelsd,
    OrganRule,
    SegmentationInferer,
    Segmenter,
    postprocess_labels,
    resample_to_grid,
)
from monai_attn.inference.inferer import WindowPredictor
from monai_attn.bundle.configs import bundle_parser
from monai_attn.inference.models import is_torchscript
from monai_attn.inference.stages import REQUESTED
from monai_attn.io import load_image
from monai_attn.networks import GridAttentionUNet
from monai_attn.bundle.lookup import resolve_bundle

HU_WINDOW = (-175.0, 250.0)
#: HU of the phantom's objects and the band of normalised intensity ThresholdNet gives each label.
OBJECT_HU = {1: 60.0, 2: 150.0, 3: 400.0}
BANDS = (0.5, 0.7, 0.9)  # label k where the normalised intensity is above BANDS[k-1]


class ThresholdNet(torch.nn.Module):
    """A 1x1x1 convolution whose argmax is the intensity band: labels we can predict exactly.

    Logits are lines a_k * x + b_k with increasing slopes, so label k wins on
    [BANDS[k-1], BANDS[k]). Geometry errors (a flipped or shifted axis) show up as Dice loss.
    """

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = 4
        self.conv = torch.nn.Conv3d(1, 4, kernel_size=1)
        slopes = torch.tensor([0.0, 10.0, 20.0, 30.0])
        biases = torch.zeros(4)
        for k, threshold in enumerate(BANDS, start=1):
            biases[k] = biases[k - 1] - 10.0 * threshold
        with torch.no_grad():
            self.conv.weight.copy_(slopes.view(4, 1, 1, 1, 1))
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


def expected_labels(hu: np.ndarray) -> np.ndarray:
    """The labels ThresholdNet gives on the input grid itself."""
    x = np.clip((hu - HU_WINDOW[0]) / (HU_WINDOW[1] - HU_WINDOW[0]), 0, 1)
    return np.searchsorted(np.asarray(BANDS), x, side="right").astype(np.uint8)


def phantom_hu(shape=(64, 56, 24), seed: int = 0) -> np.ndarray:
    """An elliptic body (0 HU) in air (-1000 HU) holding three ellipsoids of OBJECT_HU."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    hu[grid[0] ** 2 / 0.8 + grid[1] ** 2 / 0.6 < 1] = 0.0
    centres = {1: (-0.35, 0.2, 0.0), 2: (0.3, 0.25, 0.1), 3: (0.0, -0.3, -0.1)}
    for label, (cx, cy, cz) in centres.items():
        inside = ((grid[0] - cx) / 0.22) ** 2 + ((grid[1] - cy) / 0.2) ** 2 + ((grid[2] - cz) / 0.6) ** 2 < 1
        hu[inside] = OBJECT_HU[label]
    return hu + rng.normal(0, 3, shape).astype(np.float32) * (hu > -1000)


def oblique_affine(angle: float = 0.0) -> np.ndarray:
    """A non-identity direction: x flipped, axes permuted (x<->y), anisotropic spacing, rotated."""
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.array([[0, -0.9, 0], [1.1, 0, 0], [0, 0, 2.5]])
    affine[:3, 3] = [40.0, -25.0, 10.0]
    return affine


def write_nifti(path, hu: np.ndarray, affine: np.ndarray):
    nib.save(nib.Nifti1Image(hu.astype(np.float32), affine), str(path))
    return path


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def ct_segmenter(network: torch.nn.Module, **overrides) -> Segmenter:
    """The CT bundle's preprocessing, inferer and postprocessing around ``network``; overrides are config ids."""
    options = {"precision": "fp32", "device": "cpu", **overrides}
    return Segmenter.from_parser(bundle_parser(resolve_bundle("ct"), options), network)


def threshold_segmenter(**overrides) -> Segmenter:
    options = dict(spacing_mm=[1.5, 1.5, 2.0], roi_size=[32, 32, 32], postprocess=False)
    return ct_segmenter(ThresholdNet(), **{**options, **overrides})


def tiny_unet(seed: int = 0) -> GridAttentionUNet:
    torch.manual_seed(seed)
    return GridAttentionUNet(3, 1, 4, channels=(4, 8, 16)).eval()


# --- resampling between grids -------------------------------------------------------------


def _nearest_by_world(src: np.ndarray, src_affine, dst_affine, dst_shape) -> np.ndarray:
    """Independent nearest-neighbour lookup through world coordinates, voxel by voxel."""
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in dst_shape], indexing="ij"), -1).reshape(-1, 3)
    world = idx @ dst_affine[:3, :3].T + dst_affine[:3, 3]
    src_idx = np.floor((world - src_affine[:3, 3]) @ np.linalg.inv(src_affine[:3, :3]).T + 0.5 + 1e-9).astype(int)
    inside = np.all((src_idx >= 0) & (src_idx < np.array(src.shape)), axis=1)
    out = np.zeros(len(idx), src.dtype)
    out[inside] = src[tuple(src_idx[inside].T)]
    return out.reshape(dst_shape)


def test_resample_nearest_matches_world_lookup_for_permuted_flipped_grids():
    rng = np.random.default_rng(1)
    src = rng.integers(0, 4, (11, 9, 7)).astype(np.uint8)
    src_affine = np.diag([1.5, 1.5, 2.0, 1.0])
    src_affine[:3, 3] = [3.0, -2.0, 5.0]
    dst_affine = np.array([[0, -0.7, 0, 14.0], [0.9, 0, 0, -1.0], [0, 0, 2.6, 4.0], [0, 0, 0, 1]])
    dst_shape = (10, 17, 6)
    out = resample_to_grid(src, src_affine, dst_affine, dst_shape, mode="nearest")
    assert out.dtype == np.uint8 and out.shape == dst_shape
    np.testing.assert_array_equal(out, _nearest_by_world(src, src_affine, dst_affine, dst_shape))


def test_resample_takes_big_endian_and_flipped_arrays():
    """Label maps as nibabel may return them (big-endian, a flipped view) resample as native ones."""
    rng = np.random.default_rng(4)
    src = rng.integers(0, 300, (11, 9, 7)).astype(np.int16)
    src_affine, dst_affine = np.diag([1.5, 1.5, 2.0, 1.0]), np.diag([0.9, 1.1, 2.6, 1.0])
    expected = resample_to_grid(src, src_affine, dst_affine, (12, 10, 5))
    np.testing.assert_array_equal(resample_to_grid(src.astype(">i2"), src_affine, dst_affine, (12, 10, 5)), expected)
    flipped = src[::-1].copy()[::-1]  # the same values through a view with a negative stride
    np.testing.assert_array_equal(resample_to_grid(flipped, src_affine, dst_affine, (12, 10, 5)), expected)


def test_resample_linear_is_trilinear_interpolation():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(6, 7, 5)).astype(np.float32)
    src_affine = np.diag([2.0, 2.0, 3.0, 1.0])
    dst_affine = np.array([[0, 0, 0.5, 1.0], [-1.0, 0, 0, 10.0], [0, 1.5, 0, 2.0], [0, 0, 0, 1]])
    dst_shape = (9, 6, 14)
    out = resample_to_grid(src, src_affine, dst_affine, dst_shape, mode="linear")
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in dst_shape], indexing="ij"), 0).reshape(3, -1)
    world = dst_affine[:3, :3] @ idx + dst_affine[:3, 3:]
    coords = np.linalg.inv(src_affine[:3, :3]) @ (world - src_affine[:3, 3:])
    inside = np.all((coords >= 0) & (coords <= np.array(src.shape)[:, None] - 1), axis=0)
    expected = ndimage.map_coordinates(src.astype(np.float64), coords, order=1)
    np.testing.assert_allclose(out.reshape(-1)[inside], expected[inside], atol=1e-5)


def test_resample_oblique_grid_uses_dense_resampling():
    src = np.zeros((12, 12, 6), np.uint8)
    src[4:8, 4:8, 2:4] = 2
    src_affine = np.eye(4)
    dst_affine = oblique_affine(angle=0.3)
    dst_affine[:3, 3] = [6.0, 0.0, 0.0]
    out = resample_to_grid(src, src_affine, dst_affine, (8, 8, 3), mode="nearest")
    expected = SpatialResample(mode="nearest")(
        MetaTensor(torch.from_numpy(src.astype(np.float32))[None], affine=torch.from_numpy(src_affine)),
        dst_affine=torch.from_numpy(dst_affine),
        spatial_size=(8, 8, 3),
    )[0].numpy()
    assert out.dtype == np.uint8 and out.any()
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


# --- sliding window -----------------------------------------------------------------------


def test_sliding_window_equals_monai_when_no_window_is_skipped():
    net = tiny_unet()
    torch.manual_seed(3)
    image = torch.rand(1, 1, 20, 26, 18) + 0.01  # every window holds values above skip_below
    inferer = SegmentationInferer((16, 16, 16), 2, 0.25, precision="fp32", skip_below=0.0)
    ours = inferer(image, net)
    with torch.inference_mode():
        reference = sliding_window_inference(image, (16, 16, 16), 2, net, overlap=0.25, mode="gaussian")
    assert inferer.counts.skipped == 0 and inferer.counts.run == 8
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    assert torch.equal(ours.argmax(1), reference.argmax(1))


def test_windows_at_or_below_skip_below_are_skipped_and_counted_once_per_call():
    net = tiny_unet()
    image = torch.zeros(1, 1, 32, 16, 16)
    image[..., 20:, :, :] = 0.5  # only the second of two windows along axis 0 holds values above 0
    inferer = SegmentationInferer((16, 16, 16), 1, 0.0, precision="fp32", skip_below=0.0)
    logits = inferer(image, net)
    assert (inferer.counts.run, inferer.counts.skipped) == (1, 1)
    assert (logits[0, :, :16].argmax(0) == 0).all()  # skipped windows are background
    inferer(image, net)
    assert (inferer.counts.run, inferer.counts.skipped) == (1, 1)  # counts restart with each call
    every = SegmentationInferer((16, 16, 16), 1, 0.0, precision="fp32", skip_below=None)
    every(image, net)
    assert (every.counts.run, every.counts.skipped) == (2, 0)


class ClaimsCuda(torch.Tensor):
    """A CPU tensor that says it is on CUDA, so MONAI's adaptive inferer tries GPU stitching first."""

    @property
    def is_cuda(self):
        return True


def test_windows_run_before_a_gpu_out_of_memory_are_counted_once(monkeypatch):
    from monai.inferers import SlidingWindowInferer

    calls = []
    original = SlidingWindowInferer.__call__

    def stitching_runs_out_of_memory_on_the_gpu(self, inputs, network, *args, **kwargs):
        calls.append(kwargs.get("device"))
        if len(calls) == 1:
            network(torch.as_tensor(inputs)[:, :, :16, :16, :16])  # one window ran, then the output did not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(self, torch.as_tensor(inputs), network, *args, **kwargs)

    monkeypatch.setattr(SlidingWindowInferer, "__call__", stitching_runs_out_of_memory_on_the_gpu)
    inferer = SegmentationInferer((16, 16, 16), 1, 0.0, precision="fp32")
    image = (torch.rand(1, 1, 32, 16, 16) + 0.1).as_subclass(ClaimsCuda)
    logits = inferer(image, tiny_unet())
    assert len(calls) == 2 and str(calls[1]) == "cpu"  # MONAI stitched on the CPU the second time
    assert logits.shape == (1, 4, 32, 16, 16)
    assert inferer.counts.run == 2  # the two windows of the pass that finished


def test_skipped_windows_do_not_change_labels_inside_the_body(tmp_path):
    hu = np.full((96, 40, 20), -1000.0, np.float32)
    hu[60:92, 6:34, 4:16] = phantom_hu((32, 28, 12))  # the body fills one end of a long scan
    image = load_image(write_nifti(tmp_path / "air.nii.gz", hu, np.diag([1.5, 1.5, 2.0, 1.0])))
    net = tiny_unet(seed=5)
    # a margin larger than the scan keeps the air around the body in the network's input
    options = dict(spacing_mm=None, roi_size=[16, 16, 16], body_margin_mm=1000.0, postprocess=False)
    skipping = ct_segmenter(net, skip_empty_windows=True, **options).segment(image)
    running = ct_segmenter(net, skip_empty_windows=False, **options).segment(image)
    assert skipping.windows_skipped > 0 and running.windows_skipped == 0
    assert skipping.windows_run + skipping.windows_skipped == running.windows_run
    inside = hu > -500
    np.testing.assert_array_equal(skipping.labels[inside], running.labels[inside])


def test_mirror_tta_averages_the_flipped_predictions():
    net = tiny_unet(seed=7)
    x = torch.rand(1, 1, 16, 16, 16)
    predictor = WindowPredictor(net, num_classes=4, mirror_axes=(0, 1, 2))
    with torch.inference_mode():
        ours = predictor(x)
        expected = torch.zeros_like(ours)
        for n in range(4):
            for axes in itertools.combinations((2, 3, 4), n):
                expected += torch.flip(net(torch.flip(x, axes)), axes) if axes else net(x)
    torch.testing.assert_close(ours, expected / 8, atol=1e-5, rtol=1e-4)
    # the inferer's tta option is the same mirroring, window by window
    tta = SegmentationInferer((16, 16, 16), 1, 0.0, precision="fp32", tta=True)(x, net)
    torch.testing.assert_close(tta, expected / 8, atol=1e-4, rtol=1e-3)


def test_bf16_logits_and_labels_agree_with_fp32():
    net = tiny_unet(seed=11)
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.inference_mode():
        full = WindowPredictor(net, num_classes=4)(x)
        half = WindowPredictor(net, num_classes=4, autocast_dtype=torch.bfloat16)(x)
    assert half.dtype == torch.float32 and not torch.equal(full, half)  # bf16 really ran
    scale, error = full.abs().max(), (half - full).abs().max()
    assert error < 0.03 * scale  # bf16 keeps 8 bits of mantissa; fp32 accumulation in convs
    assert (full.argmax(1) == half.argmax(1)).float().mean() > 0.97  # a random net has many near-ties
    top2 = full.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * error  # voxels whose label bf16 cannot flip
    assert torch.equal(full.argmax(1)[clear], half.argmax(1)[clear])
    # through the inferer: "bf16" precision gives the same labels where they are clear
    inferred = SegmentationInferer((32, 32, 32), 2, 0.0, precision="bf16")(x[:1], net)
    assert torch.equal(inferred.argmax(1)[clear[:1]], full[:1].argmax(1)[clear[:1]])


# --- the whole path: geometry -------------------------------------------------------------


def test_an_array_with_its_affine_gives_the_labels_of_the_file(tmp_path):
    """segment() takes a path, a MetaTensor or a (C, *S) array with its affine: same labels, same grid."""
    hu = phantom_hu()
    affine = oblique_affine(0.0)
    segmenter = threshold_segmenter()
    from_file = segmenter.segment(write_nifti(tmp_path / "case.nii.gz", hu, affine))
    from_array = segmenter.segment(hu[None], affine=affine)
    np.testing.assert_array_equal(from_array.labels, from_file.labels)
    np.testing.assert_allclose(np.asarray(from_array.image.affine), affine)
    assert set(from_array.timings) == {"preprocess", "network", "postprocess", "total"}
    assert from_array.voxels_computed >= from_array.voxels_needed > 0
    assert len(from_array.window) == 3 and np.prod(from_array.window) <= 32 ** 3  # the window used, reported
    assert from_array.timings["total"] >= from_array.timings["network"] > 0


@pytest.mark.parametrize("angle", [0.0, 0.35], ids=["permuted-flipped", "oblique"])
def test_labels_land_on_the_input_grid(tmp_path, angle):
    hu = phantom_hu()
    affine = oblique_affine(angle)
    path = write_nifti(tmp_path / "case.nii.gz", hu, affine)
    result = threshold_segmenter().segment(path)
    assert result.labels.shape == hu.shape and result.labels.dtype == np.uint8
    expected = expected_labels(hu)
    # Resampling blurs object borders into other bands; away from borders labels are exact,
    # which a flipped, permuted or shifted axis would break.
    near_border = ndimage.maximum_filter(expected, size=5) != ndimage.minimum_filter(expected, size=5)
    np.testing.assert_array_equal(result.labels[~near_border], expected[~near_border])
    for label in (1, 2, 3):
        assert dice(result.labels == label, expected == label) > 0.6, label
    out = tmp_path / "out" / "case.nii.gz"
    threshold_segmenter().segment_to_file(path, out)
    written = nib.load(str(out))
    assert written.shape == hu.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)


def test_without_resampling_labels_are_exact(tmp_path):
    hu = phantom_hu()
    result = threshold_segmenter(spacing_mm=None).segment(write_nifti(tmp_path / "c.nii.gz", hu, oblique_affine()))
    np.testing.assert_array_equal(result.labels, expected_labels(hu))


def test_scan_without_body_gives_empty_labels(tmp_path):
    hu = np.full((20, 20, 8), -1000.0, np.float32)
    result = threshold_segmenter().segment(write_nifti(tmp_path / "air.nii.gz", hu, np.eye(4)))
    assert result.labels.shape == hu.shape and not result.labels.any() and result.windows_run == 0


# --- post-processing ----------------------------------------------------------------------


def test_postprocess_keeps_largest_components_and_fills_holes():
    labels = np.zeros((30, 30, 10), np.uint8)
    labels[2:12, 2:12, 2:8] = 1  # spleen
    labels[20:22, 20:22, 2:4] = 1  # a spurious spleen island
    labels[5:7, 5:7, 4:6] = 0  # a hole in the spleen
    labels[15:19, 2:8, 2:8] = 2  # left kidney
    labels[15:19, 22:28, 2:8] = 2  # right kidney
    labels[26:27, 12:13, 2:3] = 2  # a third, tiny kidney island
    labels[8:10, 8:10, 4:6] = 3  # pancreas voxels inside the spleen stay pancreas
    out = postprocess_labels(labels.copy(), {1: OrganRule(1), 2: OrganRule(2), 3: OrganRule(1)})
    assert not out[20:22, 20:22, 2:4].any() and not out[26, 12, 2]
    assert (out[5:7, 5:7, 4:6] == 1).all()
    assert (out[15:19, 2:8, 2:8] == 2).all() and (out[15:19, 22:28, 2:8] == 2).all()
    assert (out[8:10, 8:10, 4:6] == 3).all()
    untouched = postprocess_labels(labels.copy(), {})
    np.testing.assert_array_equal(untouched, labels)


def test_min_fraction_keeps_every_large_piece_of_a_split_organ():
    labels = np.zeros((30, 30, 10), np.uint8)
    labels[2:12, 2:12, 2:8] = 3  # 600 voxels
    labels[16:26, 2:8, 2:8] = 3  # 360 voxels: the other half of a pancreas split in two
    labels[20:23, 20:23, 2:4] = 3  # 18 voxels: 3% of the largest, an island
    pieces = postprocess_labels(labels.copy(), {3: OrganRule(keep_components=None, min_fraction=0.2)})
    assert (pieces == 3).sum() == 600 + 360
    largest = postprocess_labels(labels.copy(), {3: OrganRule(keep_components=1, min_fraction=0.2)})
    assert (largest == 3).sum() == 600
    everything = postprocess_labels(labels.copy(), {3: OrganRule(keep_components=None, min_fraction=0.0)})
    np.testing.assert_array_equal(everything, labels)


def test_paired_rule_keeps_one_component_per_side_and_drops_midline_crossers():
    labels = np.zeros((40, 30, 10), np.uint8)
    labels[4:12, 10:18, 2:8] = 2  # left kidney (axis 0 below the midline at 19.5)
    labels[28:36, 10:18, 2:8] = 2  # right kidney
    labels[12:30, 20:29, 2:9] = 2  # a bigger blob across the midline (the heart)
    labels[2:5, 2:5, 2:4] = 2  # a small island on the left
    out = postprocess_labels(labels.copy(), {2: OrganRule(keep_components=1, paired=True)})
    assert (out[4:12, 10:18, 2:8] == 2).all() and (out[28:36, 10:18, 2:8] == 2).all()
    assert (out == 2).sum() == 2 * 8 * 8 * 6
    # the largest-two rule keeps the heart: the reason for the paired rule
    largest = postprocess_labels(labels.copy(), {2: OrganRule(keep_components=2)})
    assert (largest[12:30, 20:29, 2:9] == 2).all()
    # a midline moved past the right kidney: no kidney crosses it, the left side keeps one
    shifted = postprocess_labels(labels.copy(), {2: OrganRule(keep_components=1, paired=True)}, midline=37.5)
    assert (shifted == 2).sum() == 18 * 9 * 7


def test_segmenter_drops_a_kidney_false_positive_that_crosses_the_body_midline(tmp_path):
    """End to end on a permuted, flipped grid: left-right is the array's axis 1 here."""
    shape = (64, 56, 24)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    hu[grid[0] ** 2 / 0.8 + grid[1] ** 2 / 0.8 < 1] = 0.0
    kidneys = np.zeros(shape, bool)
    for side in (-0.5, 0.5):
        kidneys |= ((grid[0] + 0.3) / 0.2) ** 2 + ((grid[1] - side) / 0.15) ** 2 + (grid[2] / 0.6) ** 2 < 1
    heart = ((grid[0] - 0.35) / 0.3) ** 2 + ((grid[1] - 0.05) / 0.35) ** 2 + (grid[2] / 0.8) ** 2 < 1
    hu[kidneys | heart] = OBJECT_HU[2]
    path = write_nifti(tmp_path / "case.nii.gz", hu, oblique_affine())
    options = dict(spacing_mm=[1.5, 1.5, 2.0], roi_size=[32, 32, 32])
    labels = ct_segmenter(ThresholdNet(), **options).segment(path).labels
    raw = ct_segmenter(ThresholdNet(), postprocess=False, **options).segment(path).labels
    assert (raw[heart] == 2).mean() > 0.7 and (raw[kidneys] == 2).mean() > 0.7  # edges blend to label 1
    assert not (labels[heart] == 2).any()
    away = ~ndimage.binary_dilation(heart, iterations=2)  # edge voxels may blend into the body
    np.testing.assert_array_equal((labels == 2)[away], (raw == 2)[away])


# --- optional outputs ---------------------------------------------------------------------


def test_probabilities_attention_maps_and_statistics(tmp_path):
    hu = phantom_hu()
    affine = oblique_affine()
    path = write_nifti(tmp_path / "case.nii.gz", hu, affine)
    segmenter = ct_segmenter(tiny_unet(), roi_size=[32, 32, 32], postprocess=False)
    result = segmenter.segment(path, probabilities=True, attention_maps=True)
    assert result.probabilities.shape == (*hu.shape, 4) and result.probabilities.dtype == np.float16
    np.testing.assert_allclose(result.probabilities.astype(np.float32).sum(-1), 1.0, atol=0.02)
    assert len(result.attention_maps) == 1  # channels (4, 8, 16): one gated level
    alpha = result.attention_maps[0]
    assert alpha.shape == hu.shape and 0 <= alpha.min() and alpha.max() <= 1 and alpha.max() > 0

    stats = threshold_segmenter().segment(path).statistics()
    labels = threshold_segmenter().segment(path).labels
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000
    for label, name in {1: "spleen", 2: "kidney", 3: "pancreas"}.items():
        assert stats[name]["voxels"] == (labels == label).sum()
        assert stats[name]["volume_ml"] == pytest.approx((labels == label).sum() * voxel_ml, rel=1e-3)
        assert stats[name]["mean_hu"] == pytest.approx(hu[labels == label].mean(), abs=0.01)

    out = tmp_path / "out" / "case.nii.gz"
    segmenter.segment_to_file(path, out, save_probabilities=True, statistics=True, attention_maps=True)
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == [
        "case.nii.gz",
        "case_attention_gate1.nii.gz",
        "case_probabilities.nii.gz",
        "case_qc.json",
        "case_statistics.json",
    ]
    probs = nib.load(str(out.parent / "case_probabilities.nii.gz"))
    assert probs.shape == (*hu.shape, 4)
    np.testing.assert_allclose(probs.affine, affine, atol=1e-5)
    np.testing.assert_allclose(probs.get_fdata().sum(-1), 1.0, atol=0.02)
    assert json.loads((out.parent / "case_statistics.json").read_text())["spleen"]["label"] == 1


def test_same_input_gives_identical_output_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # the record's creation time, fixed
    path = write_nifti(tmp_path / "case.nii.gz", phantom_hu(), oblique_affine())
    segmenter = ct_segmenter(tiny_unet(), roi_size=[32, 32, 32], precision="auto")
    first, second = tmp_path / "a" / "case.nii.gz", tmp_path / "b" / "case.nii.gz"
    segmenter.segment_to_file(path, first)
    segmenter.segment_to_file(path, second)
    assert first.read_bytes() == second.read_bytes()
    from monai_attn.io.provenance import read_provenance

    assert read_provenance(first)["created"] == "2023-11-14T22:13:20+00:00"


# --- building from files and bundles ------------------------------------------------------

NETWORK_DEF = {
    "_target_": "monai_attn.networks.GridAttentionUNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 4,
    "channels": [4, 8, 16],
}


def ct_config(**settings) -> dict:
    """The CT bundle's common.json with its metadata as ``_meta_``: a self-contained ``--config``."""
    folder = resolve_bundle("ct")
    config = json.loads((folder / "configs" / "common.json").read_text())
    config["_meta_"] = json.loads((folder / "configs" / "metadata.json").read_text())
    return {**config, **settings}


def test_from_files_state_dict_torchscript_and_bundle(tmp_path):
    net = tiny_unet(seed=2)
    weights = tmp_path / "model.pt"
    torch.save(net.state_dict(), weights)
    settings = dict(network_def=NETWORK_DEF, roi_size=[32, 32, 32], overlap=0.5)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ct_config(**settings)))
    run = {"device": "cpu", "precision": "fp32"}
    # a config that is not one of the package's own may run code only when trusted
    with pytest.raises(InputError, match=r"\$-expression"):
        Segmenter.from_files(weights, config, overrides=run)
    from_state = Segmenter.from_files(weights, config, overrides=run, trust=True)
    assert tuple(from_state.inferer.roi_size) == (32, 32, 32) and from_state.inferer.overlap == 0.5
    assert from_state.label_names == {1: "spleen", 2: "kidney", 3: "pancreas"}

    scripted = tmp_path / "model.ts"
    torch.jit.save(torch.jit.script(net), str(scripted))
    assert is_torchscript(scripted) and not is_torchscript(weights)
    from_script = Segmenter.from_files(scripted, config, overrides=run, trust=True)

    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    torch.save({"network": net.state_dict()}, bundle / "models" / "model.pt")
    ct = resolve_bundle("ct") / "configs"
    for name in ("parts/inference.json", "metadata.json"):  # a bundle of two configs: common.json + inference.json
        (bundle / "configs" / Path(name).name).write_text((ct / name).read_text())
    common = json.loads((ct / "common.json").read_text())
    (bundle / "configs" / "common.json").write_text(json.dumps({**common, **settings, "spacing_mm": [1.5, 1.5, 2.0]}))
    from_bundle = Segmenter.from_bundle(bundle, overrides=run, trust=True)
    assert from_bundle.preprocessing.transforms[-2].spacing_transform.pixdim.tolist() == [1.5, 1.5, 2.0]

    image = load_image(write_nifti(tmp_path / "c.nii.gz", phantom_hu(), oblique_affine()))
    labels = [s.segment(image).labels for s in (from_state, from_script, from_bundle)]
    reference = ct_segmenter(net, **settings).segment(image).labels
    for other in labels[:2]:
        np.testing.assert_array_equal(other, reference)
    fine = ct_segmenter(net, roi_size=[32, 32, 32], overlap=0.5, spacing_mm=[1.5, 1.5, 2.0]).segment(image).labels
    np.testing.assert_array_equal(labels[2], fine)


def test_state_dict_without_network_def_is_refused(tmp_path):
    weights = tmp_path / "model.pt"
    torch.save(tiny_unet().state_dict(), weights)
    with pytest.raises(FileNotFoundError, match="a state dict needs --config"):
        Segmenter.from_files(weights, None)
    no_network = tmp_path / "no_network.json"
    no_network.write_text(json.dumps({"roi_size": [32, 32, 32]}))
    with pytest.raises(InputError, match="needs a config with 'network_def'"):
        Segmenter.from_files(weights, no_network)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"network_def": {**NETWORK_DEF, "channels": [8, 16, 32]}}))
    with pytest.raises(InputError, match="weights do not fit network_def"):
        Segmenter.from_files(weights, config)


def test_torchscript_without_an_embedded_config_is_refused(tmp_path):
    from monai.data import save_net_with_metadata

    scripted = tmp_path / "model"
    save_net_with_metadata(torch.jit.script(tiny_unet()), str(scripted), meta_values={"name": "tiny"})
    with pytest.raises(InputError, match="carries no inference config"):
        Segmenter.from_files(tmp_path / "model.ts")


def test_plain_torchscript_without_any_metadata_is_refused(tmp_path):
    scripted = tmp_path / "model.ts"
    torch.jit.save(torch.jit.script(tiny_unet()), str(scripted))
    with pytest.raises(InputError, match="carries no inference config"):
        Segmenter.from_files(scripted)


def test_labels_from_logits_match_argmax():
    torch.manual_seed(0)
    logits = torch.randn(4, 9, 7, 5).half()
    logits[:, 0, 0, 0] = torch.tensor([0.0, 5.0, 5.0, 1.0])  # a tie: the lower class wins
    out = LogitsToLabelsd("pred")({"pred": MetaTensor(logits), REQUESTED: frozenset({"probabilities"})})
    labels = out["pred"][0].numpy()
    assert out["pred"].shape == (1, 9, 7, 5) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, torch.argmax(logits.float(), 0).numpy())
    assert labels[0, 0, 0] == 1
    probs = out["probabilities"].float().numpy()
    np.testing.assert_allclose(probs, torch.softmax(logits.float(), 0).numpy(), atol=1e-3)
    assert "probabilities" not in LogitsToLabelsd("pred")({"pred": MetaTensor(logits)})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"overlap": 1.5}, "--overlap must be in [0, 1)"),
        ({"roi_size": [50, 50, 50]}, "--roi-size 50 50 50 is not divisible by 16 (the network's size divisor); try 48 48 48"),
        ({"sw_batch_size": 0}, "--sw-batch-size must be >= 1, got 0"),
        ({"device": "banana"}, "--device 'banana' is not a device"),
        ({"adaptive_roi": "maybe"}, "adaptive_roi must be true or false, got 'maybe'"),
    ],
)
def test_python_api_refuses_bad_settings_with_the_command_line_messages(overrides, message):
    with pytest.raises(InputError) as err:
        Segmenter.from_bundle("ct", overrides)
    assert str(err.value).startswith(message)


def test_flags_given_as_command_line_strings_are_read_as_booleans():
    """``--fit_roi_to_scan false`` on a bundle command line arrives as the string "false"."""
    off = SegmentationInferer((32, 32, 32), 1, 0.25, divisor=16, tta="false", adaptive_roi="False", fit_roi_to_scan="false")
    assert (off.tta, off.adaptive_roi, off.fit_roi_to_scan) == (False, False, False)
    on = SegmentationInferer((32, 32, 32), 1, 0.25, divisor=16, tta="true", adaptive_roi=True, fit_roi_to_scan="TRUE")
    assert (on.tta, on.adaptive_roi, on.fit_roi_to_scan) == (True, True, True)


def test_windows_are_never_deeper_than_the_scan():
    """A slab thinner than the window: the window takes the slab's depth (padded to the divisor) and
    grows in-plane within the window's voxels, so it computes far fewer voxels than cubes would."""
    shape = (70, 50, 10)
    image = torch.rand(1, 1, *shape) + 0.1
    net = tiny_unet()
    fit = SegmentationInferer((32, 32, 32), 1, 0.25, precision="fp32", divisor=16)
    cube = SegmentationInferer((32, 32, 32), 1, 0.25, precision="fp32", divisor=16, fit_roi_to_scan=False)
    assert fit(image, net).shape == cube(image, net).shape == (1, 4, *shape)
    assert cube.counts.roi_size == (32, 32, 32)
    assert fit.counts.roi_size[2] == 16 and np.prod(fit.counts.roi_size) <= 32 ** 3
    assert fit.counts.voxels_computed <= cube.counts.voxels_computed / 2
    assert fit.window_for((96, 96, 96), torch.device("cpu"), "fp32") == (32, 32, 32)  # thick: unchanged


def test_adaptive_window_tiles_the_volume_and_counts_what_monai_computes():
    """Too big for one window: the window is sized to tile the volume, and MONAI runs exactly the windows counted."""
    from monai_attn.inference.inferer import _windows_along

    shape = (40, 24, 70)
    budget_voxels = 32 * 32 * 48  # room for about a third of the volume in one window
    inferer = SegmentationInferer((16, 16, 16), 1, 0.25, precision="fp32", adaptive_roi=True,
                                  memory_budget_mb=budget_voxels * 4 / 2**20, bytes_per_voxel=4, divisor=16)
    window = inferer.window_for(shape, torch.device("cpu"), "fp32")
    assert np.prod(window) <= budget_voxels and all(w % 16 == 0 for w in window)
    expected = int(np.prod([_windows_along(s, w, 0.25) * w for s, w in zip(shape, window)]))
    # a cube grown uniformly from 16^3 to the budget (32^3) would compute this many voxels:
    cube = int(np.prod([_windows_along(s, 32, 0.25) * 32 for s in shape]))
    assert expected < cube
    logits = inferer(torch.rand(1, 1, *shape) + 0.1, tiny_unet())
    assert logits.shape == (1, 4, *shape)
    assert inferer.counts.roi_size == window
    assert inferer.counts.voxels_computed == expected and inferer.counts.voxels_needed == np.prod(shape)
    whole = SegmentationInferer((16, 16, 16), 1, 0.25, adaptive_roi=True, memory_budget_mb=64, bytes_per_voxel=4,
                                divisor=16)
    assert whole.window_for(shape, torch.device("cpu"), "fp32") == (48, 32, 80)  # the padded volume fits
