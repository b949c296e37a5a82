"""DICOM SEG read by the field's readers: MONAI's LoadImage and highdicom; viewer fields present."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from monai_attn import __version__
from monai_attn.inference import resample_to_grid
from monai_attn.io import load_image
from monai_attn.io.dicom_seg import write_dicom_seg
from monai_attn.io.label_colours import label_colour
from test_dicom_seg import write_ct_series

NAMES = {1: "spleen", 2: "kidney", 3: "pancreas"}


@pytest.fixture()
def small_seg(tmp_path: Path) -> tuple[Path, np.ndarray, Path]:
    """A 20x16x6 series and its SEG, with the pancreas absent from four of the six slices."""
    hu = np.full((20, 16, 6), -100.0, np.float32)
    folder = tmp_path / "ct"
    write_ct_series(folder, hu, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), row_dir=(1.0, 0.0, 0.0), col_dir=(0.0, 1.0, 0.0))
    image = load_image(folder)
    labels = np.zeros(image.shape[1:], np.uint8)
    labels[2:8, 3:10, 0:5] = 1
    labels[10:16, 2:7, 1:6] = 2
    labels[12:18, 10:14, 2:4] = 3  # empty on slices 0, 1, 4, 5
    out = write_dicom_seg(labels, image, tmp_path / "seg.dcm", NAMES, algorithm_name="abdomen_ct_attention_unet",
                          algorithm_version="0.3.0")
    return out, labels, folder


def test_monai_load_image_reads_the_seg(small_seg) -> None:
    """``LoadImage()(seg)`` as a user calls it: one channel per segment, on the series' grid."""
    from monai.transforms import LoadImage

    path, labels, folder = small_seg
    data = LoadImage(image_only=True)(str(path))
    assert tuple(data.shape) == (*labels.shape, 3)  # channel-last, segments 1..3 in label order
    reference = load_image(folder)
    for channel, value in enumerate((1, 2, 3)):
        mask = np.asarray(data[..., channel]).astype(np.uint8)
        on_grid = resample_to_grid(mask, np.asarray(data.affine), reference.affine, labels.shape, mode="nearest")
        np.testing.assert_array_equal(on_grid, (labels == value).astype(np.uint8))


def test_highdicom_round_trip_is_voxel_exact(small_seg) -> None:
    path, labels, folder = small_seg
    seg = hd.seg.segread(path)
    assert seg.NumberOfFrames == 3 * labels.shape[2]  # empty frames kept
    volume = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint8)
    assert volume.array.shape == labels.shape[::-1]  # (slice, row, column): no frame dropped
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(volume.affine)
    reference = load_image(folder)
    on_grid = resample_to_grid(np.asarray(volume.array), ras, reference.affine, labels.shape, mode="nearest")
    np.testing.assert_array_equal(on_grid, labels)  # segment numbers 1..3 are labels 1..3 here


def test_viewer_fields(small_seg) -> None:
    path, _, _ = small_seg
    seg = hd.seg.segread(path)
    assert seg.SeriesDescription == "abdomen_ct_attention_unet 0.3.0 segmentation"
    assert str(seg.ContentCreatorName).startswith("monai-attn")
    lab = []
    for item in seg.SegmentSequence:
        value = {"spleen": 1, "kidney": 2, "pancreas": 3}[str(item.SegmentLabel)]
        assert str(item.SegmentLabel) in item.SegmentDescription and "abdomen_ct_attention_unet" in item.SegmentDescription
        colour = hd.color.CIELabColor.from_dicom_value(tuple(item.RecommendedDisplayCIELabValue))
        assert np.abs(np.subtract(colour.to_rgb(), label_colour(value))).max() <= 2
        lab.append(tuple(item.RecommendedDisplayCIELabValue))
    assert len(set(lab)) == 3


def test_colours_from_the_caller(tmp_path: Path, small_seg) -> None:
    _, labels, folder = small_seg
    image = load_image(folder)
    out = write_dicom_seg(labels, image, tmp_path / "own.dcm", NAMES, label_colours={2: (0, 0, 255)})
    seg = hd.seg.segread(out)
    kidney = next(i for i in seg.SegmentSequence if str(i.SegmentLabel) == "kidney")
    rgb = hd.color.CIELabColor.from_dicom_value(tuple(kidney.RecommendedDisplayCIELabValue)).to_rgb()
    assert np.abs(np.subtract(rgb, (0, 0, 255))).max() <= 2
    assert seg.SeriesDescription == f"monai-attn GridAttentionUNet {__version__} segmentation"
