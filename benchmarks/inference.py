"""Whole-scan CT inference: ``monai-attn segment`` against the MONAI stock recipe, speed-ups one at a time.

For phantom CT scans of clinical size (``clinical``: 512x512x200 at 0.8x0.8x2.5 mm) and a
large one (``large``: 512x512x600, the same protocol over 1.5 m), generated once into
``--work-dir`` (``monai_attn.synthetic.generate_abdomen_ct_case``, LPS-oriented like a
converted DICOM series), the same weights run as

- ``segment`` (a): ``monai-attn segment`` with its defaults (the Segmenter: crop to the body,
  bf16 autocast where the CPU/GPU has native bf16, overlap 0.25, air windows skipped,
  post-processing, labels inverted to the input grid, NIfTI written);
- ``monai`` (b): MONAI's stock recipe: ``LoadImaged -> EnsureChannelFirstd -> Orientationd(RAS)
  -> Spacingd -> ScaleIntensityRanged``, ``sliding_window_inference`` in fp32 with overlap 0.5
  and Gaussian blending over the whole resampled volume in memory, argmax, ``Invertd``
  (nearest) back to the input grid, ``SaveImaged``;
- ``fp32``, ``no-skip``, ``overlap-0.5`` (c): ``monai-attn segment`` with one speed-up turned
  off (``--precision fp32``, ``--no-skip-air``, ``--overlap 0.5``: the bundle config overrides
  ``precision``, ``skip_empty_windows``, ``overlap``);
- ``no-postprocess`` (d): ``monai-attn segment --no-postprocess``, the raw argmax like (b),
  to separate the post-processing's effect on Dice from the rest of the pipeline's.

Every run is a fresh Python process, so its peak resident set size (RSS) is its own; the
wall time counts from loading the model to the written label file (not the interpreter's
start-up and imports). Each run's time is split into the stages of
:class:`monai_attn.inference.SegmentationResult.timings` (loading the model, preprocessing
including reading, network including windows and stitching, post-processing including the
argmax and the inversion to the input grid, writing); the stock recipe is timed at the same
stage boundaries. Dice against the phantom's labels is computed from the written files
(read and grid-checked with ``monai_attn.evaluation``). With ``--repeats`` > 1 the order of the runs alternates
(forward, then backward) and the median time is reported.

Weights: ``bundles/abdomen_ct_attention_unet`` when it has ``models/model.pt``; otherwise
the bundle's network definition with fixed-seed random weights, for which speed and memory
are meaningful but Dice is not (the output says so). Each run uses ``--threads`` torch
threads (default 1: on a shared machine two threads wait on each other whenever another job
takes a core, which made them 2-5x slower than one here).

Usage::

    python benchmarks/inference.py                          # clinical: every variant; large: (a)
    python benchmarks/inference.py --large-variants segment monai   # the stock recipe on the large scan too
    python benchmarks/inference.py --cases clinical --variants segment monai
    python benchmarks/inference.py --quick                  # tiny phantom and network: smoke test
    python benchmarks/inference.py --device cuda

Timings on a shared machine are noisy; compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import (
    default_work_dir,
    format_machine,
    load_average,
    machine_description,
    markdown_table,
    peak_rss_bytes,
    print_child_result,
    rss_bytes,
    run_child,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "abdomen_ct_attention_unet"
LABEL_NAMES = {1: "spleen", 2: "kidney", 3: "pancreas"}
#: Seed of the phantom data set the benchmark cases are drawn from.
PHANTOM_SEED = 2024
#: Seed of the random weights used when no trained weights exist.
WEIGHT_SEED = 0


@dataclass(frozen=True)
class Case:
    """A phantom scan: matrix size (voxels) and voxel size (mm)."""

    name: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]


CASES = {
    "clinical": Case("clinical", (512, 512, 200), (0.8, 0.8, 2.5)),
    "large": Case("large", (512, 512, 600), (0.8, 0.8, 2.5)),
    "tiny": Case("tiny", (64, 64, 24), (6.4, 6.4, 20.0)),
}


@dataclass(frozen=True)
class Variant:
    """One way of segmenting a scan: the Segmenter with config overrides, or the stock recipe."""

    name: str
    title: str
    overrides: dict[str, Any] | None  # the bundle config ids ``segment``'s options set; None: the stock recipe


VARIANTS = {
    "segment": Variant("segment", "(a) monai-attn segment", {}),
    "monai": Variant("monai", "(b) MONAI stock recipe", None),
    "fp32": Variant("fp32", "(c) segment --precision fp32", {"precision": "fp32"}),
    "no-skip": Variant("no-skip", "(c) segment --no-skip-air", {"skip_empty_windows": False}),
    "overlap-0.5": Variant("overlap-0.5", "(c) segment --overlap 0.5", {"overlap": 0.5}),
    "no-postprocess": Variant("no-postprocess", "(d) segment --no-postprocess", {"postprocess": False}),
}

#: A tiny network on a coarse grid for ``--quick`` (random weights), over the CT bundle's settings.
QUICK_SETTINGS = {
    "network_def": {
        "_target_": "monai_attn.networks.GridAttentionUNet",
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": 4,
        "channels": [4, 8, 16, 32, 64],
    },
    "spacing_mm": [8.0, 8.0, 8.0],
    "roi_size": [32, 32, 32],
    "overlap": 0.25,
}

#: Stages of :attr:`SegmentationResult.timings`, and the time to build the segmenter.
STAGES = ("load model", "preprocess", "network", "postprocess", "write")


# ---------------------------------------------------------------------------------------- inputs


def phantom_paths(case: Case, work_dir: Path) -> tuple[Path, Path]:
    """Image and label NIfTI of ``case`` in the cache, generated on first use (in a separate
    process, so that the generator's working memory does not stay with this one)."""
    folder = work_dir / "phantoms"
    image_path, label_path = folder / "images" / f"{case.name}.nii.gz", folder / "labels" / f"{case.name}.nii.gz"
    if not (image_path.is_file() and label_path.is_file()):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            print(pool.submit(write_phantom, case, image_path, label_path).result(), flush=True)
    return image_path, label_path


def write_phantom(case: Case, image_path: Path, label_path: Path) -> str:
    """Generate the phantom of ``case`` and write it; returns what was written."""
    from monai_attn.synthetic import case_acquisition, generate_abdomen_ct_case
    from monai_attn.synthetic.msd import write_nifti

    # the first case of the data set with LPS axes, the usual layout of scans converted from DICOM
    index = next(i for i in range(1000) if case_acquisition(PHANTOM_SEED, i, case.shape, case.spacing_mm).orientation == "LPS")
    start = time.perf_counter()
    image, label, affine = generate_abdomen_ct_case(PHANTOM_SEED, index, case.shape, case.spacing_mm)
    for path, array in ((label_path, label), (image_path, image)):  # image last: it marks a complete pair
        tmp = path.with_name(f".{path.name}")
        write_nifti(tmp, array, affine)
        os.replace(tmp, path)
    return (
        f"generated phantom {case.name}: {'x'.join(map(str, case.shape))} voxels at "
        f"{'x'.join(f'{s:g}' for s in case.spacing_mm)} mm (seed {PHANTOM_SEED}, case {index}) "
        f"in {time.perf_counter() - start:.0f} s"
    )


@dataclass(frozen=True)
class Model:
    """The weights every variant uses: a bundle folder, or weights with a bundle-style config."""

    config: str  # bundle-style JSON config (network_def, preprocessing, inferer, postprocessing...)
    weights: str
    bundle: str | None  # a bundle folder: Segmenter.from_bundle; None: Segmenter.from_files(weights, config)
    trained: bool
    description: str
    trust: bool = False  # the config may run code ($ expressions): written here, or --trust-config


def resolve_model(args: argparse.Namespace, work_dir: Path) -> Model:
    """``--model/--config``, else the bundle with trained weights, else random weights of its architecture."""
    if args.model:
        if not args.config:
            raise SystemExit("error: --model needs --config (a bundle-style config: network_def, preprocessing, ...)")
        return Model(str(args.config), str(args.model), None, True, f"weights {args.model}", args.trust_config)
    bundle = Path(args.bundle) if args.bundle else BUNDLE
    bundle_common = bundle / "configs" / "common.json"
    bundle_weights = bundle / "models" / "model.pt"
    if not args.quick and not args.random_weights and bundle_common.is_file() and bundle_weights.is_file():
        return Model(str(bundle_common), str(bundle_weights), str(bundle), True, f"trained weights of {_short(bundle)}",
                     args.trust_config)
    if args.bundle and not args.random_weights:
        raise SystemExit(f"error: {bundle}: no configs/common.json with models/model.pt")
    if not bundle_common.is_file():
        raise SystemExit(f"error: {bundle_common} not found; pass --model and --config")
    models = work_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    # the bundle's settings and metadata in one config, so that Segmenter.from_files needs nothing else
    config = json.loads(bundle_common.read_text())
    config["_meta_"] = json.loads((bundle / "configs" / "metadata.json").read_text())
    if args.quick:
        config.update(QUICK_SETTINGS)
        source = "a tiny GridAttentionUNet (--quick)"
    else:
        source = f"the network of {_short(bundle_common)}"
    config_path = models / f"{'quick' if args.quick else bundle.name}_config.json"
    config_path.write_text(json.dumps(config, indent=2))
    weights = models / f"random_seed{WEIGHT_SEED}_{'quick' if args.quick else bundle.name}.pt"
    _write_random_weights(config_path, weights)
    return Model(str(config_path), str(weights), None, False,
                 f"random weights (seed {WEIGHT_SEED}) of {source}: Dice is not meaningful", trust=True)


def _short(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _write_random_weights(config: Path, weights: Path) -> None:
    import torch

    from monai_attn.inference.models import config_file_parser

    torch.manual_seed(WEIGHT_SEED)
    network = config_file_parser(config, trust=True).get_parsed_content("network_def")  # written by this script
    torch.save(network.state_dict(), weights)


def build_segmenter(model: dict[str, Any], overrides: dict[str, Any]):
    """The Segmenter of ``model`` (a :class:`Model` as a dict) with config-id ``overrides``."""
    from monai_attn.inference import Segmenter

    if model["bundle"]:
        return Segmenter.from_bundle(model["bundle"], overrides, trust=model["trust"] or None)
    return Segmenter.from_files(model["weights"], model["config"], overrides, trust=model["trust"])


# ---------------------------------------------------------------------------------------- child


def monai_stock_recipe(
    image_path: str, output_dir: str, network: Any, settings: dict[str, Any], device: str
) -> dict[str, float]:
    """MONAI's usual whole-volume inference recipe, as tutorials and bundles write it; seconds per stage.

    ``settings``: ``spacing_mm``, ``hu_window``, ``roi_size``, ``sw_batch_size`` of the
    model (the same as the Segmenter uses); overlap 0.5, Gaussian blending, fp32.
    """
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import (
        AsDiscreted,
        Compose,
        EnsureChannelFirstd,
        Invertd,
        LoadImaged,
        Orientationd,
        SaveImaged,
        ScaleIntensityRanged,
        Spacingd,
    )

    low, high = settings["hu_window"]
    pre = Compose(
        [
            LoadImaged("image", image_only=True),
            EnsureChannelFirstd("image"),
            Orientationd("image", axcodes="RAS"),
            Spacingd("image", pixdim=tuple(settings["spacing_mm"]), mode="bilinear"),
            ScaleIntensityRanged("image", a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
        ]
    )
    post_labels = Compose(
        [
            AsDiscreted("pred", argmax=True),
            Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True),
        ]
    )
    save = SaveImaged("pred", output_dir=output_dir, output_postfix="", separate_folder=False,
                      output_dtype=np.uint8, resample=False, print_log=False)
    network = network.eval().to(device)
    timings = {}
    tick = time.perf_counter()
    data = pre({"image": image_path})
    timings["preprocess"] = time.perf_counter() - tick
    tick = time.perf_counter()
    with torch.no_grad():
        data["pred"] = sliding_window_inference(
            data["image"][None].to(device), tuple(settings["roi_size"]), settings["sw_batch_size"], network,
            overlap=0.5, mode="gaussian",
        )[0].cpu()
    timings["network"] = time.perf_counter() - tick
    tick = time.perf_counter()
    data = post_labels(data)
    timings["postprocess"] = time.perf_counter() - tick
    tick = time.perf_counter()
    save(data)
    timings["write"] = time.perf_counter() - tick
    return timings


def run_variant(payload: dict[str, Any]) -> dict[str, Any]:
    """Child process: segment one case one way; time, peak memory, seconds per stage, windows run."""
    import torch

    from monai_attn.inference.models import bundle_parser, config_file_parser, load_network

    if payload.get("threads"):
        torch.set_num_threads(payload["threads"])
    model = payload["model"]
    rss_before = rss_bytes()
    device = payload["device"]
    start = time.perf_counter()
    if payload["overrides"] is not None:
        segmenter = build_segmenter(model, {**payload["overrides"], "device": device})
        load_seconds = time.perf_counter() - start
        result = segmenter.segment_to_file(payload["image"], payload["output"])
        windows = result.windows_run
        stages = {"load model": load_seconds, **{s: result.timings.get(s, 0.0) for s in STAGES[1:]}}
    else:
        if model["bundle"]:
            parser = bundle_parser(model["bundle"], trust=model["trust"] or None)
        else:
            parser = config_file_parser(model["config"], trust=model["trust"])
        network = load_network(parser, model["weights"])
        load_seconds = time.perf_counter() - start
        settings = {k: parser.get_parsed_content(k) for k in ("spacing_mm", "hu_window", "roi_size", "sw_batch_size")}
        counted = [0]

        def count_windows(module: torch.nn.Module, inputs: tuple) -> None:
            counted[0] += int(inputs[0].shape[0])

        hook = network.register_forward_pre_hook(count_windows)
        timings = monai_stock_recipe(payload["image"], str(Path(payload["output"]).parent), network, settings, device)
        hook.remove()
        windows = counted[0]
        stages = {"load model": load_seconds, **timings}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    result = {
        "seconds": wall,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_imports_bytes": rss_before,
        "windows_run": windows,
        "stages": stages,
    }
    if device.startswith("cuda"):
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return result


# ---------------------------------------------------------------------------------------- parent


def dice_per_organ(prediction: Path, reference: Path) -> dict[str, float]:
    """Dice per organ between two label-map files on the same grid (checked, as ``monai-attn evaluate`` does).

    Only Dice: the surface metrics of ``monai_attn.evaluation`` take minutes on the noisy label
    maps random weights produce.
    """
    import numpy as np

    from monai_attn.evaluation.cases import check_same_grid, read_label_map

    pred, ref = read_label_map(prediction), read_label_map(reference)
    check_same_grid(pred, ref, prediction, reference)
    scores = {}
    for label, name in LABEL_NAMES.items():
        p, r = pred.array == label, ref.array == label
        total = int(np.count_nonzero(p)) + int(np.count_nonzero(r))
        scores[name] = 2 * int(np.count_nonzero(p & r)) / total if total else math.nan
    return scores


@dataclass
class Run:
    case: str
    variant: str
    repeat: int
    seconds: float
    peak_rss_bytes: int
    rss_after_imports_bytes: int
    windows_run: int
    stages: dict[str, float]
    dice: dict[str, float]
    output: str
    peak_gpu_bytes: int | None = None


def plan_runs(cases: Sequence[str], variants: dict[str, list[str]], repeats: int) -> list[tuple[int, str, str]]:
    """(repeat, case, variant) in run order: forward on even repeats, backward on odd ones."""
    forward = [(case, variant) for case in cases for variant in variants[case]]
    order = []
    for repeat in range(repeats):
        for case, variant in forward if repeat % 2 == 0 else reversed(forward):
            order.append((repeat, case, variant))
    return order


def _gb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e9:.2f}"


def _num(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "–"


def summarize(runs: list[Run], cases: Sequence[str], variants: dict[str, list[str]]) -> dict[str, Any]:
    """Median over repeats per (case, variant), with Dice, agreement with (b) and the speed ratio."""
    rows = {}
    for case in cases:
        for variant in variants[case]:
            mine = [r for r in runs if r.case == case and r.variant == variant]
            rows[(case, variant)] = {
                "seconds": statistics.median(r.seconds for r in mine),
                "peak_rss_bytes": max(r.peak_rss_bytes for r in mine),
                "rss_after_imports_bytes": max(r.rss_after_imports_bytes for r in mine),
                "windows_run": mine[0].windows_run,
                "stages": {s: statistics.median(r.stages[s] for r in mine) for s in STAGES},
                "dice": mine[0].dice,
                "output": mine[0].output,
                "peak_gpu_bytes": max((r.peak_gpu_bytes or 0) for r in mine) if mine[0].peak_gpu_bytes is not None else None,
            }
    for (case, variant), row in rows.items():
        stock = rows.get((case, "monai"))
        row["speedup_vs_monai"] = stock["seconds"] / row["seconds"] if stock else math.nan
        if stock:
            agreement = [d for d in dice_per_organ(Path(row["output"]), Path(stock["output"])).values() if math.isfinite(d)]
            row["agreement_with_monai"] = statistics.fmean(agreement) if agreement else math.nan
        else:
            row["agreement_with_monai"] = math.nan
    return rows


def render(rows: dict[tuple[str, str], dict[str, Any]], precision: dict[str, str]) -> str:
    """The results table and the stage table, in Markdown."""
    table = []
    for (case, variant), row in rows.items():
        dice = row["dice"]
        mean = statistics.fmean(dice.values()) if dice else math.nan
        table.append([
            case, VARIANTS[variant].title, precision[variant], row["windows_run"], f"{row['seconds']:.1f}",
            _gb(row["peak_rss_bytes"]), *(_num(dice[n]) for n in LABEL_NAMES.values()), _num(mean),
            _num(row["agreement_with_monai"]),
            f"{row['speedup_vs_monai']:.2f}x" if math.isfinite(row["speedup_vs_monai"]) else "–",
        ])
    headers = ["case", "variant", "precision", "windows run", "wall (s)", "peak RSS (GB)",
               *(f"Dice {n}" for n in LABEL_NAMES.values()), "mean Dice", "agreement with (b)", "(b) / this"]
    if any(row["peak_gpu_bytes"] is not None for row in rows.values()):
        headers.insert(6, "peak GPU (GB)")
        for line, row in zip(table, rows.values()):
            line.insert(6, _gb(row["peak_gpu_bytes"]))
    stage_rows = []
    for (case, variant), row in rows.items():
        stages = row["stages"]
        other = row["seconds"] - sum(stages.values())
        stage_rows.append([case, VARIANTS[variant].title, *(f"{stages[s]:.1f}" for s in STAGES), f"{other:.1f}",
                           f"{row['seconds']:.1f}"])
    return (
        markdown_table(headers, table, "ll" + "l" + "r" * (len(headers) - 3))
        + "\n\nTime per stage (s): SegmentationResult.timings for segment (preprocess includes reading, network "
        "the sliding windows and stitching, postprocess the argmax and the inversion); the stock recipe timed at "
        "the same boundaries; 'other' is the rest of the wall time.\n\n"
        + markdown_table(["case", "variant", *STAGES, "other", "total"], stage_rows, "ll" + "r" * (len(STAGES) + 2))
    )


def targets(rows: dict[tuple[str, str], dict[str, Any]], trained: bool) -> list[str]:
    """Where the run stands against the issue's targets, and which stage dominates (a)."""
    lines = []
    for (case, variant), row in rows.items():
        if variant == "segment" and (case, "monai") in rows:
            stock = rows[(case, "monai")]
            mean = statistics.fmean(row["dice"].values())
            mean_stock = statistics.fmean(stock["dice"].values())
            verdict = "met" if row["speedup_vs_monai"] >= 4 else "not met"
            lines.append(f"{case}: (b)/(a) = {row['speedup_vs_monai']:.2f}x (target >= 4x: {verdict})")
            if trained:
                ok = "met" if mean >= mean_stock - 0.01 else "not met"
                lines.append(f"{case}: mean Dice (a) {mean:.3f} vs (b) {mean_stock:.3f}, difference {mean - mean_stock:+.3f} "
                             f"(target: no more than 0.01 below (b): {ok})")
            else:
                lines.append(f"{case}: Dice not meaningful with random weights; label agreement (a) vs (b) "
                             f"{row['agreement_with_monai']:.3f}")
        if variant == "segment" and case == "large":
            ok = "met" if row["peak_rss_bytes"] <= 6e9 else "not met"
            lines.append(f"large: (a) peak RSS {row['peak_rss_bytes'] / 1e9:.2f} GB (target <= 6 GB: {ok})")
        if variant == "segment":
            stages = row["stages"]
            top = max(stages, key=stages.get)
            lines.append(f"{case}: (a) spends {100 * stages[top] / row['seconds']:.0f}% of its "
                         f"{row['seconds']:.1f} s in '{top}'")
        if variant == "no-postprocess" and trained and (case, "monai") in rows:
            mean = statistics.fmean(row["dice"].values())
            mean_stock = statistics.fmean(rows[(case, "monai")]["dice"].values())
            lines.append(f"{case}: without post-processing, mean Dice (d) {mean:.3f} vs (b) {mean_stock:.3f}, "
                         f"difference {mean - mean_stock:+.3f}")
        if VARIANTS[variant].title.startswith("(c)") and (case, "segment") in rows:
            gain = row["seconds"] / rows[(case, "segment")]["seconds"]
            lines.append(f"{case}: turning off one speed-up ({VARIANTS[variant].title[4:]}) costs {gain:.2f}x the time of (a)")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=[c for c in CASES if c != "tiny"], default=["clinical", "large"])
    parser.add_argument("--variants", nargs="+", choices=[*VARIANTS, "all"], default=["all"],
                        help="variants for the clinical case (default: all)")
    parser.add_argument("--large-variants", nargs="+", choices=[*VARIANTS, "all"], default=["segment"],
                        help="variants for the large case (default: segment; the stock recipe takes long there)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant; the order alternates")
    parser.add_argument("--work-dir", type=Path, default=default_work_dir(), help="phantoms, weights and outputs")
    parser.add_argument("--bundle", help="bundle folder (default: bundles/abdomen_ct_attention_unet when trained)")
    parser.add_argument("--model", help="weights (state dict or TorchScript) instead of the bundle; needs --config")
    parser.add_argument("--config", help="bundle-style JSON config (network_def, preprocessing, inferer, "
                        "postprocessing...), for --model")
    parser.add_argument("--trust-config", action="store_true",
                        help="let --config or --bundle run code ($ expressions), as segment --trust-config")
    parser.add_argument("--random-weights", action="store_true", help="random weights even when the bundle is trained")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads in each run (default 1: steady on a shared machine; 0: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the results here (default: WORK_DIR/inference.json)")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny phantom and network, every variant")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print_child_result(run_variant(json.loads(args.child)))
        return

    work_dir = args.work_dir.resolve()
    cases = ["tiny"] if args.quick else list(dict.fromkeys(args.cases))
    all_variants = list(VARIANTS)
    chosen = {
        "clinical": all_variants if "all" in args.variants else list(dict.fromkeys(args.variants)),
        "large": all_variants if "all" in args.large_variants else list(dict.fromkeys(args.large_variants)),
        "tiny": all_variants,
    }
    import torch

    from monai_attn.inference.devices import resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_description(args.device)
    print(format_machine(machine), flush=True)
    model = resolve_model(args, work_dir)
    print(f"model: {model.description}", flush=True)
    auto = resolve_precision("auto", torch.device(args.device))
    precision = {name: "fp32" if name in ("monai", "fp32") else auto for name in VARIANTS}
    inputs = {case: phantom_paths(CASES[case], work_dir) for case in cases}

    runs: list[Run] = []
    for repeat, case, variant in plan_runs(cases, chosen, args.repeats):
        image, label = inputs[case]
        output = work_dir / "outputs" / variant / f"{case}.nii.gz"
        output.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": f"{case}/{variant}", "image": str(image), "output": str(output), "device": args.device,
            "threads": args.threads, "model": asdict(model), "overrides": VARIANTS[variant].overrides,
        }
        load = load_average()[0]
        result = run_child(__file__, payload)
        dice = dice_per_organ(output, label)
        run = Run(case, variant, repeat, result["seconds"], result["peak_rss_bytes"], result["rss_after_imports_bytes"],
                  result["windows_run"], result["stages"], dice, str(output), result.get("peak_gpu_bytes"))
        runs.append(run)
        print(f"{case:8s} {VARIANTS[variant].title:30s} {run.seconds:7.1f} s  peak RSS {run.peak_rss_bytes / 1e9:5.2f} GB  "
              f"windows {run.windows_run:4d}  Dice " + " ".join(f"{d:.3f}" for d in dice.values())
              + f"  (load {load:.1f})", flush=True)

    rows = summarize(runs, cases, chosen)
    machine["load_average_end"] = [round(x, 2) for x in load_average()]
    print(f"\nmodel: {model.description}; device {args.device}; {args.repeats} repeat(s); "
          f"load average at the end {' '.join(f'{x:.2f}' for x in machine['load_average_end'])}\n")
    print(render(rows, precision))
    print()
    for line in targets(rows, model.trained):
        print(f"- {line}")
    report = {
        "machine": machine, "model": asdict(model), "device": args.device, "repeats": args.repeats,
        "cases": {c: asdict(CASES[c]) for c in cases}, "runs": [asdict(r) for r in runs],
        "summary": [{"case": c, "variant": v, **row} for (c, v), row in rows.items()],
    }
    json_path = args.json or work_dir / ("inference_quick.json" if args.quick else "inference.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nresults: {json_path}")


if __name__ == "__main__":
    main()
