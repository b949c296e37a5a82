"""2-D colour outputs: overlay preview and palette label PNG on tiny arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_attn.io.label_colours import PALETTE, label_colour, label_colours
from monai_attn.io.preview import label_overlay_rgb, save_label_overlay_png, save_palette_label_png

LABEL = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)


def test_palette_colours_are_distinct_and_background_black() -> None:
    assert len(set(PALETTE)) == len(PALETTE)
    assert label_colour(0) == (0, 0, 0) and label_colour(1) == PALETTE[0] and label_colour(11) == PALETTE[0]
    assert label_colours([1, 2], {2: (1, 2, 3)}) == {1: PALETTE[0], 2: (1, 2, 3)}
    with pytest.raises(ValueError, match="0-255"):
        label_colours([1], {1: (0, 0, 300)})


def test_overlay_blends_label_colours_into_a_grey_image(tmp_path: Path) -> None:
    grey = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    rgb = label_overlay_rgb(grey, LABEL, alpha=0.5)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], [10, 10, 10])  # background unchanged
    np.testing.assert_array_equal(rgb[0, 1], np.rint(0.5 * 20 + 0.5 * np.array(label_colour(1))))
    np.testing.assert_array_equal(rgb[1, 0], np.rint(0.5 * 40 + 0.5 * np.array(label_colour(2))))
    path = save_label_overlay_png(grey, LABEL, tmp_path / "p" / "overlay.png", label_colours={2: (0, 0, 255)}, alpha=1.0)
    back = np.asarray(Image.open(path))
    assert back.shape == (2, 3, 3)
    np.testing.assert_array_equal(back[1, 1], [0, 0, 255])
    np.testing.assert_array_equal(back[0, 2], label_colour(1))
    assert [p.name for p in path.parent.iterdir()] == ["overlay.png"]  # no temporary left


def test_overlay_takes_rgb_and_float_and_monai_tensors() -> None:
    image = np.zeros((2, 3, 3), np.float32)
    image[1, 2] = 1.0
    rgb = label_overlay_rgb(image, LABEL, alpha=0.0)
    np.testing.assert_array_equal(rgb[1, 2], [255, 255, 255])
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])
    # MONAI's channel-first (C, W, H) layout gives the same picture
    chw = torch.from_numpy(np.asarray(image).transpose(2, 1, 0).copy())
    label = torch.from_numpy(LABEL.T[None].copy())
    np.testing.assert_array_equal(label_overlay_rgb(chw, label, alpha=0.3), label_overlay_rgb(image, LABEL, alpha=0.3))
    with pytest.raises(ValueError, match="does not match"):
        label_overlay_rgb(np.zeros((3, 3)), LABEL)


def test_palette_png_keeps_label_values_and_shows_colours(tmp_path: Path) -> None:
    path = save_palette_label_png(LABEL, tmp_path / "labels.png")
    image = Image.open(path)
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), LABEL)  # values stay 0..2
    shown = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(shown[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(shown[0, 1], label_colour(1))
    np.testing.assert_array_equal(shown[1, 0], label_colour(2))
    with pytest.raises(ValueError, match="0..255"):
        save_palette_label_png(np.array([[0, 300]]), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_monai_reads_the_palette_png_as_labels(tmp_path: Path) -> None:
    from monai.transforms import LoadImage

    path = save_palette_label_png(LABEL, tmp_path / "labels.png")
    loaded = LoadImage(image_only=True)(str(path))
    np.testing.assert_array_equal(np.asarray(loaded).T, LABEL)  # PILReader gives (W, H)


def test_the_project_reader_reads_palette_and_binary_pngs_as_label_values(tmp_path: Path) -> None:
    from monai_attn.io import MedicalImageReader

    palette = save_palette_label_png(LABEL, tmp_path / "labels.png")
    binary = tmp_path / "binary.png"
    Image.fromarray(LABEL > 0).convert("1").save(binary)
    reader = MedicalImageReader(expect="2d", label_map=True)
    for path, expected in ((palette, LABEL), (binary, (LABEL > 0).astype(np.uint8))):
        array, _ = reader.get_data(reader.read(path))
        np.testing.assert_array_equal(np.asarray(array).T, expected)
    # as an image (not a label map) the palette gives the grey levels of its colours
    array, _ = MedicalImageReader(expect="2d").get_data(MedicalImageReader(expect="2d").read(palette))
    assert set(np.unique(array)) != set(np.unique(LABEL))
