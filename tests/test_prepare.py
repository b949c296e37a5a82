"""``monai-attn prepare``: public fundus data sets, in the layouts they ship, into images/ and labels/."""

from __future__ import annotations

import numpy as np
from PIL import Image

from monai_attn.cli import main
from monai_attn.datasets import load_datalist

W, H = 40, 30  # photograph width and height, px


def grey_mask(cup_radius: int = 4, disc_radius: int = 9) -> np.ndarray:
    """A REFUGE-style mask: 255 background, 128 disc rim, 0 cup, centred in a W x H picture."""
    y, x = np.mgrid[:H, :W]
    r = np.hypot(x - W / 2, y - H / 2)
    return np.where(r <= cup_radius, 0, np.where(r <= disc_radius, 128, 255)).astype(np.uint8)


def expected_label() -> np.ndarray:
    mask = grey_mask()
    return np.select([mask == 0, mask == 128], [2, 1], 0).astype(np.uint8)


def photo(path, size=(W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def check_prepared(out, cases: list[str], image_ext: str) -> None:
    assert sorted(p.name for p in (out / "labels").iterdir()) == sorted(f"{c}.png" for c in cases)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(f"{c}{image_ext}" for c in cases)
    for case in cases:
        np.testing.assert_array_equal(np.asarray(Image.open(out / "labels" / f"{case}.png")), expected_label())
    listed = load_datalist(out)  # the folders layout the bundles and evaluate read
    assert sorted(e["image"].rsplit("/", 1)[1] for e in listed["training"]) == sorted(f"{c}{image_ext}" for c in cases)


def test_refuge_layout(tmp_path) -> None:
    src = tmp_path / "REFUGE"
    for folder, name in (("Training400/Glaucoma", "g0001"), ("Training400/Non-Glaucoma", "n0001"),
                         ("REFUGE-Validation400", "V0001")):
        photo(src / folder / f"{name}.jpg")
    for folder, name in (("Annotation-Training400/Disc_Cup_Masks/Glaucoma", "g0001"),
                         ("Annotation-Training400/Disc_Cup_Masks/Non-Glaucoma", "n0001"),
                         ("REFUGE-Validation400-GT/Disc_Cup_Masks", "V0001")):
        (src / folder).mkdir(parents=True)
        Image.fromarray(grey_mask()).save(src / folder / f"{name}.bmp")
    photo(src / "REFUGE-Test400" / "T0001.jpg")  # no reference: not listed
    before = sorted(p.stat().st_mtime_ns for p in src.rglob("*") if p.is_file())
    assert main(["prepare", "refuge", str(src), "-o", str(tmp_path / "out")]) == 0
    check_prepared(tmp_path / "out", ["g0001", "n0001", "V0001"], ".jpg")
    assert sorted(p.stat().st_mtime_ns for p in src.rglob("*") if p.is_file()) == before  # the source is only read
    assert (tmp_path / "out" / "images" / "g0001.jpg").read_bytes() == (src / "Training400/Glaucoma/g0001.jpg").read_bytes()


def test_disc_crop_layout_names_cases_by_domain_and_split(tmp_path) -> None:
    src = tmp_path / "Fundus"
    for domain, split in (("Domain1", "train"), ("Domain3", "test")):
        rois = src / domain / split / "ROIs"
        photo(rois / "image" / "case_7.png")
        (rois / "mask").mkdir(parents=True)
        resampled = grey_mask().astype(float)
        resampled[resampled == 128] = 140  # a resampled mask: grey values near, not at, the levels
        Image.fromarray(resampled.astype(np.uint8)).save(rois / "mask" / "case_7.png")
    assert main(["prepare", "disc-crops", str(src), "-o", str(tmp_path / "out")]) == 0
    check_prepared(tmp_path / "out", ["Domain1_train_case_7", "Domain3_test_case_7"], ".png")


def test_drishti_soft_maps_by_majority(tmp_path) -> None:
    src = tmp_path / "Drishti-GS1_files" / "Training"
    photo(src / "Images" / "drishtiGS_002.png")
    soft = src / "GT" / "drishtiGS_002" / "SoftMap"
    soft.mkdir(parents=True)
    mask = grey_mask()
    Image.fromarray(np.where(mask < 192, 204, 51).astype(np.uint8)).save(soft / "drishtiGS_002_ODsegSoftmap.png")
    Image.fromarray(np.where(mask < 64, 255, 0).astype(np.uint8)).save(soft / "drishtiGS_002_cupsegSoftmap.png")
    assert main(["prepare", "drishti", str(tmp_path / "Drishti-GS1_files"), "-o", str(tmp_path / "out")]) == 0
    check_prepared(tmp_path / "out", ["drishtiGS_002"], ".png")


def test_a_bad_reference_is_reported_and_the_others_are_written(tmp_path, caplog, capsys) -> None:
    src = tmp_path / "REFUGE"
    for name in ("g0001", "g0002"):
        photo(src / "Training400" / f"{name}.jpg")
    masks = src / "Annotation-Training400" / "Disc_Cup_Masks"
    masks.mkdir(parents=True)
    Image.fromarray(grey_mask()).save(masks / "g0001.bmp")
    Image.fromarray(grey_mask()[:20]).save(masks / "g0002.bmp")  # not the photograph's size
    assert main(["prepare", "refuge", str(src), "-o", str(tmp_path / "out")]) != 0
    assert (tmp_path / "out" / "labels" / "g0001.png").is_file() and not (tmp_path / "out" / "labels" / "g0002.png").exists()
    assert f"{masks / 'g0002.bmp'}: skipped: reference is 40x20 px, the photograph 40x30 px" in caplog.text
    assert "error: 1 case could not be prepared (listed above); 1 written" in capsys.readouterr().err
    assert main(["prepare", "refuge", str(tmp_path / "missing"), "-o", str(tmp_path / "o2")]) != 0
    assert f"{tmp_path / 'missing'}: not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["prepare", "disc-crops", str(tmp_path / "empty"), "-o", str(tmp_path / "o3")]) != 0
    assert "no photograph with its reference found in the disc-crops layout" in capsys.readouterr().err


def write_outline(path, x0: float, y0: float, x1: float, y1: float) -> None:
    """A rectangle outline in PAPILA's contour format: one ``x y`` point per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x:.6e} {y:.6e}\n" for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))))


def test_papila_outlines_need_half_of_the_experts(tmp_path) -> None:
    src = tmp_path / "PapilaDB-PAPILA"
    photo(src / "FundusImages" / "RET002OD.jpg")
    photo(src / "FundusImages" / "RET003OS.jpg")  # no outlines: not listed
    contours = src / "ExpertsSegmentations" / "Contours"
    write_outline(contours / "RET002OD_disc_exp1.txt", 10, 5, 30, 20)
    write_outline(contours / "RET002OD_disc_exp2.txt", 12, 5, 30, 22)
    write_outline(contours / "RET002OD_cup_exp1.txt", 16, 9, 24, 15)
    write_outline(contours / "RET002OD_cup_exp2.txt", 16, 9, 24, 15)
    assert main(["prepare", "papila", str(src), "-o", str(tmp_path / "out")]) == 0
    label = np.asarray(Image.open(tmp_path / "out" / "labels" / "RET002OD.png"))
    expected = np.zeros((H, W), np.uint8)
    expected[5:21, 10:31] = 1  # rows y, columns x; the outline's own pixels included
    expected[5:23, 12:31] = 1  # the second expert's disc: either of two is half of them
    expected[9:16, 16:25] = 2
    np.testing.assert_array_equal(label, expected)
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["RET002OD.jpg"]


def test_papila_outline_that_is_not_points_is_reported(tmp_path, caplog) -> None:
    src = tmp_path / "PAPILA"
    photo(src / "FundusImages" / "RET002OD.jpg")
    contours = src / "ExpertsSegmentations" / "Contours"
    write_outline(contours / "RET002OD_disc_exp1.txt", 10, 5, 30, 20)
    (contours / "RET002OD_cup_exp1.txt").write_text("1 2\n3 4\n")  # two points: no polygon
    assert main(["prepare", "papila", str(src), "-o", str(tmp_path / "out")]) != 0
    assert "an outline needs at least 3 points of 2 coordinates, found 2 x 2" in caplog.text
    assert str(contours / "RET002OD_cup_exp1.txt") in caplog.text


def test_rim_one_dl_reads_each_photograph_once(tmp_path) -> None:
    src = tmp_path / "RIM-ONE_DL"
    images = src / "RIM-ONE_DL_images"
    for partition, split in (("partitioned_by_hospital", "training_set"), ("partitioned_randomly", "test_set")):
        photo(images / partition / split / "glaucoma" / "r1_Im069.png")
    photo(images / "partitioned_by_hospital" / "test_set" / "normal" / "r3_G_12.png")
    references = src / "RIM-ONE_DL_reference_segmentations"
    mask = grey_mask()
    for folder, case in (("glaucoma", "r1_Im069"), ("normal", "r3_G_12")):
        (references / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(mask < 192, 255, 0).astype(np.uint8)).save(references / folder / f"{case}-1-Disc-T.png")
        Image.fromarray(np.where(mask < 64, 255, 0).astype(np.uint8)).save(references / folder / f"{case}-1-Cup-T.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(references / "glaucoma" / "r1_Im069-2-Cup-T.png")  # expert 1 wins
    assert main(["prepare", "rim-one-dl", str(src), "-o", str(tmp_path / "out")]) == 0
    check_prepared(tmp_path / "out", ["r1_Im069", "r3_G_12"], ".png")
