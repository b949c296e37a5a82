"""Offline phantoms: abdominal CT (NIfTI, DICOM series, MSD layout), fundus and EM cells, previews."""

from __future__ import annotations

import importlib.util
import json
import time

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

from monai_attn.cli import main
from monai_attn.io import preview
from monai_attn.synthetic import (
    SpacingRange,
    case_acquisition,
    generate_abdomen_ct_case,
    generate_cells_case,
    generate_retina_case,
    write_abdomen_ct_dataset,
    write_ct_series,
)
from monai_attn.synthetic.abdomen_anatomy import AbdomenAnatomy
from monai_attn.synthetic.abdomen_ct import SLICE_INTERVALS_MM
from monai_attn.synthetic.contrast import (
    ENHANCED_HU,
    ENHANCEMENT_FACTOR,
    PHASES,
    UNENHANCED_HU,
    draw_phase,
    draw_tissue_hu,
)
from monai_attn.io.writers import write_nifti
from monai_attn.synthetic.rng import HELD_OUT_SEED_OFFSET, case_rng

ORGANS = {1: "spleen", 2: "kidney", 3: "pancreas"}
#: A 3 mm grid covering the whole abdomen: organ volumes are measurable but cheap.
ABDOMEN_GRID = ((128, 128, 96), (3.0, 3.0, 3.5))


def voxel_ml(affine: np.ndarray) -> float:
    return float(np.prod(np.linalg.norm(affine[:3, :3], axis=0))) / 1000.0


@pytest.fixture(scope="module")
def abdomen_cases():
    return [generate_abdomen_ct_case(0, index, *ABDOMEN_GRID) for index in range(3)]


# ---------------------------------------------------------------------------------------------
# abdominal CT
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_arrays_and_other_seeds_or_cases_differ():
    image, label, affine = generate_abdomen_ct_case(5, 2, (64, 64, 32))
    again = generate_abdomen_ct_case(5, 2, (64, 64, 32))
    assert image.tobytes() == again[0].tobytes() and label.tobytes() == again[1].tobytes()
    np.testing.assert_array_equal(affine, again[2])
    for other in (generate_abdomen_ct_case(6, 2, (64, 64, 32)), generate_abdomen_ct_case(5, 3, (64, 64, 32))):
        assert not np.array_equal(image, other[0])
    assert image.dtype == np.int16 and label.dtype == np.uint8 and image.shape == label.shape == (64, 64, 32)


def test_every_case_has_all_organs_with_plausible_volumes(abdomen_cases):
    for _, label, affine in abdomen_cases:
        volume = {name: float((label == value).sum()) * voxel_ml(affine) for value, name in ORGANS.items()}
        assert set(np.unique(label)) == {0, 1, 2, 3}
        assert 100 <= volume["spleen"] <= 300, volume
        assert 200 <= volume["kidney"] <= 400, volume
        assert 40 <= volume["pancreas"] <= 120, volume
        kidneys, count = ndimage.label(label == 2)
        assert count >= 2 and np.sort(np.bincount(kidneys.ravel())[1:])[-2] * voxel_ml(affine) > 60  # both kidneys


def test_organ_hu_follow_the_contrast_phase_and_air_and_bone_are_present(abdomen_cases):
    phases = [AbdomenAnatomy(case_rng("abdomen-ct/anatomy", 0, index)).phase for index in range(3)]
    assert phases == ["non_contrast", "arterial", "delayed"]  # the fixture covers unenhanced and enhanced kidneys
    for (image, label, _), phase in zip(abdomen_cases, phases):
        core = {name: image[ndimage.binary_erosion(label == value)].mean() for value, name in ORGANS.items()}
        if phase == "non_contrast":  # kidneys as grey as soft tissue: nothing to key on but shape
            assert 15 <= core["kidney"] <= 50 and 30 <= core["spleen"] <= 60, core
        else:
            assert core["kidney"] >= 90 and core["spleen"] >= 60, core
        assert 15 <= core["pancreas"] <= 160, core
        assert np.mean(image < -950) > 0.1  # air outside the body (the table's foam core is -950..-800)
        assert image.max() > 400  # bone


def test_contrast_phases_follow_published_ranges():
    rng = np.random.default_rng(0)
    drawn = {phase: [draw_tissue_hu(rng, phase) for _ in range(200)] for phase in PHASES}
    for phase, samples in drawn.items():
        for name, (low, high) in UNENHANCED_HU.items():
            values = np.array([s[name] for s in samples])
            enhanced_high = ENHANCED_HU.get(phase, {}).get(name, (low, high))[1]
            top = high + ENHANCEMENT_FACTOR[1] * max(0.0, enhanced_high - (low + high) / 2)
            assert low <= values.min() and values.max() <= top, (phase, name)
    mean = {phase: {k: np.mean([s[k] for s in v]) for k in ("cortex", "medulla", "artery")} for phase, v in drawn.items()}
    assert mean["non_contrast"]["cortex"] < 40 and abs(mean["non_contrast"]["cortex"] - mean["non_contrast"]["medulla"]) < 5
    assert mean["arterial"]["cortex"] - mean["arterial"]["medulla"] > 60  # corticomedullary
    assert abs(mean["portal_venous"]["cortex"] - mean["portal_venous"]["medulla"]) < 20  # nephrographic
    assert mean["arterial"]["artery"] > mean["portal_venous"]["artery"] > mean["delayed"]["artery"] > 80
    counts = {p: 0 for p in PHASES}
    for _ in range(400):
        counts[draw_phase(rng)] += 1
    assert all(abs(counts[p] / 400 - f) < 0.07 for p, f in PHASES.items()), counts
    with pytest.raises(ValueError, match="unknown contrast phase"):
        draw_tissue_hu(rng, "venous")


def test_acquisitions_have_consistent_geometry_and_varied_orientation():
    orientations = set()
    for index in range(16):
        acquisition = case_acquisition(0, index, (256, 256, 128))
        affine = acquisition.grid.affine
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        direction = affine[:3, :3] / spacing
        np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)
        assert np.linalg.det(direction) == pytest.approx(1.0)  # storable as a DICOM series
        assert spacing[0] == pytest.approx(spacing[1]) and 340 / 256 - 1e-3 <= spacing[0] <= 440 / 256 + 1e-3
        assert min(abs(spacing[2] - s) for s in SLICE_INTERVALS_MM) < 1e-9 and 180 <= spacing[2] * 128 <= 420
        orientations.add(acquisition.orientation)
        if acquisition.orientation == "oblique":
            assert np.abs(direction - np.round(direction)).max() > 0.02
    assert {"LPS", "oblique"} <= orientations and len(orientations) >= 3
    fixed = case_acquisition(0, 0, (512, 512, 200), spacing_mm=(0.8, 0.8, 2.5))
    np.testing.assert_allclose(np.linalg.norm(fixed.grid.affine[:3, :3], axis=0), (0.8, 0.8, 2.5))
    assert fixed.orientation == case_acquisition(0, 0).orientation  # geometry draws do not depend on the grid


def test_spacing_can_be_drawn_from_a_range():
    drawn = [case_acquisition(0, index, (512, 512, 200), SpacingRange((0.7, 0.9), (1.5, 5.0))).grid.spacing_mm
             for index in range(8)]
    for sx, sy, sz in drawn:
        assert 0.7 <= sx <= 0.9 and sx == pytest.approx(sy) and 1.5 <= sz <= 5.0
    assert len({round(s[2], 3) for s in drawn}) > 4
    with pytest.raises(ValueError):
        SpacingRange((0.9, 0.7), (1.5, 5.0))


def test_anatomy_is_built_in_millimetres(abdomen_cases):
    """The same case on a twice coarser grid (same field of view) has the same organs in mm."""
    _, fine, fine_affine = abdomen_cases[0]
    _, coarse, coarse_affine = generate_abdomen_ct_case(0, 0, (64, 64, 48), (6.0, 6.0, 7.0))
    for value in ORGANS:
        fine_ml = (fine == value).sum() * voxel_ml(fine_affine)
        coarse_ml = (coarse == value).sum() * voxel_ml(coarse_affine)
        assert coarse_ml == pytest.approx(fine_ml, rel=0.2)
        centres = [affine[:3, :3] @ np.argwhere(lab == value).mean(axis=0) + affine[:3, 3]
                   for lab, affine in ((fine, fine_affine), (coarse, coarse_affine))]
        assert np.linalg.norm(centres[0] - centres[1]) < 6.0


def test_msd_layout_and_dataset_json(tmp_path):
    path = write_abdomen_ct_dataset(tmp_path, 2, seed=1, test_cases=1, size=(32, 32, 16))
    meta = json.loads(path.read_text())
    assert meta["modality"] == {"0": "CT"}
    assert meta["labels"] == {"0": "background", "1": "spleen", "2": "kidney", "3": "pancreas"}
    assert meta["numTraining"] == 2 and meta["tensorImageSize"] == "3D"
    assert meta["training"][1] == {"image": "./imagesTr/abdomen_001.nii.gz", "label": "./labelsTr/abdomen_001.nii.gz"}
    assert meta["test"] == ["./imagesTs/abdomen_002.nii.gz"]
    assert meta["test_labels"] == ["./labelsTs/abdomen_002.nii.gz"]
    for entry in meta["training"]:
        image, label = nib.load(tmp_path / entry["image"]), nib.load(tmp_path / entry["label"])
        assert image.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        assert image.shape == label.shape == (32, 32, 16)
        np.testing.assert_allclose(image.affine, label.affine)
    expected = generate_abdomen_ct_case(1 + HELD_OUT_SEED_OFFSET, 0, (32, 32, 16))
    stored = nib.load(tmp_path / meta["test"][0])
    np.testing.assert_array_equal(np.asanyarray(stored.dataobj), expected[0])  # test case 0 of the held-out seed
    np.testing.assert_allclose(stored.affine, expected[2], atol=1e-4)


def _oblique_index(size) -> int:
    return next(i for i in range(50) if case_acquisition(0, i, size).orientation == "oblique")


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "LAI", "oblique"])
def test_dicom_series_reads_back_with_the_nifti_voxels_and_geometry(tmp_path, orientation):
    size = (40, 36, 10)
    index = next(i for i in range(50) if case_acquisition(0, i, size).orientation == orientation)
    image, _, affine = generate_abdomen_ct_case(0, index, size)
    nifti = write_nifti(tmp_path / "case.nii.gz", image, affine)
    files = write_ct_series(image, affine, tmp_path / "dicom", ["test", str(index)], patient_id="P1")
    assert len(files) == size[2]

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(tmp_path / "dicom"))
    assert len(series) == 1
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "dicom"), series[0]))
    from_dicom, from_nifti = reader.Execute(), sitk.ReadImage(str(nifti))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_dicom), sitk.GetArrayFromImage(from_nifti))
    np.testing.assert_allclose(from_dicom.GetOrigin(), from_nifti.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(from_dicom.GetSpacing(), from_nifti.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(from_dicom.GetDirection(), from_nifti.GetDirection(), atol=1e-4)


def test_dicom_files_are_valid_ct_images_with_deterministic_uids(tmp_path):
    image, _, affine = generate_abdomen_ct_case(0, _oblique_index((24, 20, 6)), (24, 20, 6))
    first = write_ct_series(image, affine, tmp_path / "a", ["test", "seed=0", "case=1"], patient_id="P1")
    second = write_ct_series(image, affine, tmp_path / "b", ["test", "seed=0", "case=1"], patient_id="P1")
    other = write_ct_series(image, affine, tmp_path / "c", ["test", "seed=0", "case=2"], patient_id="P2")
    uids = set()
    for k, (path, twin) in enumerate(zip(first, second)):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT" and ds.InstanceNumber == k + 1
        assert (ds.Rows, ds.Columns) == (20, 24)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(hu, image[:, :, k].T)
        position = (np.diag([-1.0, -1.0, 1.0]) @ (affine[:3, :3] @ [0, 0, k] + affine[:3, 3]))
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], position, atol=1e-3)
        assert pydicom.dcmread(twin).SOPInstanceUID == ds.SOPInstanceUID
        uids.add(ds.SOPInstanceUID)
    assert len(uids) == len(first)
    a, c = pydicom.dcmread(first[0]), pydicom.dcmread(other[0])
    assert a.StudyInstanceUID != c.StudyInstanceUID and a.SeriesInstanceUID != c.SeriesInstanceUID
    assert a.FrameOfReferenceUID != c.FrameOfReferenceUID


@pytest.mark.skipif(importlib.util.find_spec("monai_attn.io.readers") is None, reason="project reader not present")
def test_project_reader_loads_the_dicom_series_like_the_nifti(tmp_path):
    load_image = getattr(importlib.import_module("monai_attn.io"), "load_image", None)
    if load_image is None:
        pytest.skip("monai_attn.io.load_image not present")
    size = (32, 28, 8)
    image, _, affine = generate_abdomen_ct_case(0, _oblique_index(size), size)
    nifti = write_nifti(tmp_path / "case.nii.gz", image, affine)
    write_ct_series(image, affine, tmp_path / "dicom", ["test"], patient_id="P1")
    from_dicom, from_nifti = load_image(tmp_path / "dicom"), load_image(nifti)
    np.testing.assert_array_equal(from_dicom.numpy(), from_nifti.numpy())
    np.testing.assert_allclose(from_dicom.affine.numpy(), from_nifti.affine.numpy(), atol=1e-3)
    np.testing.assert_allclose(from_nifti.affine.numpy(), affine, atol=1e-3)


def test_cli_writes_an_abdomen_ct_dataset(tmp_path):
    assert main(["synth", "abdomen-ct", "-o", str(tmp_path), "--cases", "2", "--size", "64", "64", "32"]) == 0
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["numTraining"] == 2
    image = nib.load(tmp_path / meta["training"][0]["image"])
    assert image.shape == (64, 64, 32)
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), generate_abdomen_ct_case(0, 0, (64, 64, 32))[0])


def test_cli_spacing_range_and_parallel_workers(tmp_path):
    arguments = ["synth", "abdomen-ct", "--cases", "2", "--size", "24", "24", "12", "--spacing", "2", "3", "4", "6"]
    assert main([*arguments, "-o", str(tmp_path / "serial")]) == 0
    assert main([*arguments, "-o", str(tmp_path / "parallel"), "--workers", "2"]) == 0
    meta = json.loads((tmp_path / "serial" / "dataset.json").read_text())
    assert meta["synthetic"]["spacing_mm"] == {"in_plane_mm": [2.0, 3.0], "slice_mm": [4.0, 6.0]}
    for entry in meta["training"]:
        serial, parallel = (nib.load(tmp_path / run / entry["image"]) for run in ("serial", "parallel"))
        sx, sy, sz = serial.header.get_zooms()
        assert 2 <= sx <= 3 and 4 <= sz <= 6
        np.testing.assert_array_equal(np.asanyarray(serial.dataobj), np.asanyarray(parallel.dataobj))


def test_cli_rejects_bad_arguments_with_one_line(tmp_path, capsys):
    assert main(["synth", "abdomen-ct", "-o", str(tmp_path), "--cases", "0"]) == 1
    assert main(["synth", "retina", "-o", str(tmp_path), "--size", "8"]) == 1
    assert main(["synth", "abdomen-ct", "-o", str(tmp_path), "--spacing", "1", "2"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("error: --cases 0") and errors[1].startswith("error: --size 8")
    assert errors[2].startswith("error: --spacing 1.0 2.0: give 3")
    assert not (tmp_path / "dataset.json").exists()


@pytest.mark.slow
def test_default_size_case_is_generated_in_seconds():
    start = time.perf_counter()
    image, label, _ = generate_abdomen_ct_case(0, 0)
    assert time.perf_counter() - start < 30
    assert image.shape == (256, 256, 128) and set(np.unique(label)) == {0, 1, 2, 3}


# ---------------------------------------------------------------------------------------------
# fundus and EM cells
# ---------------------------------------------------------------------------------------------
def test_retina_case_has_disc_cup_and_vessels():
    image, disc_cup, vessels = generate_retina_case(0, 1, 128)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert disc_cup.shape == vessels.shape == (128, 128) and disc_cup.dtype == vessels.dtype == np.uint8
    assert set(np.unique(disc_cup)) == {0, 1, 2} and set(np.unique(vessels)) == {0, 1}
    disc, cup = disc_cup > 0, disc_cup == 2
    field = np.pi * (0.46 * 128) ** 2
    assert 0.08**2 < disc.sum() / field < 0.2**2  # diameter 0.09-0.17 of the field of view
    assert 0.05 < cup.sum() / disc.sum() < 0.6  # cup/disc ratio 0.3-0.7 (by diameter)
    assert ndimage.label(disc)[1] == 1 and ndimage.label(cup)[1] == 1
    brightness = image.astype(float).sum(axis=2)
    fundus = ~disc & (brightness > 60)
    assert brightness[disc & (vessels == 0)].mean() > brightness[fundus & (vessels == 0)].mean() + 60
    assert brightness[fundus & (vessels == 1)].mean() < brightness[fundus & (vessels == 0)].mean()
    assert 0.03 < vessels.mean() < 0.3
    assert np.array_equal(image, generate_retina_case(0, 1, 128)[0])


def test_cells_case_has_dark_membranes_around_cells():
    image, label = generate_cells_case(0, 0, 128)
    assert image.shape == label.shape == (128, 128) and image.dtype == label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1} and 0.05 < label.mean() < 0.45
    assert image[label == 1].mean() < image[label == 0].mean() - 25
    _, cells = ndimage.label(label == 0)
    assert cells >= 4
    assert np.array_equal(image, generate_cells_case(0, 0, 128)[0])


def test_cells_membrane_labels_are_isbi_style_bands_over_thinner_dark_lines():
    """Labels are bands of a few pixels around every profile; the dark line under them is thinner
    and the interiors hold unlabelled dark distractors (organelles, vesicles)."""
    image, label = generate_cells_case(3, 1, 256)
    membrane = label == 1
    skeleton = skeletonize(membrane)
    thickness = 2 * ndimage.distance_transform_edt(membrane)[skeleton] - 1
    assert 3.0 <= np.median(thickness) <= 7.5
    _, profiles = ndimage.label(~membrane)
    assert profiles >= 15  # small axon profiles as well as large ones
    # the darkest pixels of each band sit near its centre line: the visible line is thinner
    band = image[membrane].astype(float)
    centre = ndimage.binary_dilation(skeleton) & membrane
    assert image[centre].mean() < band.mean() - 5
    interior = image[ndimage.binary_erosion(~membrane, iterations=2)].astype(float)
    assert np.percentile(interior, 2) < np.median(band)  # unlabelled membrane-dark structures inside

    assert not np.array_equal(image, generate_cells_case(1, 0, 128)[0])


@pytest.mark.parametrize("task, channels", [("retina", 3), ("cells", 1)])
def test_cli_writes_2d_datasets(tmp_path, task, channels):
    assert main(["synth", task, "-o", str(tmp_path), "--cases", "2", "--test-cases", "1", "--size", "64"]) == 0
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and len(meta["modality"]) == channels and meta["tensorImageSize"] == "2D"
    image = np.asarray(Image.open(tmp_path / meta["training"][0]["image"]))
    label = np.asarray(Image.open(tmp_path / meta["training"][0]["label"]))
    assert image.shape[:2] == label.shape == (64, 64) and (image.ndim == 3) == (channels == 3)
    assert label.max() < len(meta["labels"])
    assert (tmp_path / meta["test"][0]).exists()
    if task == "retina":
        assert set(np.unique(np.asarray(Image.open(tmp_path / meta["training"][1]["vessels"])))) == {0, 1}


# ---------------------------------------------------------------------------------------------
# previews
# ---------------------------------------------------------------------------------------------
def test_preview_png_has_the_expected_size_and_no_leftovers(tmp_path):
    image, label, affine = generate_abdomen_ct_case(0, 0, (48, 48, 24))
    path = preview.save_overlay_png(image, label, tmp_path / "ct.png", affine=affine, label_names=ORGANS)
    assert Image.open(path).size == tuple(int(v * preview.DPI) for v in preview.FIGSIZE_3D)
    rgb, disc_cup, _ = generate_retina_case(0, 0, 64)
    path2d = preview.save_overlay_png(rgb, disc_cup, tmp_path / "fundus.png")
    assert Image.open(path2d).size == tuple(int(v * preview.DPI) for v in preview.FIGSIZE_2D)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.png", "fundus.png"]


def test_preview_accepts_metatensors(tmp_path):
    torch = pytest.importorskip("torch")
    from monai.data import MetaTensor

    image, label, affine = generate_abdomen_ct_case(0, 0, (32, 32, 16))
    volume = MetaTensor(torch.as_tensor(image[None], dtype=torch.float32), affine=torch.as_tensor(affine))
    assert preview.save_overlay_png(volume, MetaTensor(torch.as_tensor(label[None])), tmp_path / "a.png").exists()
    rgb = generate_retina_case(0, 0, 64)[0]
    picture = MetaTensor(torch.as_tensor(rgb.transpose(2, 1, 0).copy()))  # MONAI 2-D layout (C, W, H)
    assert preview.save_overlay_png(picture, None, tmp_path / "b.png").exists()


def test_preview_views_follow_radiological_convention():
    """A marker at the patient's right-anterior-superior corner shows top-left in axial and coronal views."""
    volume = np.zeros((10, 8, 6))
    lps = np.diag([-2.0, -2.0, 3.0, 1.0])  # array axes point Left, Posterior, Superior
    volume[0, 0, 5] = 1  # index 0 on L and P axes: the patient's right and anterior end
    ras, _, spacing, (i, j, k) = preview._reorient(volume, None, lps, None, (0, 0, 5))
    np.testing.assert_allclose(spacing, (2.0, 2.0, 3.0))
    assert ras[i, j, k] == 1
    axial, coronal = preview._display(ras[:, :, k]), preview._display(ras[:, j, :])
    assert axial[0, 0] == 1 and coronal[0, 0] == 1  # right on the viewer's left, anterior/superior at the top
    sagittal = preview._display(ras[i, :, :])
    assert sagittal[0, 0] == 1  # anterior on the left, superior at the top


def test_habitus_arms_table_and_oral_contrast_vary_per_patient():
    anatomies = [AbdomenAnatomy(case_rng("abdomen-ct/anatomy", 0, index)) for index in range(12)]
    with_arms = [index for index, a in enumerate(anatomies) if a.arms]
    assert with_arms and len(with_arms) < 12
    assert 0 < sum(a.oral_contrast_hu is not None for a in anatomies) < 12
    assert max(a.fat_mm for a in anatomies) - min(a.fat_mm for a in anatomies) > 20  # thin to obese
    for index in (with_arms[0], next(i for i in range(12) if i not in with_arms)):
        image, _, affine = generate_abdomen_ct_case(0, index, (96, 96, 6), (6.0, 6.0, 20.0))  # a 576 mm field
        axial = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(image, affine)).dataobj)[:, :, 3]
        pieces, _ = ndimage.label(axial > -500)
        sizes = np.sort(np.bincount(pieces.ravel())[1:])[::-1]
        arms = int(((sizes > 0.03 * sizes[0]) & (sizes < 0.2 * sizes[0])).sum())
        assert arms == (2 if index in with_arms else 0), sizes[:5]
        body_rows = np.flatnonzero((axial > -500).any(axis=0))
        table = axial[:, : body_rows.min() + 3]  # posterior to the back (RAS: low y is posterior)
        assert (table > 100).sum() >= 10  # the table's carbon-fibre shell


def test_2d_preview_outlines_labels_visibly_on_a_red_picture(tmp_path):
    """A fundus preview outlines each label (in its colour, between white lines) instead of tinting
    it, so the disc rim stays visible on a red fundus; the inside keeps the picture's colour."""
    picture = np.zeros((400, 500, 3), np.uint8)
    picture[..., 0] = 200
    label = np.zeros((400, 500), np.uint8)
    label[150:250, 200:300] = 1
    rim = preview.outlines(label, 2)
    assert rim[150, 250] == 1 and rim[151, 250] == 1 and rim[152, 250] == 0 and rim[200, 250] == 0
    pixels = np.asarray(Image.open(preview.save_overlay_png(picture, label, tmp_path / "f.png")).convert("RGB"))
    right = pixels[:, pixels.shape[1] // 2:]
    assert (right == 255).all(axis=-1).sum() > 100  # the white lines around the outline
    centre = right[right.shape[0] * 290 // 560, right.shape[1] // 2]  # inside the labelled square
    assert tuple(centre) == (200, 0, 0)
