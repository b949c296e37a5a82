"""``monai-attn segment``: segment images with any bundle into labels on their own grid.

CT scans (NIfTI, NRRD/MHA, DICOM) with the abdominal CT bundle (the default), fundus
photographs with ``--bundle retina``, EM sections with ``--bundle cells``. Thin wrapper over
:class:`monai_attn.inference.Segmenter` and :mod:`monai_attn.inference.batch`; options
become overrides of the bundle's config ids. See docs/segment.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monai_attn.bundle.lookup import DEFAULT_BUNDLE_NAME, resolve_bundle
from monai_attn.bundle.settings import BACKENDS, PRECISIONS
from monai_attn.bundle.spec import BundleSpec
from monai_attn.commands.checks import check_segment_arguments
from monai_attn.errors import InputError, brief_reason
from monai_attn.io.limits import parse_memory
from monai_attn.io.output_paths import OUTPUT_TYPES, extra_output_suffixes
from monai_attn.wording import plural

if TYPE_CHECKING:
    from monai_attn.inference.sharding import Shard

logger = logging.getLogger("monai_attn.segment")

#: Bundle used without --bundle/--model.
DEFAULT_BUNDLE = DEFAULT_BUNDLE_NAME
#: Label format of a bundle that names none (``output_types`` in its ``inference.json``), by task.
DEFAULT_OUTPUT_TYPE = {"ct": "nifti", "fundus": "png", "em": "png"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment images with a bundle (CT scans by default; fundus photographs, EM sections)",
        description=(
            "Segment spleen, kidneys and pancreas in CT (default bundle), optic disc and cup in fundus "
            "photographs (--bundle retina) or membranes in EM sections (--bundle cells). INPUT is an image "
            "file (NIfTI/NRRD/MHA, PNG/JPEG/TIFF), a DICOM series folder, or a folder of cases; OUTPUT is a "
            "file for one case or a folder for many. Outputs have the input's exact grid."
        ),
    )
    parser.add_argument("-i", "--input", required=True, type=Path, help="scan file, DICOM series folder or folder of cases")
    parser.add_argument("-o", "--output", required=True, type=Path, help="label file (one case) or folder")
    model = parser.add_argument_group("model (default: the abdominal CT bundle)")
    model.add_argument("--bundle", help="bundle: ct, retina, cells, a bundle name, or a bundle folder")
    model.add_argument("--model", type=Path,
                       help="weights: a TorchScript file exported from a bundle, or a state dict (.pt, needs --config)")
    model.add_argument("--config", type=Path,
                       help="a bundle-style JSON config (network_def, preprocessing, inferer, postprocessing; with --model)")
    model.add_argument("--trust-config", action="store_true",
                       help="let a --bundle folder, --config or TorchScript config from outside the package run code "
                       "($ expressions, any _target_); MONAI configs are code: only for configs you trust")
    run = parser.add_argument_group("inference")
    run.add_argument("--device", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="network precision (default from the bundle: auto, i.e. bf16 where the CPU or GPU has it "
                     "natively); int8: the network quantised, on the CPU in OpenVINO (CT bundle)")
    run.add_argument("--backend", choices=BACKENDS,
                     help="where the network runs (default from the bundle): auto (the faster of torch and openvino on "
                     "this CPU, timed once and remembered; torch where openvino cannot run), torch, or openvino (CPU; "
                     "pip install \"monai-attn[openvino]\"; per 96^3 window about 2.9x faster in fp32 and 2.4x in bf16; "
                     "the converted network is kept in MONAI_ATTN_CACHE_DIR or ~/.cache/monai-attn; docs/benchmarks.md)")
    run.add_argument("--overlap", type=float, help="sliding-window overlap fraction (default from the bundle: 0.25)")
    run.add_argument("--roi-size", type=int, nargs="+", metavar="N",
                     help="window size in voxels, one number per dimension: 3 for CT, 2 for the 2-D bundles "
                     "(default from the bundle: CT 96 96 96, retina 128 128, cells 192 192)")
    run.add_argument("--sw-batch-size", type=int,
                     help="windows per network call (default from the bundle: 1 for CT, 4 for the 2-D bundles)")
    run.add_argument("--tta", action="store_true", help="mirror test-time augmentation (8x slower)")
    run.add_argument("--no-postprocess", action="store_true", help="keep the raw argmax (no component/hole clean-up)")
    run.add_argument("--no-skip-air", action="store_true", help="run every window, even those entirely in air")
    run.add_argument("--no-fit-roi", action="store_true",
                     help="keep --roi-size windows on scans thinner than them (default: a window is never deeper than "
                     "the scan, and grows in-plane within the same voxels: a thin slab in one flat window)")
    run.add_argument("--adaptive-roi", action=argparse.BooleanOptionalAction, default=None,
                     help="windows as large as --window-memory allows (at least --roi-size), shaped to tile the "
                     "cropped scan with the fewest voxels computed, instead of --roi-size windows (default from the "
                     "bundle: off; faster, but on a 600-slice phantom the CT model lost the spleen with them; "
                     "docs/benchmarks.md)")
    run.add_argument("--look-first", action=argparse.BooleanOptionalAction, default=None,
                     help="look at the scan on a 1.5x coarser grid first, then segment at full resolution only in the "
                     "box of the organs found, with a margin; the whole scan when the look does not find every organ "
                     "(default from the bundle; CT only; docs/benchmarks.md)")
    run.add_argument("--window-memory", metavar="SIZE",
                     help="memory for the network's activations with --adaptive-roi, e.g. 520M (default from the "
                     "bundle; without one, a quarter of the available memory, at most 2G, or half a GPU's free "
                     "memory)")
    run.add_argument("--max-memory", metavar="SIZE",
                     help="memory budget, e.g. 8G; larger cases are refused (default: the memory available)")
    run.add_argument("--series-uid", help="SeriesInstanceUID to read when a DICOM folder holds several series")
    out = parser.add_argument_group("outputs")
    out.add_argument("--output-type", nargs="+", choices=OUTPUT_TYPES, metavar="TYPE",
                     help="label formats, one or more of nifti, dicom-seg (DICOM input only), png (2-D bundles); "
                     "default: nifti for CT, png for 2-D bundles")
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
    scale = parser.add_argument_group(
        "scale-out", "under torchrun (WORLD_SIZE > 1) the processes share the cases of the part, one GPU each"
    )
    scale.add_argument("--num-parts", type=int, default=1, help="split the sorted cases into N parts")
    scale.add_argument("--part-id", type=int, default=0, help="which part (0..N-1) this process runs")
    parser.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    """Segment the cases of this part; under torchrun, this rank's shard of them (see sharding.py)."""
    if args.bundle and args.model:
        raise InputError("give either --bundle or --model, not both")
    if args.config and not args.model:
        raise InputError("--config goes with --model")
    for option in ("model", "config"):
        value = getattr(args, option)
        if value is not None and not Path(value).exists():
            raise InputError(f"no such file (--{option})", path=value)
    if not args.model:
        args.bundle = resolve_bundle(args.bundle or DEFAULT_BUNDLE)  # the one lookup of the run
    spec = _spec_of(args)
    task = spec.task if spec is not None else "ct"
    if args.output_type is None:
        args.output_type = list(spec.output_types if spec is not None and spec.output_types
                                else [DEFAULT_OUTPUT_TYPE.get(task, "nifti")])
    if task != "ct" and {"nifti", "dicom-seg"} & set(args.output_type):
        raise InputError(f"--output-type {' '.join(args.output_type)}: a 2-D bundle writes png labels")
    if task == "ct" and "png" in args.output_type:
        raise InputError("--output-type png is for 2-D bundles; CT labels are nifti or dicom-seg")
    overrides = _overrides(args)
    if spec is not None:
        overrides = spec.check_overrides(overrides)  # options this bundle has, with valid values
    check_segment_arguments(args)  # before any model or image is read
    from monai_attn.inference.sharding import current_shard, process_group

    with process_group(current_shard()) as shard:
        return _segment_shard(args, shard, spec, overrides)


def _segment_shard(args: argparse.Namespace, shard: Shard, spec: BundleSpec | None, overrides: dict) -> int:
    from monai_attn.inference.batch import find_cases, run_batch
    from monai_attn.inference.sharding import gather_summary, select_shard

    output_types = args.output_type
    extras = extra_output_suffixes(probabilities=args.save_probabilities, attention_maps=args.attention_maps,
                                   statistics=args.statistics, preview=args.preview)
    cases = select_shard(find_cases(args.input, args.output, output_types, extras), args.num_parts, args.part_id,
                         shard)
    if not cases and not shard.distributed:
        logger.info("part %d of %d holds no case; nothing to do", args.part_id, args.num_parts)
        return 0
    if args.device is None and shard.device is not None:
        overrides = {**overrides, "device": shard.device}
    progress = sys.stderr.isatty()
    segmenter = _build_segmenter(args, progress, spec, overrides)
    if args.attention_maps and not hasattr(segmenter.network, "forward_with_attention"):
        raise InputError("--attention-maps needs a network with attention gates (forward_with_attention)")
    inferer = segmenter.inferer
    backend = getattr(inferer, "backend", "torch")
    _check_backend(args, backend, segmenter)
    roi = "x".join(map(str, inferer.roi_size))
    budget = getattr(inferer, "memory_budget_mb", None)
    memory = f"{budget:g} MiB" if budget is not None else "the default window memory"
    windows = (f"adaptive windows (at least {roi}, within {memory}), overlap {inferer.overlap:.3g}"
               if getattr(inferer, "adaptive_roi", False) else f"windows {roi}, overlap {inferer.overlap:.2f}")
    if getattr(inferer, "coarse_factor", None) and getattr(inferer, "enabled", False):
        windows += f", a {inferer.coarse_factor:g}x coarser look first"
    logger.info("segmenting %s with %s %s on %s (%s, %s), %s", plural(len(cases), "case"), segmenter.model_name,
                segmenter.model_version, segmenter.device, segmenter.precision, backend, windows)
    element = "voxel" if len(inferer.roi_size) == 3 else "pixel"

    verdicts: dict[str, str] = {}

    def segment_case(case) -> None:
        result = segmenter.segment_to_file(
            case.input,
            case.output,
            output_types=output_types,
            series_uid=args.series_uid,
            save_probabilities=args.save_probabilities,
            preview=args.preview,
            statistics=args.statistics,
            attention_maps=args.attention_maps,
        )
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items() if k != "total")
        window = f" of {'x'.join(map(str, result.window))}" if result.window else ""
        look = f"{result.look}; " if result.look else ""
        logger.info("%s: %.1f s (%s); %s%s%s run in %s, %d skipped as empty, each %s computed %.1fx -> %s",
                    case.case_id, result.timings["total"], stages, look, plural(result.windows_run, "window"), window,
                    result.backend, result.windows_skipped, element, result.voxels_computed / max(result.voxels_needed, 1),
                    case.output)
        if result.qc is not None:
            verdicts[case.case_id] = result.qc.status
            logger.info("%s: %s", case.case_id, result.qc.verdict())

    if len(cases) == 1 and not shard.distributed:
        segment_case(cases[0])  # errors reach the CLI, which prints one line and exits 1
        return _strict_exit(args.strict, verdicts)

    def report(case, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)

    summary, verdicts = gather_summary(run_batch(segment_case, cases, on_failure=report, progress=progress),
                                       verdicts, shard)
    if not shard.is_main:  # rank 0 prints the summary of every rank; the exit code is the same on all
        return 1 if summary.failed else _strict_exit(args.strict, verdicts, quiet=True)
    total = len(summary.done) + len(summary.failed)
    logger.info("segmented %d of %d cases in %.1f s", len(summary.done), total, summary.seconds)
    counts = {status: sum(v == status for v in verdicts.values()) for status in ("ok", "warn", "fail")}
    if verdicts:
        logger.info("quality control: %d ok, %d warn, %d fail%s", counts["ok"], counts["warn"], counts["fail"],
                    "".join(f"\n  {cid}: {status}" for cid, status in verdicts.items() if status != "ok"))
    if summary.failed:
        print(f"failed {len(summary.failed)} of {total} cases:", file=sys.stderr)
        for case_id, message in summary.failed:
            print(f"  {case_id}: {message}", file=sys.stderr)
        return 1
    return _strict_exit(args.strict, verdicts)


def _strict_exit(strict: bool, verdicts: dict[str, str], quiet: bool = False) -> int:
    """1 with ``--strict`` when a case's quality control failed, else 0 (``quiet``: say nothing)."""
    failed = [cid for cid, status in verdicts.items() if status == "fail"]
    if strict and failed:
        if quiet:
            return 1
        print(f"error: quality control failed for {plural(len(failed), 'case')}: {', '.join(failed)} (--strict)",
              file=sys.stderr)
        return 1
    return 0


def _check_backend(args: argparse.Namespace, backend: str, segmenter) -> None:
    """Refuse, before the first case, a back end that cannot run here."""
    if backend == "openvino":
        from monai_attn.inference.backends import check_openvino_run

        check_openvino_run(segmenter.network, segmenter.device, args.attention_maps)


def _spec_of(args: argparse.Namespace) -> BundleSpec | None:
    """The spec of the bundle, config or TorchScript file the run uses, read without loading a model
    (None for a TorchScript file that embeds no config: its loader says so)."""
    if not args.model:
        return BundleSpec.read(args.bundle)
    if args.config:
        return BundleSpec.from_config_file(args.config)
    return BundleSpec.from_torchscript(args.model)


def _overrides(args: argparse.Namespace) -> dict:
    """The config ids the options set (only those given), as :data:`~monai_attn.bundle.settings.SETTINGS` names them."""
    overrides = {key: value for key, value in (
        ("device", args.device),
        ("precision", args.precision),
        ("backend", args.backend),
        ("overlap", args.overlap),
        ("roi_size", args.roi_size),
        ("sw_batch_size", args.sw_batch_size),
    ) if value is not None}
    for flag, key, value in (
        (args.tta, "tta", True),
        (args.force, "force", True),
        (args.no_postprocess, "postprocess", False),
        (args.no_skip_air, "skip_empty_windows", False),
        (args.no_fit_roi, "fit_roi_to_scan", False),
    ):
        if flag:
            overrides[key] = value
    if args.adaptive_roi is not None:
        overrides["adaptive_roi"] = args.adaptive_roi
    if args.look_first is not None:
        overrides["look_first"] = args.look_first
    if args.window_memory is not None:
        overrides["memory_budget_mb"] = parse_memory(args.window_memory, "--window-memory") / 2**20
    return overrides


def _build_segmenter(args: argparse.Namespace, progress: bool, spec: BundleSpec | None, overrides: dict):
    """The segmenter of --bundle (default: the CT bundle) or --model/--config, ``overrides`` (the
    options as config ids, checked by the bundle's spec) applied."""
    from monai_attn.inference import Segmenter

    if spec is not None and spec.declares("progress"):
        overrides = {**overrides, "progress": progress}
    try:
        if args.model:
            return Segmenter.from_files(args.model, args.config, overrides, trust=args.trust_config)
        return Segmenter.from_bundle(args.bundle, overrides, trust=args.trust_config or None)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError) as err:  # MONAI config errors
        if isinstance(err, InputError):
            raise
        source = (args.config or args.model) if args.model else args.bundle
        raise InputError(f"the model config cannot be built ({brief_reason(err)})", path=source) from err
