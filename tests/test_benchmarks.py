"""Smoke tests: every benchmark script runs in ``--quick`` mode and prints its tables.

They check that the scripts still work against the library, not the numbers (which depend on
the machine and its load). Most take tens of seconds (phantoms, a short training, several
child processes), so they are marked slow; the CPU back ends' smoke test without
``torch.compile`` is not.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--quick", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def table_rows(output: str, header_start: str) -> list[list[str]]:
    """Cells of the Markdown table whose header line starts with ``header_start``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_network_quick() -> None:
    output = run_script("network.py")
    rows = table_rows(output, "| model |")
    assert len(rows) == 6  # three models, fp32 and bf16
    assert {row[2] for row in rows} == {"fp32", "bf16"}


@pytest.mark.slow
def test_inference_quick(tmp_path: Path) -> None:
    from monai_attn.io.writers import write_nifti
    from monai_attn.synthetic import generate_abdomen_ct_case

    scan = tmp_path / "own_scan.nii.gz"  # a scan of one's own: timed, no labels read, named after its file
    write_nifti(scan, *generate_abdomen_ct_case(5, 0, (48, 40, 16), (8.0, 8.0, 20.0))[::2])
    output = run_script("inference.py", "--work-dir", str(tmp_path), "--plot", str(tmp_path / "scaling.png"),
                        "--scan", str(scan))
    has_nnunet = importlib.util.find_spec("nnunetv2") is not None
    has_openvino = all(importlib.util.find_spec(p) is not None for p in ("openvino", "onnxscript"))
    has_int8 = has_openvino and importlib.util.find_spec("nncf") is not None
    all_rows = table_rows(output, "| case | variant | precision |")
    rows = [row for row in all_rows if not row[0].startswith("own_scan ")]
    scanned = [row for row in all_rows if row[0] == "own_scan 48x40x16"]
    titles = [
        "(a) monai-attn segment",
        "(a) segment adaptive_roi=true",
        "(b) MONAI stock recipe",
        *(["(b) nnU-Net v2 engine"] if has_nnunet else []),
        "(c) segment --precision fp32",
        "(c) segment --no-skip-air",
        "(c) segment --overlap 0.5",
        "(c) segment --no-fit-roi",
        "(d) segment --no-postprocess",
        *(["(e) segment --backend openvino", "(e) --backend openvino --precision fp32"] if has_openvino else []),
        "(e) segment --backend torch",
        "(e) --backend torch --precision fp32",
        *(["(e) segment --precision int8", "(e) --precision int8, CPU without bf16"] if has_int8 else []),
    ]
    assert [row[1] for row in rows] == titles and [row[1] for row in scanned] == titles
    assert all(row[7:10] == ["–", "–", "–"] and int(row[3]) > 0 for row in scanned)  # timed; no reference, no Dice
    if not has_nnunet:
        assert "skipping (b) nnU-Net v2 engine: nnunetv2 is not installed" in output
    by_title = {row[1]: row for row in rows}
    stock = by_title["(b) MONAI stock recipe"]
    assert stock[2] == "fp32" and stock[-2] == "1.00x" and stock[-3] == "1.000"  # (b) against itself
    for row in rows:
        assert int(row[3]) > 0 and float(row[5]) > 0 and float(row[6]) > 0  # windows, seconds, GB
    # 32^3 windows with overlap recompute voxels; one adaptive window computes each once (plus padding to 16)
    segment, adaptive = by_title["(a) monai-attn segment"], by_title["(a) segment adaptive_roi=true"]
    assert float(segment[4]) > float(adaptive[4]) >= 1.0 and int(adaptive[3]) == 1
    assert stock[4] == "–"  # the stock recipe has no voxel counts
    stages = table_rows(output, "| case | variant | load model |")
    assert len(stages) == 2 * len(titles)
    # the stages never add up to more than the wall time they are part of
    assert all(float(row[-2]) >= -0.5 for row in stages)
    scaling = table_rows(output, "| case | voxels (M) |")
    assert len(scaling) == 2 and len(scaling[0]) == 2 + len(titles)
    report = json.loads((tmp_path / "inference_quick.json").read_text())
    assert {r["variant"] for r in report["runs"]} == {
        "segment", "adaptive", "monai", *(["nnunet"] if has_nnunet else []),
        "fp32", "no-skip", "overlap-0.5", "no-fit-roi", "no-postprocess",
        *(["openvino", "openvino-fp32"] if has_openvino else []), "torch", "torch-fp32",
        *(["int8", "int8-no-bf16"] if has_int8 else []),
    }
    if has_openvino:  # converted before the timed runs, into the run's own cache
        assert ("(a) monai-attn segment: networks converted for every case's windows, and the choice, in "
                + str(tmp_path / "cache")) in output
        assert list((tmp_path / "cache" / "openvino").glob("*/choice.json"))
    else:
        assert "skipping (e) segment --backend openvino: openvino is not installed" in output
    # every variant wrote labels on the phantom's grid (evaluate_case_files checks the grid)
    assert all(set(r["dice"]) == {"spleen", "kidney", "pancreas"} for r in report["runs"])
    assert "random weights" in output
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_inference_skips_what_would_take_too_long() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import inference
    finally:
        sys.path.remove(str(BENCHMARKS))
    run = inference.Run("clinical", "monai", 0, 60.0, 0, 0, 1, None, None, {}, {}, "", 2)
    seconds, base = inference.estimated_seconds([run], "large", "monai")
    assert base == "clinical" and seconds == pytest.approx(180.0)  # 3x the voxels
    assert inference.estimated_seconds([run], "large", "segment") is None


@pytest.mark.slow
def test_ablation_quick(tmp_path: Path) -> None:
    output = run_script("ablation.py", "--work-dir", str(tmp_path))
    rows = table_rows(output, "| network |")
    assert [row[0] for row in rows] == ["U-Net", "Attention U-Net"]
    assert float(rows[1][1]) > float(rows[0][1])  # the gates add parameters
    comparison = table_rows(output, "| class | metric |")
    assert {row[0] for row in comparison} == {"spleen", "kidney", "pancreas"}
    assert (tmp_path / "quick" / "report" / "comparison.md").is_file()


@pytest.mark.slow
def test_evaluation_quick(tmp_path: Path) -> None:
    output = run_script("evaluation.py", "--work-dir", str(tmp_path))
    rows = table_rows(output, "| step |")
    assert len(rows) == 3
    assert all(0 <= float(row[1]) <= float(row[2]) for row in rows)  # min <= median
    assert (tmp_path / "evaluation" / "report_0" / "summary.json").is_file()


@pytest.mark.slow
def test_qc_quick(tmp_path: Path) -> None:
    output = run_script("qc.py", "--json", str(tmp_path / "qc.json"))
    report = json.loads((tmp_path / "qc.json").read_text())
    assert report["calibration"]["temperature"] > 0 and 0 <= report["calibration"]["ece_after"] <= 1
    kinds = {row["kind"] for row in report["rows"]}
    assert kinds == {"held-out", "shift+150HU", "scale0.6", "cut-at-kidneys"}
    assert "Detection:" in output and 0 < report["cost"]["share"] < 1


@pytest.mark.slow
def test_fundus_qc_quick() -> None:
    output = run_script("fundus_qc.py")
    assert len(table_rows(output, "| case |")) == 2  # the tuning table, then the held-out one
    assert "ENTROPY_WARN = " in output and "Failures: " in output


@pytest.mark.slow
def test_nifti_io_quick(tmp_path: Path) -> None:
    output = run_script("nifti_io.py", "--work-dir", str(tmp_path))
    rows = table_rows(output, "| case | gzip |")
    installed = ["zlib", *(name for name in ("indexed_gzip", "isal") if importlib.util.find_spec(name) is not None)]
    assert [row[1] for row in rows] == installed
    assert rows[0][3] == "1.00x" and rows[0][5] == "1.00x"  # zlib against itself
    assert all(row[-2:] == ["yes", "yes"] for row in rows)  # identical image read, identical label NIfTI written
    for name in {"indexed_gzip", "isal"} - set(installed):
        assert f"skipping {name}: " in output
    report = json.loads((tmp_path / "nifti_io_quick.json").read_text())
    assert report["backends"] == installed and all(float(row[2]) >= 0 for row in rows)


@pytest.mark.slow
def test_nnunet_engine_matches_a_pointwise_network() -> None:
    """nnU-Net's tiles, Gaussian weights and float16 sums give back a 1x1x1 network's logits.

    Not on the outermost voxels: there only tile edges reach, whose Gaussian weights underflow
    in nnU-Net's float16 sums (its engine as shipped), so the check leaves a 2-voxel shell out.
    """
    pytest.importorskip("nnunetv2.inference.predict_from_raw_data")
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from nnunet_engine import NnUNetEngine
    finally:
        sys.path.remove(str(BENCHMARKS))
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 3, kernel_size=1).eval()
    image = torch.rand(1, 1, 40, 36, 20)
    engine = NnUNetEngine((16, 16, 16), 3, "cpu")
    logits = engine(image, network)
    with torch.no_grad():
        expected = network(image)
    assert logits.shape == (1, 3, 40, 36, 20) and logits.dtype == torch.float32
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2), slice(2, -2))
    torch.testing.assert_close(logits[inner], expected[inner], atol=5e-3, rtol=5e-3)  # float16 sums
    # tile step 0.5 of 16: 4, 4 and 2 tile positions along the axes
    assert engine.windows_run == 4 * 4 * 2


def test_network_backends_quick(tmp_path: Path) -> None:
    """Every back end but torch.compile (minutes to compile) on a 32^3 window of the shipped CT network."""
    families = ["current", "ncdhw-weights", "channels-first", "jit-freeze", "onnxruntime", "openvino"]
    output = run_script("network_backends.py", "--variants", *families, "--json", str(tmp_path / "backends.json"))
    rows = table_rows(output, "| variant | precision |")
    installed = [f for f in families if f not in ("onnxruntime", "openvino") or importlib.util.find_spec(f)]
    expected = [(f, p) for f in installed for p in (("fp32",) if f == "onnxruntime" else ("fp32", "bf16"))]
    assert [(row[0], row[1]) for row in rows] == expected
    for family in set(families) - set(installed):
        assert f"- {family}: skipped: {family} is not installed" in output
    current_fp32, current_bf16 = rows[0], rows[1]
    assert current_fp32[7] == "1.00x" and current_fp32[9] == "0" and current_bf16[8] == "1.00x"  # against itself
    for row in rows:
        assert float(row[3]) > 0 and float(row[4]) <= float(row[3])  # best <= median (ms)
        assert all(0.0 <= float(cell) <= 1.0 for cell in row[10:12])  # label agreement, fractions of voxels
    assert float(current_fp32[10]) == 1.0 and float(current_bf16[11]) == 1.0
    report = json.loads((tmp_path / "backends.json").read_text())
    assert report["window"] == [1, 1, 32, 32, 32] and len(report["load_1min_per_round"]) == 1
    assert [len(row["times"]) for row in report["rows"]] == [1] * len(expected)
