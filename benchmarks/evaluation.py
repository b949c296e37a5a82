"""Time per case of ``monai-attn evaluate`` on clinical-size label maps (512x512x200, 0.8x0.8x2.5 mm).

The reference is the label map of the ``clinical`` phantom of ``benchmarks/inference.py``
(same cache); the prediction is that map shifted by (2, 1, 1) voxels with the pancreas grown
by one voxel, so every metric has work to do. ``--cases`` copies of the pair are evaluated
by ``monai-attn evaluate`` (in this process, ``--workers`` processes), ``--repeats`` times;
the table gives the whole command per case and its parts: reading both files, and all
metrics (Dice, IoU, volumes, HD95, NSD of the three organs) on arrays in memory.

Usage::

    python benchmarks/evaluation.py               # 4 cases, 3 repeats
    python benchmarks/evaluation.py --quick       # the tiny phantom, 2 cases, 1 repeat
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from _common import default_work_dir, format_machine, load_average, machine_description, markdown_table
from inference import CASES, LABEL_NAMES, phantom_paths

#: Displacement (voxels) of the prediction against the reference.
SHIFT_VOXELS = (2, 1, 1)


def make_pair(reference: Path, folder: Path, cases: int) -> tuple[Path, Path]:
    """``cases`` copies of (reference, shifted prediction) in ``folder/gt`` and ``folder/pred``."""
    from scipy import ndimage

    from monai_attn.evaluation import read_label_map
    from monai_attn.io.writers import write_nifti

    gt_dir, pred_dir = folder / "gt", folder / "pred"
    for sub in (gt_dir, pred_dir):
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir(parents=True)
    ref = read_label_map(reference)
    pred = np.roll(ref.array, SHIFT_VOXELS, axis=(0, 1, 2))
    pred[ndimage.binary_dilation(pred == 3) & (pred == 0)] = 3
    write_nifti(gt_dir / "case_000.nii.gz", ref.array.astype(np.uint8), ref.affine)
    write_nifti(pred_dir / "case_000.nii.gz", pred.astype(np.uint8), ref.affine)
    for index in range(1, cases):
        for sub in (gt_dir, pred_dir):
            shutil.copyfile(sub / "case_000.nii.gz", sub / f"case_{index:03d}.nii.gz")
    return gt_dir, pred_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="copies of the pair evaluated per command")
    parser.add_argument("--repeats", type=int, default=3, help="times the command runs")
    parser.add_argument("--workers", type=int, default=1, help="monai-attn evaluate --workers")
    parser.add_argument("--work-dir", type=Path, default=default_work_dir(), help="phantom cache and outputs")
    parser.add_argument("--quick", action="store_true", help="smoke test: the tiny phantom, 2 cases, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.repeats = 2, 1
    work_dir = args.work_dir.resolve()
    case = CASES["tiny" if args.quick else "clinical"]

    from monai_attn import cli
    from monai_attn.evaluation import evaluate_label_maps, read_label_map

    print(format_machine(machine_description()), flush=True)
    _, label = phantom_paths(case, work_dir)
    gt_dir, pred_dir = make_pair(label, work_dir / "evaluation", args.cases)
    spec = ",".join(f"{name}={value}" for value, name in LABEL_NAMES.items())

    per_case, reading, metrics = [], [], []
    for repeat in range(args.repeats):
        report = work_dir / "evaluation" / f"report_{repeat}"
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the command's own summary table
            code = cli.main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(report),
                             "--labels", spec, "--workers", str(args.workers)])
        if code != 0:
            raise SystemExit(f"monai-attn evaluate exited with {code}")
        per_case.append((time.perf_counter() - start) / args.cases)
        tick = time.perf_counter()
        pred, ref = read_label_map(pred_dir / "case_000.nii.gz"), read_label_map(gt_dir / "case_000.nii.gz")
        reading.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        evaluate_label_maps(pred.array, ref.array, ref.spacing_mm, list(LABEL_NAMES))
        metrics.append(time.perf_counter() - tick)

    shape = "x".join(map(str, case.shape))
    spacing = "x".join(f"{s:g}" for s in case.spacing_mm)
    print(f"\n{args.cases} case(s) of {shape} voxels at {spacing} mm, --workers {args.workers}, {args.repeats} repeat(s); "
          f"load average at the end {' '.join(f'{x:.2f}' for x in load_average())}\n")
    rows = [
        ["`monai-attn evaluate`, per case (read, check grid, metrics, reports)", per_case],
        ["reading both label maps", reading],
        ["all metrics of the three organs, in memory", metrics],
    ]
    print(markdown_table(["step", "min (s)", "median (s)"],
                         [[name, f"{min(t):.2f}", f"{statistics.median(t):.2f}"] for name, t in rows]))


if __name__ == "__main__":
    main()
