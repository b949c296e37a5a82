"""CT rendered from label maps: class tables, Hounsfield values, label alignment, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_attn.cli import main
from monai_attn.synthetic.anatomy_ct import AIR_HU, EXTRA_HU, Anatomy, draw_case_hu, render_anatomy_ct, render_on_grid
from monai_attn.synthetic.contrast import ENHANCED_HU, PHASES, UNENHANCED_HU
from monai_attn.synthetic.label_map_tissues import LabelMapClasses, tissue_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-anatomy"
#: A few TotalSegmentator v2 ids, enough for a small test map.
TS = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 5: "liver", 6: "stomach", 7: "pancreas", 29: "vertebrae_L3",
      52: "aorta", 63: "inferior_vena_cava", 86: "autochthon_left", 87: "autochthon_right"}


def small_map() -> tuple[np.ndarray, np.ndarray]:
    """A 1.5 mm RAS map (80 x 64 x 40) with ellipsoid organs placed roughly as in an abdomen."""
    shape = (80, 64, 40)
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    labels = np.zeros(shape, np.uint8)

    def blob(cx, cy, rx, ry, rz, value, cz=20):
        labels[((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1] = value

    blob(40, 32, 34, 26, 30, 6)        # stomach-like filler under everything else
    blob(20, 36, 12, 12, 14, 5)        # liver (right: low x in RAS)
    blob(62, 30, 8, 12, 10, 1)         # spleen (left)
    blob(26, 18, 5, 7, 9, 2)           # right kidney
    blob(54, 18, 5, 7, 9, 3)           # left kidney
    blob(42, 36, 12, 4, 4, 7)          # pancreas
    blob(40, 14, 6, 6, 30, 29)         # vertebra
    blob(40, 24, 3, 3, 30, 52)         # aorta
    blob(32, 10, 5, 4, 30, 86)
    blob(48, 10, 5, 4, 30, 87)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    return labels, affine


@pytest.fixture(scope="module")
def anatomy() -> Anatomy:
    labels, affine = small_map()
    return Anatomy.from_array("toy", labels, affine, LabelMapClasses.from_names(TS, "test"))


@pytest.mark.parametrize("source", ["totalsegmentator", "amos"])
def test_class_tables_of_both_sources(source):
    path = SHARED / source / "classes.json"
    if not path.exists():
        pytest.skip("../shared/real-anatomy is not on this machine")
    table = LabelMapClasses.from_json(path)
    by_name = {name: cid for cid, name in table.names.items()}
    assert table.target[by_name["spleen"]] == 1
    assert table.target[by_name["kidney_left"]] == table.target[by_name["kidney_right"]] == 2
    assert table.target[by_name["pancreas"]] == 3
    assert sum(v > 0 for v in table.target.values()) == (6 if source == "totalsegmentator" else 4)  # TS: and two cysts
    assert table.tissue[by_name["aorta"]] == "artery"
    assert table.tissue[by_name["liver"]] == "liver" and table.tissue[by_name["duodenum"]] == "small_bowel"
    if source == "totalsegmentator":
        assert len(table.names) == 117
        assert {table.tissue[by_name[n]] for n in ("vertebrae_L1", "rib_left_12", "sacrum", "femur_right")} == {"bone"}
        assert table.tissue[by_name["portal_vein_and_splenic_vein"]] == "portal"
        assert table.tissue[by_name["kidney_cyst_left"]] == "cyst" and table.target[by_name["kidney_cyst_left"]] == 2
    else:
        assert table.tissue[by_name["inferior_vena_cava"]] == "vein"
        assert table.tissue[by_name["prostate_or_uterus"]] == "soft_organ"


def test_an_unknown_class_name_is_refused_with_its_name():
    with pytest.raises(ValueError, match="class 'tumour_core' has no tissue"):
        tissue_of("tumour_core")


@pytest.mark.parametrize("phase", list(PHASES))
def test_hounsfield_values_per_tissue_and_phase(phase):
    draws = [draw_case_hu(np.random.default_rng(seed), phase) for seed in range(40)]
    for name, (low, high) in EXTRA_HU.items():
        values = [d[name] for d in draws]
        if name in ("thyroid", "soft_organ") and phase != "non_contrast":
            assert min(values) >= low
        else:
            assert low <= min(values) and max(values) <= high, name
    for name in ("fat", "visceral_fat"):
        assert all(UNENHANCED_HU[name][0] <= d[name] <= UNENHANCED_HU[name][1] for d in draws)
    artery = np.median([d["artery"] for d in draws])
    if phase == "non_contrast":
        assert 35 <= artery <= 50
    else:  # enhanced: well above blood, highest in the arterial phase
        assert artery > 90
        assert (phase == "arterial") == (artery > 200)
    assert all(d["bone_cortex"] > d["bone_cancellous"] + 300 for d in draws)
    assert set(ENHANCED_HU.get(phase, {})) <= set(draws[0])


def test_rendered_on_its_own_grid_labels_match_the_map(anatomy):
    labels, affine = small_map()
    image, label, out_affine = render_on_grid(anatomy, labels.shape, affine, seed=1, phase="non_contrast")
    assert image.shape == label.shape == labels.shape and image.dtype == np.int16
    np.testing.assert_allclose(out_affine, affine)
    expected = anatomy.lut_target[labels]
    np.testing.assert_array_equal(label, expected)
    # the image is aligned with the labels: each organ's median HU is its tissue's, not its neighbours'
    spleen, kidney = np.median(image[label == 1]), np.median(image[label == 2])
    bone = np.median(image[labels == 29])
    assert 25 < spleen < 70 and 10 < kidney < 60 and bone > 200
    corner = float(np.median(image[:3, :3]))  # air outside body wall and table
    assert AIR_HU[0] - 10 < corner < AIR_HU[1] + 10 or corner == -1024  # or outside the reconstruction circle


def test_same_seed_same_scan_and_label_follows_the_deformation(anatomy):
    first = render_anatomy_ct(anatomy, seed=3, index=2, random_tissues=0.0)
    again = render_anatomy_ct(anatomy, seed=3, index=2, random_tissues=0.0)
    other = render_anatomy_ct(anatomy, seed=3, index=5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert first[0].shape != other[0].shape or not np.array_equal(first[0], other[0])
    image, label, affine = first
    assert image.shape == label.shape and set(np.unique(label)) <= {0, 1, 2, 3}
    assert (label == 1).any() and (label == 2).any()
    # the labels moved with the image: kidney voxels hold kidney values, not the fat around them
    assert np.median(image[label == 2]) > 0 > np.median(image[(label == 0) & (image > -200) & (image < -30)])


def test_random_tissues_change_the_grey_values_only(anatomy):
    plain = render_anatomy_ct(anatomy, seed=3, index=2, random_tissues=0.0)
    random = render_anatomy_ct(anatomy, seed=3, index=2, random_tissues=1.0)
    np.testing.assert_array_equal(plain[1], random[1])  # same patient, pose and grid
    np.testing.assert_allclose(plain[2], random[2])
    spleen = plain[1] == 1
    assert abs(float(np.median(random[0][spleen])) - float(np.median(plain[0][spleen]))) > 1.0
    # the default fraction draws its coin from the case's stream; an explicit default is the same scan
    np.testing.assert_array_equal(render_anatomy_ct(anatomy, seed=3, index=5)[0],
                                  render_anatomy_ct(anatomy, seed=3, index=5, random_tissues=0.15)[0])
    with pytest.raises(ValueError, match="random_tissues 1.5"):
        render_anatomy_ct(anatomy, seed=3, index=2, random_tissues=1.5)


def test_synth_command_writes_an_msd_data_set(tmp_path, anatomy):
    labels, affine = small_map()
    maps = tmp_path / "maps"
    maps.mkdir()
    nib.save(nib.Nifti1Image(labels, affine), str(maps / "toy.nii.gz"))
    (maps / "classes.json").write_text(json.dumps({"source": "test", "classes": {str(k): v for k, v in TS.items()}}))
    out = tmp_path / "data"
    assert main(["synth", "abdomen-ct-anatomy", "-o", str(out), "--anatomy", str(maps), "--cases", "1",
                 "--test-cases", "1", "--random-tissues", "0.5"]) == 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["numTraining"] == 1 and dataset["numTest"] == 1 and dataset["licence"] == "CC-BY-4.0"
    assert dataset["synthetic"]["random_tissues"] == 0.5
    entry = dataset["training"][0]
    image, label = nib.load(str(out / entry["image"])), nib.load(str(out / entry["label"]))
    assert image.shape == label.shape
    np.testing.assert_allclose(image.affine, label.affine)
    assert main(["synth", "abdomen-ct-anatomy", "-o", str(tmp_path / "x"), "--anatomy", str(tmp_path / "none")]) != 0
    assert main(["synth", "abdomen-ct-anatomy", "-o", str(tmp_path / "y"), "--anatomy", str(maps),
                 "--random-tissues", "2"]) != 0
    assert not (tmp_path / "y").exists()


def test_render_transform_gives_a_new_patient_per_call_with_aligned_labels(tmp_path):
    from monai.data import MetaTensor

    from monai_attn.synthetic.anatomy_ct import RandRenderAnatomyCTd

    labels, affine = small_map()
    nib.save(nib.Nifti1Image(labels, affine), str(tmp_path / "toy.nii.gz"))
    (tmp_path / "classes.json").write_text(json.dumps({"classes": {str(k): v for k, v in TS.items()}}))
    render = RandRenderAnatomyCTd(seed=4)
    render.set_random_state(0)
    first, second = render({"anatomy": tmp_path / "toy.nii.gz"}), render({"anatomy": tmp_path / "toy.nii.gz"})
    assert isinstance(first["image"], MetaTensor) and first["image"].shape == first["label"].shape
    assert first["image"].shape[0] == 1 and first["image"].dtype.is_floating_point
    np.testing.assert_allclose(first["image"].affine.numpy(), first["label"].affine.numpy())
    assert first["image"].shape != second["image"].shape or not np.array_equal(first["image"], second["image"])
    render.set_random_state(0)
    np.testing.assert_array_equal(render({"anatomy": tmp_path / "toy.nii.gz"})["image"], first["image"])
