"""``monai-attn evaluate``: Dice, HD95 and surface Dice of predicted label maps, with reports.

One ``--pred`` folder writes ``summary.json``, ``per_case.csv``, ``summary.md`` and
``boxplot.png`` to the report folder and prints the summary table; when the predictions come
with ``<case>_qc.json`` (``segment --statistics``), ``qc_vs_dice.md`` tells how well the
quality control flagged the organs that truly failed. Two or more ``--pred``
folders also compare each with the first (paired differences, Wilcoxon p-values): one
report subfolder per method plus ``comparison.md/.json/.csv`` and a joint ``boxplot.png``.
The exit code is 1 when any case failed (missing prediction, grid mismatch, unreadable file).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monai_attn.wording import plural

if TYPE_CHECKING:
    from monai_attn.evaluation.cases import EvaluationRun

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted label maps against references (Dice, HD95, NSD) and write reports",
        description=__doc__.split("\n\n", 1)[1].replace("``", "") if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--pred", action="append", required=True, metavar="PRED_DIR",
        help="folder of predicted label maps named like the references; repeat to compare methods "
        "(each against the first)",
    )
    parser.add_argument(
        "--gt", required=True, metavar="GT_DIR",
        help="folder of reference label maps, or an MSD dataset folder (its labelsTr is used)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="report folder (created)")
    parser.add_argument(
        "--labels", metavar="SPEC",
        help="classes to evaluate: NAME=VALUE list (spleen=1,kidney=2,pancreas=3) or a dataset.json / "
        "bundle metadata.json; default: --dataset-json, then GT_DIR's dataset.json (or its parent's), "
        "else every label value found",
    )
    parser.add_argument("--dataset-json", metavar="PATH", help="MSD/nnU-Net dataset.json giving the label names")
    parser.add_argument(
        "--gt-mapping", metavar="DESCRIPTOR",
        help="remap the references with a data set descriptor from datasets/ (e.g. totalsegmentator, btcv); "
        "the classes then default to the descriptor's label scheme",
    )
    parser.add_argument(
        "--nsd-tolerance-mm", metavar="SPEC",
        help="normalised surface Dice tolerance in mm: one number for all classes and/or NAME=MM "
        "(e.g. spleen=1,kidney=1,pancreas=2); default 2",
    )
    parser.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1),
        help="cases evaluated in parallel processes (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def _run_names(pred_dirs: list[str]) -> list[str]:
    """Report names of the prediction folders: their base names, numbered where they clash."""
    names = [Path(p).resolve().name or "prediction" for p in pred_dirs]
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def run(args: argparse.Namespace) -> int:
    from monai_attn.commands.checks import check_new_report_folder

    check_new_report_folder(args.output)  # before any file is read
    # imported here, not at module level: scipy.stats and matplotlib add a second to every
    # command's start-up, --help included
    from monai_attn.datasets import LABEL_SCHEMES, get_descriptor
    from monai_attn.evaluation.cases import evaluate_folders
    from monai_attn.evaluation.compare import paired_differences, write_comparison
    from monai_attn.evaluation.labels import parse_tolerances, resolve_label_names
    from monai_attn.evaluation.report import plot_boxplot, write_report, write_text_atomically
    from monai_attn.evaluation.qc_versus_dice import qc_versus_dice, read_qc, render_qc_markdown

    gt_dir = Path(args.gt)
    for folder in (*args.pred, args.gt):
        if not Path(folder).is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
    fallbacks = [Path(args.dataset_json)] if args.dataset_json else [gt_dir / "dataset.json", gt_dir.parent / "dataset.json"]
    if args.dataset_json and not fallbacks[0].is_file():
        raise FileNotFoundError(f"{args.dataset_json}: no such file")
    if args.gt_mapping and not args.labels and not args.dataset_json:
        descriptor = get_descriptor(args.gt_mapping)
        label_names = {k: v for k, v in LABEL_SCHEMES[descriptor["scheme"]].items() if k != 0}
    else:
        label_names = resolve_label_names(args.labels, fallbacks)
    tolerances = parse_tolerances(args.nsd_tolerance_mm, label_names or {})
    workers = max(1, args.workers)
    out_dir = Path(args.output)
    names = _run_names(args.pred)
    runs: dict[str, EvaluationRun] = {}
    for name, pred_dir in zip(names, args.pred):
        logger.info("evaluating %s against %s", pred_dir, gt_dir)
        runs[name] = evaluate_folders(pred_dir, gt_dir, label_names, tolerances, workers=workers,
                                      gt_mapping=args.gt_mapping)
        if runs[name].skipped_side_files:
            logger.info("skipped %d file(s) segment writes beside the labels (previews, statistics, QC...), "
                        "e.g. %s", len(runs[name].skipped_side_files), runs[name].skipped_side_files[0])

    all_names = dict(sorted({k: v for r in runs.values() for k, v in r.label_names.items()}.items()))
    compare = len(runs) > 1
    for name, evaluation in runs.items():
        markdown = write_report(
            evaluation.results,
            out_dir / name if compare else out_dir,
            all_names,
            evaluation.failures,
            prediction_dir=evaluation.prediction_dir,
            reference_dir=evaluation.reference_dir,
            unmatched_predictions=evaluation.unmatched_predictions,
        )
        print(f"## {name}\n\n{markdown}" if compare else markdown)
    if compare:
        (baseline_name, baseline), *others = runs.items()
        for name, evaluation in others:
            rows = paired_differences(baseline.results, evaluation.results, all_names)
            target = out_dir if len(others) == 1 else out_dir / f"{name}_vs_{baseline_name}"
            print(write_comparison(rows, target, baseline_name, name))
        plot_boxplot({n: r.results for n, r in runs.items()}, all_names, out_dir / "boxplot.png")

    for name, evaluation in runs.items():  # QC written by `segment --statistics` next to the predictions
        qc = read_qc(evaluation.prediction_dir, [r.case_id for r in evaluation.results])
        if qc:
            markdown = render_qc_markdown(qc_versus_dice(evaluation.results, qc, all_names))
            write_text_atomically((out_dir / name if compare else out_dir) / "qc_vs_dice.md", markdown)
            print(markdown)

    failed = [(name, f) for name, r in runs.items() for f in r.failures]
    print(f"Report written to {out_dir}", file=sys.stderr)
    if failed:
        print(f"error: {plural(len(failed), 'case')} failed:", file=sys.stderr)
        for name, failure in failed:
            prefix = f"{name}: " if compare else ""
            print(f"  {prefix}{failure.case_id}: {failure.reason}", file=sys.stderr)
        return 1
    return 0
