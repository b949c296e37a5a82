"""Fundus phantoms with acquisition variety (``generate_retina_case(..., variety=True)``, ``synth retina --variety``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from monai_attn.cli import main
from monai_attn.synthetic.retina import generate_retina_case, retina_acquisition

#: sha256 of the (image, disc_cup, vessels) bytes of fixed phantoms, recorded before the variety
#: mode existed: without it, phantoms must stay byte-identical (bundles were trained on them).
FIXED_HASHES = {
    (0, 0, 128): "b4bedb2b0b68768da36b9b339693bc7dee5d3246e8b4c758f2dc2588ab06a980",
    (3, 5, 96): "0cb3a53e5e1c35c0602b7bcdc9e3f07eccea75b06c495c7e1fe6b9c948015182",
    (1000, 1, 64): "8723707d375b4f1d75b3c2f865e38f8c279d5149416fd9050d4dcabe5c51a33a",
}
SIZE = 128
CASES = 24


def _sha256(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def variety_cases():
    """(acquisition, image, disc_cup, vessels) of 24 variety cases of seed 0."""
    return [(retina_acquisition(0, index), *generate_retina_case(0, index, SIZE, variety=True))
            for index in range(CASES)]


def _disc_geometry(disc_cup: np.ndarray) -> tuple[float, float]:
    """(disc width / picture width, vertical cup/disc ratio) of a label map."""
    disc, cup = disc_cup > 0, disc_cup == 2
    disc_columns, disc_rows = np.flatnonzero(disc.any(axis=0)), np.flatnonzero(disc.any(axis=1))
    cup_rows = np.flatnonzero(cup.any(axis=1))
    return (np.ptp(disc_columns) + 1) / disc.shape[1], (np.ptp(cup_rows) + 1) / (np.ptp(disc_rows) + 1)


@pytest.mark.parametrize("key", list(FIXED_HASHES))
def test_without_variety_phantoms_are_unchanged(key):
    seed, index, size = key
    assert _sha256(generate_retina_case(seed, index, size)) == FIXED_HASHES[key]
    assert _sha256(generate_retina_case(seed, index, size, variety=False)) == FIXED_HASHES[key]


def test_variety_cases_are_reproducible_and_differ_from_the_fixed_ones(variety_cases):
    acquisition, image, disc_cup, vessels = variety_cases[5]
    again = generate_retina_case(0, 5, SIZE, variety=True)
    assert all(np.array_equal(a, b) for a, b in zip((image, disc_cup, vessels), again))
    assert retina_acquisition(0, 5) == acquisition
    assert not np.array_equal(image, generate_retina_case(0, 5, SIZE)[0])
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == disc_cup.dtype == vessels.dtype == np.uint8
    assert set(np.unique(disc_cup)) == {0, 1, 2} and set(np.unique(vessels)) == {0, 1}


def test_disc_size_spans_wide_fields_to_30_degree_close_ups_and_disc_crops(variety_cases):
    widths = np.array([_disc_geometry(disc_cup)[0] for _, _, disc_cup, _ in variety_cases])
    assert widths.min() < 0.1 and widths.max() > 0.21  # about 1/12 .. 1/4 of the picture
    thirty = np.array([acquisition.degrees == 30 for acquisition, *_ in variety_cases])
    assert widths[thirty].mean() > widths[~thirty & np.array([a.crop is None for a, *_ in variety_cases])].mean()
    # crops show no or part of the field of view's dark surround; whole photographs always show some
    surround = np.array([(image.max(axis=2) < 25).mean() for _, image, _, _ in variety_cases])
    crops = np.array([acquisition.crop is not None for acquisition, *_ in variety_cases])
    assert 3 <= crops.sum() <= 12
    assert (surround[crops] == 0).any() and (surround[~crops] > 0.03).all()
    assert widths[crops].min() > 0.12


def test_cups_reach_glaucomatous_ratios(variety_cases):
    ratios = np.array([_disc_geometry(disc_cup)[1] for _, _, disc_cup, _ in variety_cases])
    assert ratios.min() < 0.4 and ratios.max() > 0.75
    for _, _, disc_cup, _ in variety_cases:
        assert ndimage.label(disc_cup > 0)[1] == 1  # one disc, the cup inside it


def test_labels_stay_aligned_with_the_picture(variety_cases):
    """The disc is brighter than the fundus around it, vessels darker than the fundus between them,
    in most cases (all 24 today): crops, 30-degree fields, profiles and artefacts move both alike."""
    disc_brighter = vessels_darker = 0
    for _, image, disc_cup, vessels in variety_cases:
        brightness = image.astype(float).sum(axis=2)
        disc = disc_cup > 0
        width = int(np.ptp(np.flatnonzero(disc.any(axis=0)))) + 1
        ring = ndimage.binary_dilation(disc, iterations=max(2, width // 2)) & ~disc
        disc_brighter += brightness[disc].mean() > brightness[ring].mean() + 20
        green = image[..., 1].astype(float)  # vessels show best in green (blood absorbs it)
        fundus = ~ndimage.binary_dilation(disc, iterations=width) & (brightness > 60)
        vessels_darker += green[fundus & (vessels == 1)].mean() < green[fundus & (vessels == 0)].mean()
    assert disc_brighter >= 0.85 * CASES and vessels_darker >= 0.85 * CASES


def test_glare_is_bright_background_away_from_the_disc(variety_cases):
    """Removing the glare from a case's acquisition changes only the picture near the field's edge:
    that region is background in the labels and, in some cases, as bright as the disc."""
    glared = [(index, acquisition) for index, (acquisition, *_) in enumerate(variety_cases) if acquisition.glare]
    assert len(glared) >= 3
    as_bright = 0
    for index, acquisition in glared:
        _, image, disc_cup, vessels = variety_cases[index]
        plain, plain_labels, plain_vessels = generate_retina_case(
            0, index, SIZE, variety=dataclasses.replace(acquisition, glare=0.0))
        assert np.array_equal(disc_cup, plain_labels) and np.array_equal(vessels, plain_vessels)
        brightness = image.astype(float).sum(axis=2)
        glare = brightness - plain.astype(float).sum(axis=2) > 60
        assert glare.sum() > 20 and (disc_cup[glare] == 0).all()
        as_bright += brightness[glare].max() >= np.median(brightness[disc_cup > 0])
    assert as_bright >= 2


def test_cli_variety_flag_is_recorded_in_dataset_json(tmp_path):
    argv = ["synth", "retina", "--cases", "2", "--size", "64"]
    assert main([*argv, "-o", str(tmp_path / "varied"), "--variety"]) == 0
    assert main([*argv, "-o", str(tmp_path / "fixed")]) == 0
    for name, variety in (("varied", True), ("fixed", False)):
        meta = json.loads((tmp_path / name / "dataset.json").read_text())
        assert meta["synthetic"]["variety"] is variety
        image = np.asarray(Image.open(tmp_path / name / meta["training"][1]["image"]))
        np.testing.assert_array_equal(image, generate_retina_case(0, 1, 64, variety=variety)[0])
