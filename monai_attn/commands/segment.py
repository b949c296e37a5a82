"""``monai-attn segment``: segment CT scans (NIfTI or DICOM) into labels on their own grid.

Thin wrapper over :class:`monai_attn.inference.Segmenter` and
:mod:`monai_attn.inference.batch`; see docs/segment.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from monai_attn.errors import InputError, brief_reason
from monai_attn.validation import OUTPUT_TYPES, check_segment_arguments

logger = logging.getLogger("monai_attn.segment")

#: Where the default model lives in a source checkout.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "abdomen_ct_attention_unet"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment CT scans (NIfTI, DICOM series, or a folder of cases)",
        description=(
            "Segment spleen, kidneys and pancreas. INPUT is a NIfTI/NRRD/MHA file, a DICOM series folder, "
            "or a folder of cases (image files and/or DICOM series folders); OUTPUT is a file for one case "
            "or a folder for many. Outputs have the input's exact grid."
        ),
    )
    parser.add_argument("-i", "--input", required=True, type=Path, help="scan file, DICOM series folder or folder of cases")
    parser.add_argument("-o", "--output", required=True, type=Path, help="label file (one case) or folder")
    model = parser.add_argument_group("model (default: the abdominal CT bundle)")
    model.add_argument("--bundle", type=Path, help="MONAI bundle folder (configs/inference.json, models/model.pt)")
    model.add_argument("--model", type=Path, help="weights: a state dict (.pt, needs --config) or a TorchScript file")
    model.add_argument("--config", type=Path, help="JSON with 'network_def' and 'segmenter' settings (with --model)")
    run = parser.add_argument_group("inference")
    run.add_argument("--device", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    run.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="autocast precision (default auto)")
    run.add_argument("--overlap", type=float, help="sliding-window overlap fraction (default 0.25)")
    run.add_argument("--roi-size", type=int, nargs=3, metavar=("X", "Y", "Z"), help="window size in voxels")
    run.add_argument("--sw-batch-size", type=int, help="windows per network call (default 2)")
    run.add_argument("--tta", action="store_true", help="mirror test-time augmentation (8x slower)")
    run.add_argument("--no-postprocess", action="store_true", help="keep the raw argmax (no component/hole clean-up)")
    run.add_argument("--no-skip-air", action="store_true", help="run every window, even those entirely in air")
    run.add_argument("--max-memory", metavar="SIZE",
                     help="memory budget, e.g. 8G; larger cases are refused (default: the memory available)")
    run.add_argument("--series-uid", help="SeriesInstanceUID to read when a DICOM folder holds several series")
    out = parser.add_argument_group("outputs")
    out.add_argument("--output-type", nargs="+", choices=OUTPUT_TYPES, default=["nifti"], metavar="TYPE",
                     help="label formats, one or more of nifti, dicom-seg (DICOM input only); default nifti")
    out.add_argument("--save-probabilities", action="store_true", help="also write <case>_probabilities.nii.gz")
    out.add_argument("--preview", action="store_true", help="also write <case>_preview.png")
    out.add_argument("--statistics", action="store_true",
                     help="also write <case>_statistics.json (volume mL, mean HU) and <case>_qc.json (quality control)")
    qc = parser.add_argument_group("quality control")
    qc.add_argument("--strict", action="store_true", help="exit 1 when any case's quality control says fail")
    qc.add_argument("--force", action="store_true",
                    help="segment scans that fail the input checks (not CT in HU, e.g. MR or raw values); "
                    "the findings stay in the QC")
    out.add_argument("--attention-maps", action="store_true", help="also write <case>_attention_gate<k>.nii.gz")
    scale = parser.add_argument_group("scale-out")
    scale.add_argument("--num-parts", type=int, default=1, help="split the sorted cases into N parts")
    scale.add_argument("--part-id", type=int, default=0, help="which part (0..N-1) this process runs")
    parser.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    check_segment_arguments(args)  # before any model or image is read
    from monai_attn.inference.batch import find_cases, run_batch, select_part

    cases = select_part(find_cases(args.input, args.output, args.output_type), args.num_parts, args.part_id)
    if not cases:
        logger.info("part %d of %d holds no case; nothing to do", args.part_id, args.num_parts)
        return 0
    progress = sys.stderr.isatty()
    segmenter = _build_segmenter(args, progress)
    if args.attention_maps and not hasattr(segmenter.network, "forward_with_attention"):
        raise InputError("--attention-maps needs a network with attention gates (forward_with_attention)")
    logger.info(
        "segmenting %d case(s) on %s (%s), roi %s, overlap %.2f",
        len(cases),
        segmenter.device,
        segmenter.precision,
        "x".join(map(str, segmenter.roi_size)),
        segmenter.overlap,
    )

    verdicts: dict[str, str] = {}

    def segment_case(case) -> None:
        result = segmenter.segment_to_file(
            case.input,
            case.output,
            output_types=args.output_type,
            series_uid=args.series_uid,
            save_probabilities=args.save_probabilities,
            preview=args.preview,
            statistics=args.statistics,
            attention_maps=args.attention_maps,
        )
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items() if k != "total")
        logger.info(
            "%s: %.1f s (%s); %d windows run, %d skipped as air -> %s",
            case.case_id,
            result.timings["total"],
            stages,
            result.windows_run,
            result.windows_skipped,
            case.output,
        )
        verdicts[case.case_id] = result.qc.status
        logger.info("%s: %s", case.case_id, result.qc.verdict())

    if len(cases) == 1:
        segment_case(cases[0])  # errors reach the CLI, which prints one line and exits 1
        return _strict_exit(args.strict, verdicts)

    def report(case, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)

    summary = run_batch(segment_case, cases, on_failure=report, progress=progress)
    logger.info("segmented %d of %d cases in %.1f s", len(summary.done), len(cases), summary.seconds)
    counts = {status: sum(v == status for v in verdicts.values()) for status in ("ok", "warn", "fail")}
    logger.info("quality control: %d ok, %d warn, %d fail%s", counts["ok"], counts["warn"], counts["fail"],
                "".join(f"\n  {cid}: {status}" for cid, status in verdicts.items() if status != "ok"))
    if summary.failed:
        print(f"failed {len(summary.failed)} of {len(cases)} cases:", file=sys.stderr)
        for case_id, message in summary.failed:
            print(f"  {case_id}: {message}", file=sys.stderr)
        return 1
    return _strict_exit(args.strict, verdicts)


def _strict_exit(strict: bool, verdicts: dict[str, str]) -> int:
    """1 with ``--strict`` when a case's quality control failed, else 0."""
    failed = [cid for cid, status in verdicts.items() if status == "fail"]
    if strict and failed:
        print(f"error: quality control failed for {len(failed)} case(s): {', '.join(failed)} (--strict)",
              file=sys.stderr)
        return 1
    return 0


def _build_segmenter(args: argparse.Namespace, progress: bool):
    from monai_attn.inference import Segmenter

    overrides = {"progress": progress}
    for name, value in (
        ("device", args.device),
        ("precision", args.precision),
        ("overlap", args.overlap),
        ("roi_size", args.roi_size),
        ("sw_batch_size", args.sw_batch_size),
    ):
        if value is not None:
            overrides[name] = value
    if args.tta:
        overrides["tta"] = True
    if args.force:
        overrides["force"] = True
    if args.no_postprocess:
        overrides["postprocess"] = False
    if args.no_skip_air:
        overrides["skip_air_windows"] = False

    if args.bundle and args.model:
        raise InputError("give either --bundle or --model, not both")
    if args.config and not args.model:
        raise InputError("--config goes with --model")
    bundle = args.bundle or DEFAULT_BUNDLE
    if not args.model and args.bundle is None and not (bundle / "models" / "model.pt").is_file():
        raise InputError(
            "no model: pass --bundle DIR, or --model model.pt --config cfg.json "
            f"(the default bundle {bundle} has no trained weights)"
        )
    try:
        if args.model:
            return Segmenter.from_files(args.model, args.config, **overrides)
        return Segmenter.from_bundle(bundle, **overrides)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError) as err:  # MONAI config errors
        if isinstance(err, InputError):
            raise
        source = (args.config or args.model) if args.model else bundle / "configs" / "inference.json"
        raise InputError(f"the model config cannot be built ({brief_reason(err)})", path=source) from err
