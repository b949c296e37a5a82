"""Bad-input battery: every broken, odd or hostile input gets one clear line and nothing else.

Each case runs ``monai-attn`` in-process and asserts the exit code, exactly one
``error: <file>: <problem>`` line naming the file, no traceback, the inputs unchanged (hash
before and after) and nothing left behind (no file created anywhere under the test folder).
Most cases fail before a model is loaded; those that need one use a tiny TorchScript
threshold network. Volumes are 32^3 or smaller.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch

from monai_attn.cli import EXIT_SIGTERM, main
from monai_attn.io.atomic import PARTIAL_PREFIX, atomic_path, partial_path, remove_stale_partials
from test_dicom_seg import write_ct_series
from test_inference import ct_config, phantom_hu, write_nifti
from test_segment_cli import model  # noqa: F401  (fixture)

SHAPE = (32, 32, 16)


@dataclass
class Setup:
    """What a case built: the command line, the files that must stay unchanged, the file to be named."""

    argv: list[str]
    named: Path | str
    message: str
    inputs: list[Path] = field(default_factory=list)
    needs_model: bool = False


def nifti(path: Path, spacing=(1.0, 1.0, 2.0), affine: np.ndarray | None = None, data=None) -> Path:
    data = phantom_hu(SHAPE) if data is None else data
    return write_nifti(path, data, np.diag([*spacing, 1.0]) if affine is None else affine)


def dicom_series(folder: Path, **header: int) -> Path:
    """A 32x32x4 CT series; ``header`` overrides Rows/Columns/... in the first file (by name)."""
    write_ct_series(folder, np.round(phantom_hu((32, 32, 4))))
    if header:
        for file in sorted(folder.iterdir())[:1] if "all" not in header else sorted(folder.iterdir()):
            ds = pydicom.dcmread(file)
            for key, value in header.items():
                if key != "all":
                    setattr(ds, key, value)
            ds.save_as(file)
    return folder


def _segment(*args) -> list[str]:
    return ["segment", *map(str, args)]


# ---------------------------------------------------------------- cases failing before a model is read
def arg_case(option: list[str], message: str) -> Callable[[Path], Setup]:
    def make(tmp: Path) -> Setup:
        case = nifti(tmp / "case.nii.gz")
        return Setup(_segment("-i", case, "-o", tmp / "out", *option), named="", message=message, inputs=[case])

    return make


def output_case(output: Callable[[Path], Path], message: str, parent: bool = False) -> Callable[[Path], Setup]:
    """``parent``: the error names the target's folder (a file or a broken link where a folder must be)."""

    def make(tmp: Path) -> Setup:
        case = nifti(tmp / "case.nii.gz")
        target = output(tmp)
        return Setup(_segment("-i", case, "-o", target), named=target.parent if parent else target, message=message,
                     inputs=[case])

    return make


def _file(tmp: Path, name: str, text: str = "keep me") -> Path:
    (tmp / name).write_text(text)
    return tmp / name


def _bad_link(tmp: Path) -> Path:
    (tmp / "loop.nii.gz").symlink_to(tmp / "loop.nii.gz")
    return tmp / "loop.nii.gz"


def missing_input(tmp: Path) -> Setup:
    return Setup(_segment("-i", tmp / "nothere.nii.gz", "-o", tmp / "out"), named=tmp / "nothere.nii.gz",
                 message="no such file or folder")


def loop_input(tmp: Path) -> Setup:
    link = _bad_link(tmp)
    return Setup(_segment("-i", link, "-o", tmp / "out"), named=link,
                 message="symbolic link leads nowhere (broken, or a loop)")


def overwrite_input(tmp: Path) -> Setup:
    case = nifti(tmp / "case.nii.gz")
    return Setup(_segment("-i", case, "-o", case, "--device", "cpu"), named=case,
                 message="the output would overwrite the input", inputs=[case])


def dicom_seg_of_nifti(tmp: Path, types=("dicom-seg",)) -> Setup:
    case = nifti(tmp / "case.nii.gz")
    return Setup(_segment("-i", case, "-o", tmp / "out", "--output-type", *types), named=case,
                 message="--output-type dicom-seg needs a DICOM input", inputs=[case])


def folder_to_file(tmp: Path) -> Setup:
    (tmp / "cases").mkdir()
    case = nifti(tmp / "cases" / "a.nii.gz")
    return Setup(_segment("-i", tmp / "cases", "-o", tmp / "seg.nii.gz"), named=tmp / "seg.nii.gz",
                 message="is a folder of cases; the output must be a folder", inputs=[case])


def empty_folder(tmp: Path) -> Setup:
    (tmp / "cases").mkdir()
    (tmp / "cases" / "notes.txt").write_text("no images here")
    return Setup(_segment("-i", tmp / "cases", "-o", tmp / "out"), named=tmp / "cases", message="no images found",
                 inputs=[tmp / "cases" / "notes.txt"])


def missing_option_file(option: str) -> Callable[[Path], Setup]:
    def make(tmp: Path) -> Setup:
        case = nifti(tmp / "case.nii.gz")
        message = "no such bundle: not a folder, nor one of" if option == "bundle" else f"(--{option})"
        return Setup(_segment("-i", case, "-o", tmp / "out", f"--{option}", tmp / "absent"), named=tmp / "absent",
                     message=message, inputs=[case])

    return make


def cuda_without_gpu(device: str) -> Callable[[Path], Setup]:
    return arg_case(["--device", device], f"--device {device}: CUDA is not available on this machine")


PRE_MODEL: dict[str, Callable[[Path], Setup]] = {
    "overlap-1.5": arg_case(["--overlap", "1.5"], "--overlap must be in [0, 1) (a fraction of the window), got 1.5"),
    "overlap-1": arg_case(["--overlap", "1"], "--overlap must be in [0, 1)"),
    "overlap-negative": arg_case(["--overlap=-0.1"], "--overlap must be in [0, 1)"),
    "roi-0": arg_case(["--roi-size", "0", "0", "0"], "--roi-size must be positive, got 0 0 0"),
    "roi-50": arg_case(["--roi-size", "50", "50", "50"],
                       "--roi-size 50 50 50 is not divisible by 16 (the network's size divisor); try 48 48 48"),
    "roi-negative": arg_case(["--roi-size", "-16", "16", "16"], "--roi-size must be positive"),
    "sw-batch-0": arg_case(["--sw-batch-size", "0"], "--sw-batch-size must be >= 1, got 0"),
    "num-parts-0": arg_case(["--num-parts", "0"], "--num-parts must be >= 1, got 0"),
    "part-id-too-big": arg_case(["--num-parts", "2", "--part-id", "2"],
                                "--part-id must be in 0..1 for --num-parts 2, got 2"),
    "part-id-negative": arg_case(["--part-id=-1"], "--part-id must be in 0..0 for --num-parts 1, got -1"),
    "device-banana": arg_case(["--device", "banana"],
                              "--device 'banana' is not a device; use auto, cpu, cuda, cuda:N or mps"),
    "device-cuda-typo": arg_case(["--device", "cuda:x"], "--device 'cuda:x' is not a device"),
    "max-memory-words": arg_case(["--max-memory", "lots"], "--max-memory 'lots' is not a size; use e.g. 8G"),
    "max-memory-zero": arg_case(["--max-memory", "0G"], "--max-memory '0G' is not a size"),
    "output-in-a-file": output_case(lambda t: _file(t, "notes.txt") / "seg.nii.gz",
                                    "is a file, not a folder; cannot write into it", parent=True),
    "output-dev-full": output_case(lambda t: Path("/dev/full"), "not a regular file or a folder"),
    "output-png": output_case(lambda t: t / "seg.png", "nifti output must end with .nii.gz or .nii (or name a folder)"),
    "output-existing-text-file": output_case(lambda t: _file(t, "notes"),
                                             "is a file, not a folder; a label file must end with .nii.gz or .nii"),
    "output-broken-link-parent": output_case(lambda t: _bad_link(t) / "seg.nii.gz", "is a broken symbolic link",
                                             parent=True),
    "input-missing": missing_input,
    "input-device": lambda t: Setup(_segment("-i", "/dev/null", "-o", t / "out"), named="/dev/null",
                                    message="not a regular file or a folder (a device, pipe or socket?)"),
    "input-link-loop": loop_input,
    "output-overwrites-input": overwrite_input,
    "dicom-seg-of-nifti": dicom_seg_of_nifti,
    "nifti-and-dicom-seg-of-nifti": lambda t: dicom_seg_of_nifti(t, ("nifti", "dicom-seg")),
    "folder-of-cases-to-a-file": folder_to_file,
    "folder-without-images": empty_folder,
    "bundle-missing": missing_option_file("bundle"),
    "model-missing": missing_option_file("model"),
}
if not torch.cuda.is_available():
    PRE_MODEL["device-cuda-without-gpu"] = cuda_without_gpu("cuda")
    PRE_MODEL["device-cuda-1-without-gpu"] = cuda_without_gpu("cuda:1")
if os.geteuid() != 0:  # root writes into read-only folders
    def read_only_folder(tmp: Path) -> Path:
        (tmp / "ro").mkdir()
        (tmp / "ro").chmod(0o555)
        return tmp / "ro" / "seg.nii.gz"

    PRE_MODEL["output-read-only-folder"] = output_case(read_only_folder, "folder is not writable", parent=True)


# ---------------------------------------------------------------- cases failing when the scan is read
def scan_case(make_input: Callable[[Path], Path], message: str, *extra: str, named=None) -> Callable[[Path], Setup]:
    def make(tmp: Path) -> Setup:
        source = make_input(tmp)
        files = sorted(source.iterdir()) if source.is_dir() else [source]
        return Setup(_segment("-i", source, "-o", tmp / "out", *extra), named=named(source) if named else source,
                     message=message, inputs=files, needs_model=True)

    return make


def _truncated(tmp: Path, name: str) -> Path:
    whole = nifti(tmp / f"whole_{name}").read_bytes()
    (tmp / f"whole_{name}").unlink()
    (tmp / name).write_bytes(whole[: len(whole) // 2])
    return tmp / name


def _collinear(tmp: Path) -> Path:
    affine = np.eye(4)
    affine[:3, 2] = (1.0, 0.0, 0.0)  # the slice axis coincides with the first axis
    return nifti(tmp / "flat.nii.gz", affine=affine)


def _zero_slice_axis(tmp: Path) -> Path:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=1)  # slice axis of length 0
    header.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(phantom_hu(SHAPE), None, header), str(tmp / "zero.nii.gz"))
    return tmp / "zero.nii.gz"


def _nrrd(tmp: Path, spacing) -> Path:
    image = sitk.GetImageFromArray(np.zeros(SHAPE[::-1], np.int16))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(tmp / "scan.nrrd"))
    return tmp / "scan.nrrd"


def _four_d(tmp: Path) -> Path:
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 2), np.float32), np.eye(4)), str(tmp / "four.nii.gz"))
    return tmp / "four.nii.gz"


def _nan(tmp: Path) -> Path:
    data = phantom_hu(SHAPE)
    data[3, 3, 3] = np.nan
    return nifti(tmp / "nan.nii.gz", data=data)


def _huge_header(tmp: Path) -> Path:
    """A 500-byte NIfTI whose header declares 32767^3 int16 voxels."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((32767, 32767, 32767))
    header.set_sform(np.eye(4), code=1)
    (tmp / "huge.nii").write_bytes(header.binaryblock + bytes(4 + 100))
    return tmp / "huge.nii"


def _array(name: str, array: np.ndarray) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        nib.save(nib.Nifti1Image(array, np.eye(4)), str(tmp / name))
        return tmp / name

    return make


def _without_pixel_data(tmp: Path) -> Path:
    folder = dicom_series(tmp / "ct")
    first = _first_file(folder)
    ds = pydicom.dcmread(first)
    del ds.PixelData
    ds.save_as(first)
    return folder


def _bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(content)
        return tmp / name

    return make


def _first_file(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


SCAN: dict[str, Callable[[Path], Setup]] = {
    "nifti-gz-truncated": scan_case(lambda t: _truncated(t, "cut.nii.gz"),
                                    "file is truncated: the header declares 32x32x16 float32 voxels = 65536 bytes, "
                                    "the file holds"),
    "nifti-truncated": scan_case(lambda t: _truncated(t, "cut.nii"),
                                 "file is truncated: the header declares 32x32x16 float32 voxels = 65536 bytes, "
                                 "the file holds 32592 bytes of voxel data"),
    "spacing-200mm": scan_case(lambda t: nifti(t / "huge.nii.gz", spacing=(200, 200, 200)),
                               "voxel size 200 x 200 x 200 mm is outside 0.05-50 mm"),
    "spacing-0.001mm": scan_case(lambda t: nifti(t / "tiny.nii.gz", spacing=(0.001, 0.001, 0.001)),
                                 "voxel size 0.001 x 0.001 x 0.001 mm is outside 0.05-50 mm"),
    "spacing-zero": scan_case(_zero_slice_axis, "degenerate affine: its voxel axes (1 0 0; 0 1 0; 0 0 0) span no volume"),
    "affine-degenerate": scan_case(_collinear, "degenerate affine: its voxel axes (1 0 0; 0 1 0; 1 0 0) span no volume"),
    "nrrd-spacing-200mm": scan_case(lambda t: _nrrd(t, (200.0, 1.0, 1.0)), "voxel size 200 x 1 x 1 mm is outside"),
    "memory-budget": scan_case(lambda t: nifti(t / "case.nii.gz"),
                               "a 32x32x16 image needs about 512.0 KiB, more than the memory budget of 64.0 KiB",
                               "--max-memory", "64K"),
    "four-d": scan_case(_four_d, "image is 4-D (8, 8, 8, 2); expected a 3-D CT volume"),
    "nan-voxel": scan_case(_nan, "image contains 1 NaN or infinite voxels"),
    "empty-file": scan_case(_bytes("empty.nii.gz", b""), "file is empty (0 bytes)"),
    "text-as-nifti": scan_case(_bytes("text.nii.gz", b"hello, not an image"), "not a readable NIfTI image"),
    "text-as-nrrd": scan_case(_bytes("text.nrrd", b"hello, not an image"), "not a readable image"),
    "dicom-rows-128-data-64": scan_case(lambda t: dicom_series(t / "ct", Rows=64),
                                        "pixel data holds 2048 bytes but the header declares 64 rows x 32 columns x "
                                        "1 frame(s) x 16 bits = 4096 bytes", named=_first_file),
    "dicom-rows-16-data-32": scan_case(lambda t: dicom_series(t / "ct", Rows=16, all=1),
                                       "pixel data holds 2048 bytes but the header declares 16 rows x 32 columns x "
                                       "1 frame(s) x 16 bits = 1024 bytes", named=_first_file),
    "dicom-65535-rows": scan_case(lambda t: dicom_series(t / "ct", Rows=65535, Columns=65535, all=1),
                                  "pixel data holds 2048 bytes but the header declares 65535 rows x 65535 columns",
                                  named=_first_file),
    "dicom-4096-square": scan_case(lambda t: dicom_series(t / "ct", Rows=4096, Columns=4096, all=1),
                                   "but the header declares 4096 rows x 4096 columns", named=_first_file),
    "dicom-8-bits-declared": scan_case(lambda t: dicom_series(t / "ct", BitsAllocated=8),
                                       "pixel data holds 2048 bytes but the header declares 32 rows x 32 columns x "
                                       "1 frame(s) x 8 bits = 1024 bytes", named=_first_file),
    "nifti-header-32767-cubed": scan_case(_huge_header, "a 32767x32767x32767 image needs about 1023.9 TiB, more than "
                                                      "the memory budget of"),
    "nifti-empty-axis": scan_case(_array("flat.nii.gz", np.zeros((0, 32, 32), np.float32)),
                                  "image has an empty axis: shape (0, 32, 32)"),
    "nifti-complex": scan_case(_array("complex.nii.gz", np.zeros((32, 32, 8), np.complex64)),
                               "voxel type complex64 is not a number per voxel (complex or colour data)"),
    "nifti-2d": scan_case(_array("slice.nii.gz", np.zeros((32, 32), np.float32)),
                          "image is 2-D (32, 32); expected a 3-D CT volume"),
    "dicom-rows-0": scan_case(lambda t: dicom_series(t / "ct", Rows=0, all=1),
                              "pixel data holds 2048 bytes but the header declares 0 rows x 32 columns",
                              named=_first_file),
    "dicom-without-pixel-data": scan_case(_without_pixel_data, "DICOM image has no pixel data", named=_first_file),
    "dicom-zero-pixel-spacing": scan_case(lambda t: dicom_series(t / "ct", PixelSpacing=[0.0, 0.0], all=1),
                                          "voxel size 0 x 0 x 2.5 mm has a zero, negative or undefined value"),
    "dicom-memory-budget": scan_case(lambda t: dicom_series(t / "ct"),
                                     "DICOM series", "--max-memory", "16K"),
}


def config_case(segmenter: dict, message: str) -> Callable[[Path], Setup]:
    def make(tmp: Path) -> Setup:
        import json

        case = nifti(tmp / "case.nii.gz")
        config = tmp / "bad_config.json"
        config.write_text(json.dumps(ct_config(**segmenter)))
        return Setup(["segment", "-i", str(case), "-o", str(tmp / "out"), "--config", str(config)], named=config,
                     message=message, inputs=[case, config], needs_model=True)

    return make


SCAN["config-undefined-reference"] = config_case(
    {"roi_size": [32, 32, 32], "overlap": "@nothere"},
    "the model config cannot be built (the referring item `@nothere` is not defined in the config content.)",
)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (links not followed) -> sha256 of its bytes ("link" for links)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*filenames, *[d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]]:
            path = Path(dirpath, name)
            found[str(path)] = "link" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def check_one_line(code: int, err: str, setup: Setup, expected_code: int = 1) -> None:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert code == expected_code, err
    prefix = f"error: {setup.named}: " if str(setup.named) else "error: "
    assert errors[0].startswith(prefix), errors[0]
    assert setup.message in errors[0], errors[0]


def run_case(setup: Setup, model_args: list[str], tmp: Path, capsys) -> None:
    argv = list(setup.argv)
    if setup.needs_model:
        # --config in the case replaces the fixture's; the weights stay
        model_args = model_args[:2] + model_args[4:] if "--config" in argv else model_args
        argv += model_args
    before = snapshot(tmp)
    code = main(argv)
    err = capsys.readouterr().err
    check_one_line(code, err, setup)
    assert snapshot(tmp) == before  # inputs unchanged, nothing written, nothing left behind


@pytest.mark.parametrize("name", sorted(PRE_MODEL))
def test_refused_before_any_model(name, tmp_path, capsys, monkeypatch):
    from monai_attn.inference import Segmenter

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the input was refused")

    monkeypatch.setattr(Segmenter, "from_bundle", no_model)
    monkeypatch.setattr(Segmenter, "from_files", no_model)
    setup = PRE_MODEL[name](tmp_path)
    run_case(setup, [], tmp_path, capsys)


def test_argument_errors_need_neither_torch_nor_monai(tmp_path):
    """A fresh process refuses --overlap 1.5 before importing torch or MONAI (so the refusal is quick)."""
    case = nifti(tmp_path / "case.nii.gz")
    script = (
        "import sys\n"
        "from monai_attn.cli import main\n"
        f"code = main(['segment', '-i', {str(case)!r}, '-o', {str(tmp_path / 'out')!r}, '--overlap', '1.5'])\n"
        "print(code, 'torch' in sys.modules, 'monai' in sys.modules, "
        "'matplotlib' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    code, torch_loaded, monai_loaded, matplotlib_loaded = done.stdout.split()
    assert done.stderr == "error: --overlap must be in [0, 1) (a fraction of the window), got 1.5\n"
    assert (code, torch_loaded, monai_loaded, matplotlib_loaded) == ("1", "False", "False", "False")


@pytest.mark.parametrize(
    "name", sorted(SCAN)
)
def test_refused_when_the_scan_is_read(name, tmp_path, capsys, model):  # noqa: F811
    run_case(SCAN[name](tmp_path), model, tmp_path, capsys)


# ---------------------------------------------------------------- evaluate
def _label_map(path: Path, values: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(values, np.eye(4)), str(path))
    return path


def _labels(dtype=np.uint8, extra: int | None = None) -> np.ndarray:
    array = np.zeros((12, 12, 6), dtype)
    array[2:5, 2:5, 1:3], array[6:9, 6:9, 2:4] = 1, 2
    if extra is not None:
        array[10, 10, 5] = extra
    return array


@pytest.mark.parametrize(
    "value, dtype, message",
    [
        (7, np.uint8, "holds label values outside the scheme (0 background, 1 a, 2 b): 7 (1 voxels)"),
        (255, np.uint8, "holds label values outside the scheme (0 background, 1 a, 2 b): 255 (1 voxels)"),
        (-1, np.int16, "holds negative label values -1 (1 voxels)"),
    ],
    ids=["label-7", "label-255", "label-negative"],
)
def test_evaluate_refuses_labels_outside_the_scheme(value, dtype, message, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    pred = _label_map(tmp_path / "pred" / "case.nii.gz", _labels(dtype, value))
    _label_map(tmp_path / "gt" / "case.nii.gz", _labels())
    before = snapshot(tmp_path / "pred") | snapshot(tmp_path / "gt")
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-o",
                 str(tmp_path / "report"), "--labels", "a=1,b=2", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == ["error: 1 case failed:"]
    assert [line for line in err.splitlines() if line.startswith(f"  case: {pred}: {message}")]
    assert snapshot(tmp_path / "pred") | snapshot(tmp_path / "gt") == before
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.startswith(PARTIAL_PREFIX)]


@pytest.mark.parametrize(
    "options, named, message",
    [
        (["--pred", "{tmp}/absent"], "{tmp}/absent", "not a folder"),
        (["--labels", "spleen=abc"], "", "label value of 'spleen' is 'abc'; expected an integer"),
        (["--labels", "a=1", "--nsd-tolerance-mm", "-1"], "", "NSD tolerance '-1' must be a finite number >= 0 mm"),
        (["--dataset-json", "{tmp}/none.json"], "{tmp}/none.json", "no such file"),
    ],
    ids=["pred-missing", "labels-not-integer", "nsd-negative", "dataset-json-missing"],
)
def test_evaluate_argument_errors(options, named, message, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    _label_map(tmp_path / "pred" / "case.nii.gz", _labels())
    _label_map(tmp_path / "gt" / "case.nii.gz", _labels())
    options = [o.format(tmp=tmp_path) for o in options]
    pred = [] if "--pred" in options else ["--pred", str(tmp_path / "pred")]
    before = snapshot(tmp_path)
    code = main(["evaluate", *pred, "--gt", str(tmp_path / "gt"), "-o", str(tmp_path / "report"), *options])
    check_one_line(code, capsys.readouterr().err, Setup([], named=named.format(tmp=tmp_path), message=message))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("target", ["existing-file", "inside-a-file"])
def test_evaluate_refuses_a_report_path_that_is_a_file(target, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    _label_map(tmp_path / "pred" / "case.nii.gz", _labels())
    _label_map(tmp_path / "gt" / "case.nii.gz", _labels())
    report = _file(tmp_path, "report.txt")
    out = report if target == "existing-file" else report / "sub"
    before = snapshot(tmp_path)
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "-o", str(out)])
    message = "exists and is not a folder" if target == "existing-file" else "is a file, not a folder"
    check_one_line(code, capsys.readouterr().err, Setup([], named=report, message=message))
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- a batch of good and bad cases
def test_batch_writes_the_good_cases_and_reports_each_bad_one(tmp_path, capsys, model):  # noqa: F811
    cases = tmp_path / "cases"
    cases.mkdir()
    nifti(cases / "good_a.nii.gz")
    nifti(cases / "good_b.nii.gz", spacing=(0.8, 0.8, 2.5))
    dicom_series(cases / "good_dicom")
    bad = {
        "bad_truncated": _truncated(cases, "bad_truncated.nii.gz"),
        "bad_spacing": nifti(cases / "bad_spacing.nii.gz", spacing=(200, 200, 200)),
        "bad_affine": _collinear(cases).rename(cases / "bad_affine.nii.gz"),
        "bad_empty": _bytes("bad_empty.nii.gz", b"")(cases),
        "bad_loop": (cases / "bad_loop.nii.gz"),
        "bad_rows": _first_file(dicom_series(cases / "bad_rows", Rows=64)),
    }
    (cases / "bad_loop.nii.gz").symlink_to(cases / "bad_loop.nii.gz")
    before = snapshot(cases)
    out = tmp_path / "out"
    code = main(["segment", "-i", str(cases), "-o", str(out), *model])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["good_a.nii.gz", "good_b.nii.gz", "good_dicom.nii.gz"]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad)
    for case_id, path in bad.items():
        assert [line for line in errors if line.startswith(f"error: {path}: ")], (case_id, errors)
    assert f"failed {len(bad)} of {len(bad) + 3} cases:" in err
    assert snapshot(cases) == before


# ---------------------------------------------------------------- signals and partial files
def test_sigterm_cleans_up_and_exits_143(tmp_path, monkeypatch, capsys):
    from monai_attn.commands import segment

    target = tmp_path / "out" / "seg.nii.gz"

    def write_then_get_terminated(args) -> int:
        with atomic_path(target) as partial:
            partial.write_bytes(b"half a volume")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # interrupted by the handler
        return 0

    monkeypatch.setattr(segment, "run_segment", write_then_get_terminated)
    previous = signal.getsignal(signal.SIGTERM)
    code = main(["segment", "-i", str(tmp_path), "-o", str(target)])
    assert code == EXIT_SIGTERM == 143
    assert capsys.readouterr().err == "error: terminated (SIGTERM)\n"
    assert list((tmp_path / "out").iterdir()) == []  # neither the target nor its partial file
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is restored


def test_sigterm_in_a_real_process(tmp_path):
    """The installed handler in a separate process: exit 143, one line, no partial file."""
    script = (
        "import sys, time\n"
        "from monai_attn import cli\n"
        "from monai_attn.commands import segment\n"
        "from monai_attn.io.atomic import atomic_path\n"
        "def slow(args):\n"
        f"    with atomic_path({str(tmp_path / 'seg.nii.gz')!r}) as p:\n"
        "        p.write_bytes(b'x'); print('ready', flush=True); time.sleep(30)\n"
        "segment.run_segment = slow\n"
        "sys.exit(cli.main(['segment', '-i', '.', '-o', 'x']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               text=True)
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143
    assert err == "error: terminated (SIGTERM)\n"
    assert list(tmp_path.iterdir()) == []


def test_partial_files_are_single_level_and_honour_the_umask(tmp_path):
    from monai_attn.io import save_like
    from monai_attn.io.statistics import write_statistics
    from monai_attn.io.atomic import PartialFiles
    from monai.data import MetaTensor

    image = MetaTensor(torch.zeros((1, 4, 4, 4)), meta={"original_affine": np.eye(4), "spatial_shape": (4, 4, 4)})
    seen: list[list[str]] = []
    real_save = nib.save

    def spy(img, filename):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real_save(img, filename)

    umask = os.umask(0o022)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(nib, "save", spy)
            with PartialFiles():  # the group: inner writers only reserve partial files
                save_like(np.ones((4, 4, 4)), image, tmp_path / "seg.nii.gz")
                write_statistics({"a": 1}, tmp_path / "seg_statistics.json")
                assert sorted(p.name for p in tmp_path.iterdir()) == [
                    f".partial-{os.getpid()}.seg.nii.gz", f".partial-{os.getpid()}.seg_statistics.json"]
    finally:
        os.umask(umask)
    assert seen == [[]]  # nibabel wrote straight into the one partial file: no temp inside a temp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz", "seg_statistics.json"]
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_group_leaves_nothing(tmp_path):
    from monai_attn.io.atomic import PartialFiles
    from monai_attn.io.statistics import write_statistics

    with pytest.raises(RuntimeError, match="disk on fire"), PartialFiles():
        write_statistics({"a": 1}, tmp_path / "a.json")
        raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []


def test_stale_partial_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = partial_path(tmp_path / "seg.nii.gz", pid=dead_pid)
    stale.write_bytes(b"")
    alive = partial_path(tmp_path / "seg.nii.gz", pid=os.getppid())  # a running process: kept
    alive.write_bytes(b"")
    other = partial_path(tmp_path / "other.nii.gz", pid=dead_pid)  # another target: not this write's business
    other.write_bytes(b"")
    with atomic_path(tmp_path / "seg.nii.gz") as partial:
        partial.write_bytes(b"done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "seg.nii.gz"])
    assert remove_stale_partials(tmp_path / "other.nii.gz") == [other]


def test_disk_full_is_one_line(tmp_path, capsys, monkeypatch):
    """An OSError from the system while writing (here: ENOSPC) is one line naming the file."""
    import errno

    from monai_attn.commands import segment

    def full(args) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "seg.nii.gz"))

    monkeypatch.setattr(segment, "run_segment", full)
    assert main(["segment", "-i", str(tmp_path), "-o", str(tmp_path / "seg.nii.gz")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'seg.nii.gz'}: No space left on device\n"


def test_write_errors_name_the_target_not_its_partial_file(tmp_path):
    def fail(partial: Path) -> None:
        raise OSError(28, "No space left on device", str(partial))

    with pytest.raises(OSError) as err, atomic_path(tmp_path / "seg.nii.gz") as partial:
        fail(partial)
    assert err.value.filename == str(tmp_path / "seg.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_a_nifti_without_orientation_is_read_with_a_warning(tmp_path, caplog):
    from monai_attn.io import load_image

    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(SHAPE)
    header.set_zooms((3.0, 3.0, 4.0))
    header.set_sform(None, code=0)
    header.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(phantom_hu(SHAPE), None, header), str(tmp_path / "analyze.nii.gz"))
    with caplog.at_level("WARNING"):
        image = load_image(tmp_path / "analyze.nii.gz", expect="ct")
    assert tuple(image.shape) == (1, *SHAPE)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{tmp_path / 'analyze.nii.gz'}: the header sets no orientation (qform and sform codes 0); the volume is placed "
        "by its voxel sizes (3 x 3 x 4 mm), centred on the origin, with a guessed orientation: check it"
    ]


def test_dicom_pixel_data_with_trailing_padding_is_read_as_declared(tmp_path):
    from monai_attn.io import load_image

    folder = dicom_series(tmp_path / "ct")
    for file in folder.iterdir():
        ds = pydicom.dcmread(file)
        ds.PixelData = ds.PixelData + bytes(64)  # one row of padding, as some writers add
        ds.save_as(file)
    image = load_image(folder, expect="ct")
    np.testing.assert_array_equal(image[0].numpy(), load_image(dicom_series(tmp_path / "plain"), expect="ct")[0].numpy())


def test_previews_and_reports_honour_the_umask(tmp_path):
    """Previews and reports were 0600 (mkstemp) while other outputs were 0644."""
    from monai_attn.evaluation.report import write_text_atomically
    from monai_attn.io.preview import save_overlay_png

    umask = os.umask(0o022)
    try:
        save_overlay_png(np.zeros((8, 8, 4)), np.ones((8, 8, 4), np.uint8), tmp_path / "preview.png")
        write_text_atomically(tmp_path / "summary.md", "# report\n")
    finally:
        os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"preview.png": 0o644, "summary.md": 0o644}
