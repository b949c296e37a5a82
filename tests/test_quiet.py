"""No third-party warning a user cannot act on; -v without matplotlib/PIL debug lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (default warning filters, as a user's shell has)."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_loading_an_image_prints_no_nvimagecodec_warning(tmp_path: Path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), str(tmp_path / "x.nii.gz"))
    code = "import monai_attn; from monai.transforms import LoadImage; print(LoadImage(image_only=True)('x.nii.gz').shape)"
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch.Size([4, 4, 4])"
    assert result.stderr == ""
    # without monai_attn the same call warns: the test would notice MONAI changing its message
    bare = _run(code.replace("import monai_attn; ", ""), tmp_path)
    assert "nvImageCodec" in bare.stderr


def test_verbose_cli_has_no_matplotlib_or_pil_debug_lines(tmp_path: Path) -> None:
    code = ("import sys; from monai_attn.cli import main; "
            "sys.exit(main(['-v', 'synth', 'cells', '-o', 'd', '--cases', '1', '--size', '32', '--preview']))")
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "previews").is_dir()
    lines = result.stderr.splitlines()
    assert not [line for line in lines if "matplotlib" in line or "PIL" in line or "font" in line.lower()], lines


def test_segment_prints_only_its_own_lines(tmp_path: Path) -> None:
    """A whole segment run in a fresh interpreter: progress lines of ours, no third-party line."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "section.png")
    code = ("import sys; from monai_attn.cli import main; "
            "sys.exit(main(['segment', '--bundle', 'cells', '-i', 'section.png', '-o', 'labels.png']))")
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "labels.png").is_file()
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith(("segmenting ", "section: ")) for line in lines), lines


def test_onnx_export_notes_are_silenced_and_nothing_else(recwarn):
    """torch's torchvision-absent notes and its LeafSpec FutureWarning, not other warnings."""
    import logging
    import warnings

    from monai_attn.quiet import ONNX_REGISTRATION_LOGGER, silence_third_party_noise

    silence_third_party_noise()  # pytest resets filters per test; the package does this on import
    assert not logging.getLogger(ONNX_REGISTRATION_LOGGER).isEnabledFor(logging.WARNING)
    assert logging.getLogger("torch.onnx").isEnabledFor(logging.WARNING)
    warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
    warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in recwarn] == ["something else is deprecated"]
