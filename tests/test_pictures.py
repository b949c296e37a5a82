"""2-D pictures of every common storage reach the 2-D networks the same way, or are refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_attn.cli import main


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    """One 128 x 128 grey picture saved as 8-bit TIFF, 16-bit PNG, RGB PNG, palette PNG, JPEG."""
    folder = tmp_path_factory.mktemp("pictures")
    yy, xx = np.mgrid[:128, :128]
    grey = (127 + 100 * np.sin(xx / 6.0) * np.cos(yy / 9.0)).astype(np.uint8)
    Image.fromarray(grey).save(folder / "grey8.tif")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "grey16.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(folder / "rgb.png")
    Image.fromarray(grey).quantize(256).save(folder / "palette.png")
    Image.fromarray(grey).save(folder / "grey.jpg", quality=95)
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], axis=-1), "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).convert("CMYK").save(folder / "cmyk.tif")
    Image.fromarray(grey[:8, :8]).save(folder / "tiny.png")
    Image.fromarray(grey).save(folder / "pages.tif", save_all=True, append_images=[Image.fromarray(grey)])
    return folder


def segment(bundle: str, picture, out, capsys) -> tuple[int, str, np.ndarray | None]:
    code = main(["segment", "--bundle", bundle, "-i", str(picture), "-o", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    return code, err, np.asarray(Image.open(out)) if out.exists() else None


def test_em_section_as_16_bit_png_8_bit_tiff_and_rgb_gives_the_same_labels(section, tmp_path, capsys):
    results = {}
    for name in ("grey8.tif", "grey16.png", "rgb.png", "rgba.png"):
        code, err, labels = segment("cells", section / name, tmp_path / f"{name}.png", capsys)
        assert code == 0, err
        results[name] = labels
    assert results["grey8.tif"].any()
    np.testing.assert_array_equal(results["grey16.png"], results["grey8.tif"])
    np.testing.assert_array_equal(results["rgb.png"], results["grey8.tif"])
    np.testing.assert_array_equal(results["rgba.png"], results["grey8.tif"])


@pytest.mark.parametrize("name", ["grey.jpg", "palette.png", "grey16.png", "rgba.png", "cmyk.tif"])
def test_grey_pictures_reach_the_rgb_retina_network(section, tmp_path, capsys, name):
    code, err, labels = segment("retina", section / name, tmp_path / "out.png", capsys)
    assert code == 0, err
    assert labels.shape[:2] == (128, 128)


@pytest.mark.parametrize("bundle, name, message", [
    ("cells", "tiny.png", "picture is 8 x 8 pixels; this model needs at least 32 x 32"),
    ("retina", "tiny.png", "picture is 8 x 8 pixels; this model needs at least 64 x 64"),
    ("cells", "pages.tif", "multi-page image (2 pages); expected one 2-D image per file"),
])
def test_pictures_the_networks_cannot_take_are_refused_in_one_line(section, tmp_path, capsys, bundle, name, message):
    out = tmp_path / "out.png"
    code, err, _ = segment(bundle, section / name, out, capsys)
    assert code != 0 and not out.exists()
    assert f"error: {section / name}: {message}" in err and "Traceback" not in err


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_and_written_back_the_same_way(section, tmp_path, capsys, orientation):
    from PIL import ImageOps

    upright = Image.open(section / "grey8.tif").crop((0, 0, 128, 96))  # not square: rotations show
    code, err, labels_upright = segment("cells", _save(upright, tmp_path / "upright.png"), tmp_path / "u.png", capsys)
    assert code == 0, err
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    stored = upright.transpose(undo)  # what a camera stores with this tag
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = tmp_path / "photo.png"
    stored.save(photo, exif=exif)
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(photo))), np.asarray(upright))
    code, err, raw = segment("cells", photo, tmp_path / "labels.png", capsys)
    assert code == 0, err
    written = Image.open(tmp_path / "labels.png")
    assert written.getexif().get(0x0112) == orientation
    assert raw.shape == np.asarray(stored).shape  # stored like the photograph
    np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(written)), labels_upright)


def _save(image, path):
    image.save(path)
    return path
