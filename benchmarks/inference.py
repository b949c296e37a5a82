"""Whole-scan CT inference as users run it: ``monai-attn segment`` against MONAI's and nnU-Net's engines.

Phantom CT scans at 0.8x0.8x2.5 mm, 512x512 in-plane and 100, 200 (``clinical``), 400 and
600 (``large``) slices, and a 20-slice slab at 2 mm (``slab``, 40 mm: thinner than a window),
generated once into ``--work-dir`` (``monai_attn.synthetic.generate_abdomen_ct_case``,
LPS-oriented like a converted DICOM series), are segmented with the same weights by

- ``segment`` (a): ``monai-attn segment`` with its defaults (the Segmenter: crop to the body,
  bf16 autocast where the CPU/GPU has native bf16, 96^3 windows with overlap 0.25, air
  windows skipped, post-processing, labels inverted to the input grid, NIfTI written);
- ``adaptive`` (a): the same with the bundle config override ``adaptive_roi=true`` (the
  largest window that fits the default memory budget, up to the whole cropped volume);
- ``windows-2m`` (a), ``windows-2m-fp32`` (c): adaptive windows within 520 MB of activations
  (about 2.0 M voxels in bf16, 1.3 M in fp32) at overlap 0.125: each voxel computed 1.1-1.4
  times instead of 2.5, without the whole-scan windows of ``adaptive``;
- ``monai`` (b): MONAI's stock recipe: ``LoadImaged -> EnsureChannelFirstd -> Orientationd(RAS)
  -> Spacingd -> ScaleIntensityRanged``, ``sliding_window_inference`` in fp32 with overlap 0.5
  and Gaussian blending over the whole resampled volume in memory, argmax, ``Invertd``
  (nearest) back to the input grid, ``SaveImaged``;
- ``nnunet`` (b): nnU-Net v2's sliding-window engine
  (``nnUNetPredictor.predict_sliding_window_return_logits``, tile step 0.5, Gaussian, no
  mirroring, fp32 on the CPU) in place of the Segmenter's inferer, with the Segmenter's own
  preprocessing and post-processing (``nnunet_engine.py``); skipped with a message when
  nnunetv2 is not installed (it is not a dependency of monai-attn);
- ``fp32``, ``no-skip``, ``overlap-0.5``, ``no-fit-roi``, ``no-look`` (c): ``segment`` with one speed-up
  turned off (config overrides ``precision``, ``skip_empty_windows``, ``overlap``, ``fit_roi_to_scan``,
  ``look_first``: the whole body crop at full resolution, without the coarse look first);
- ``look-first`` (a): ``segment --look-first`` (config override ``look_first``);
- ``no-postprocess`` (d): ``segment --no-postprocess``, the raw argmax like (b);
- ``openvino``, ``openvino-fp32``, ``torch``, ``torch-fp32`` (e): ``segment --backend`` each
  back end (config override ``backend``), in the default precision and in fp32 (what CPUs
  without native bf16 run); (a) and ``fp32`` run the bundle's ``backend: auto``, the back end
  one timed window says is faster here (torch where OpenVINO is not installed). Converted
  networks and the ``auto`` choice are kept in ``WORK_DIR/cache`` (``MONAI_ATTN_CACHE_DIR``)
  and made before the timed runs, as a user's first run makes them once (for the ``roi_size``
  window, then one untimed pass over each case for the windows fitted to thin scans), so the
  timed runs load them; the ``openvino`` variants are skipped with a
  message when the ``openvino`` extra is not installed;
- ``int8``, ``int8-look``, ``int8-no-bf16`` (e): ``segment --precision int8`` (the network quantised by NNCF in
  OpenVINO; quantised before the timed runs like the conversions above), the operations that
  stay in floating point in bf16 where the CPU has it, and in fp32 as on a CPU without native
  bf16 (``int8-no-bf16``: the child process is told the CPU has none).

All runs form one interleaved sequence (every variant of a case, then the next case; with
``--repeats`` 2 the second pass runs backwards), each in a fresh Python process with the
torch threads torch picks by default (``--threads N`` pins them), so its peak resident set
size (RSS) is its own. The wall time counts from loading the model to the written label file
(not the interpreter's start-up and imports), split into the stages of
:class:`monai_attn.inference.SegmentationResult.timings`; the stock recipe is timed at the
same stage boundaries. Dice against the phantom's labels is computed from the written files.
``--scan PATH`` adds scans of one's own (a real CT), timed the same way; their labels, if
any, are not read (score real scans with ``monai-attn evaluate``), so their Dice is "–".
A variant whose time, extrapolated linearly in voxels from a smaller case of the same run,
would pass ``--max-seconds`` (default 300) is skipped on that case, and the output says so.

Weights: ``bundles/abdomen_ct_attention_unet`` when it has ``models/model.pt``; otherwise
the bundle's network definition with fixed-seed random weights, for which speed and memory
are meaningful but Dice is not (the output says so).

Usage::

    python benchmarks/inference.py --plot docs/inference_scaling.png   # four sizes, (a), (a) adaptive, (b)
    python benchmarks/inference.py --cases clinical --variants all --repeats 2
    python benchmarks/inference.py --cases slab --scan /data/ct/case_001.nii.gz --variants segment fp32 monai
    python benchmarks/inference.py --quick                  # tiny phantom and network: smoke test
    python benchmarks/inference.py --device cuda

Timings on a shared machine are noisy; compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
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
    """A scan: matrix size (voxels) and voxel size (mm); ``path`` for a scan of the user's own
    (``--scan``: timed, no reference labels), None for a generated phantom."""

    name: str
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    path: str | None = None


CASES = {
    "slab": Case("slab", (512, 512, 20), (0.8, 0.8, 2.0)),
    "short": Case("short", (512, 512, 100), (0.8, 0.8, 2.5)),
    "clinical": Case("clinical", (512, 512, 200), (0.8, 0.8, 2.5)),
    "long": Case("long", (512, 512, 400), (0.8, 0.8, 2.5)),
    "large": Case("large", (512, 512, 600), (0.8, 0.8, 2.5)),
    "tiny": Case("tiny", (64, 64, 24), (6.4, 6.4, 20.0)),
}


@dataclass(frozen=True)
class Variant:
    """One way of segmenting a scan: an engine, and for the Segmenter's engines config overrides."""

    name: str
    title: str
    engine: str  # "segment": the Segmenter; "nnunet": the Segmenter with nnU-Net's inferer; "monai": the stock recipe
    overrides: dict[str, Any]  # bundle config ids, as ``segment``'s options set them
    native_bf16: bool = True  # False: run as on a CPU without native bf16 (int8's floating-point parts in fp32)


#: The ``windows-2m`` variants' overrides: adaptive windows within 520 MiB of activations, overlap 0.125.
WINDOWS_2M = {"adaptive_roi": True, "memory_budget_mb": 520, "overlap": 0.125}
VARIANTS = {
    "segment": Variant("segment", "(a) monai-attn segment", "segment", {}),
    "adaptive": Variant("adaptive", "(a) segment adaptive_roi=true", "segment", {"adaptive_roi": True}),
    "windows-2m": Variant("windows-2m", "(a) segment, windows up to 520 MB, overlap 0.125", "segment", WINDOWS_2M),
    "windows-2m-fp32": Variant("windows-2m-fp32", "(c) windows up to 520 MB, overlap 0.125, fp32", "segment",
                               {**WINDOWS_2M, "precision": "fp32"}),
    "monai": Variant("monai", "(b) MONAI stock recipe", "monai", {}),
    "nnunet": Variant("nnunet", "(b) nnU-Net v2 engine", "nnunet", {}),
    "fp32": Variant("fp32", "(c) segment --precision fp32", "segment", {"precision": "fp32"}),
    "no-skip": Variant("no-skip", "(c) segment --no-skip-air", "segment", {"skip_empty_windows": False}),
    "overlap-0.5": Variant("overlap-0.5", "(c) segment --overlap 0.5", "segment", {"overlap": 0.5}),
    "no-fit-roi": Variant("no-fit-roi", "(c) segment --no-fit-roi", "segment", {"fit_roi_to_scan": False}),
    "no-look": Variant("no-look", "(c) segment --no-look-first", "segment", {"look_first": False}),
    "look-first": Variant("look-first", "(a) segment --look-first", "segment", {"look_first": True}),
    "no-postprocess": Variant("no-postprocess", "(d) segment --no-postprocess", "segment", {"postprocess": False}),
    "openvino": Variant("openvino", "(e) segment --backend openvino", "segment", {"backend": "openvino"}),
    "openvino-fp32": Variant("openvino-fp32", "(e) --backend openvino --precision fp32", "segment",
                             {"backend": "openvino", "precision": "fp32"}),
    "torch": Variant("torch", "(e) segment --backend torch", "segment", {"backend": "torch"}),
    "torch-fp32": Variant("torch-fp32", "(e) --backend torch --precision fp32", "segment",
                          {"backend": "torch", "precision": "fp32"}),
    "int8": Variant("int8", "(e) segment --precision int8", "segment", {"precision": "int8"}),
    "int8-look": Variant("int8-look", "(e) --precision int8 --look-first", "segment",
                         {"precision": "int8", "look_first": True}),
    "int8-no-bf16": Variant("int8-no-bf16", "(e) --precision int8, CPU without bf16", "segment",
                            {"precision": "int8"}, native_bf16=False),
}
#: Variants that must run OpenVINO: skipped where it is not installed (the others may run it
#: through the bundle's ``backend: auto`` where it is).
OPENVINO_VARIANTS = ("openvino", "openvino-fp32", "int8", "int8-look", "int8-no-bf16")
#: The comparison run by default: the two ways of running ``segment`` and the two baselines.
DEFAULT_VARIANTS = ("segment", "adaptive", "monai", "nnunet")
#: Variants that the baselines' speed ratios are computed against.
BASELINES = ("monai", "nnunet")

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


def scan_case(path: str, taken: Sequence[str]) -> Case:
    """A ``--scan`` (any file or DICOM folder ``segment`` reads) as a case named after its file."""
    from monai_attn.io import load_image

    image = load_image(path, expect="ct")
    stem = Path(path).name.split(".")[0] or "scan"
    name = next(n for n in (stem, *(f"{stem}-{i}" for i in range(2, 1000))) if n not in taken)
    return Case(name, tuple(int(n) for n in image.shape[1:]), tuple(float(v) for v in image.pixdim), str(path))


def write_phantom(case: Case, image_path: Path, label_path: Path) -> str:
    """Generate the phantom of ``case`` and write it; returns what was written."""
    from monai_attn.synthetic import case_acquisition, generate_abdomen_ct_case
    from monai_attn.io.writers import write_nifti

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

    from monai_attn.bundle.configs import config_file_parser

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


def prime_cache(payload: dict[str, Any]) -> dict[str, Any]:
    """Child process: convert the network for the ``roi_size`` window (and time the ``auto``
    choice) into the cache, as a user's first run does, then segment each of ``images`` once
    (untimed), so that the windows fitted to a thin scan are converted (int8: quantised) too;
    seconds taken and the back end chosen for the ``roi_size`` window."""
    import torch

    emulate_cpu(payload)
    start = time.perf_counter()
    segmenter = build_segmenter(payload["model"], {**payload["overrides"], "device": payload["device"]})
    inferer = segmenter.inferer
    channels = int(getattr(segmenter.network, "in_channels", 1))
    inferer(torch.full((1, channels, *inferer.roi_size), 0.5), segmenter.network)
    backend = inferer.counts.backend
    for image in payload.get("images", ()):
        segmenter.segment(image)
    return {"seconds": time.perf_counter() - start, "backend": backend}


def emulate_cpu(payload: dict[str, Any]) -> None:
    """Child process: for a variant with ``native_bf16`` False, the package sees a CPU without native bf16."""
    if payload.get("native_bf16", True):
        return
    import monai_attn.inference.backends as backends
    import monai_attn.inference.devices as devices

    devices.cpu_has_native_bf16 = backends.cpu_has_native_bf16 = lambda: False


def run_variant(payload: dict[str, Any]) -> dict[str, Any]:
    """Child process: segment one case one way; time, peak memory, seconds per stage, windows run,
    and for the Segmenter's inferer the voxels computed per voxel needed and the window size."""
    import torch

    from monai_attn.bundle.configs import bundle_parser, config_file_parser
    from monai_attn.inference.models import load_network

    if payload.get("threads"):
        torch.set_num_threads(payload["threads"])
    emulate_cpu(payload)
    model = payload["model"]
    rss_before = rss_bytes()
    device = payload["device"]
    engine = payload["engine"]
    compute_ratio, roi = None, None
    start = time.perf_counter()
    if engine in ("segment", "nnunet"):
        segmenter = build_segmenter(model, {**payload["overrides"], "device": device})
        if engine == "nnunet":
            from nnunet_engine import NnUNetEngine

            inferer = segmenter.inferer
            segmenter.inferer = NnUNetEngine(inferer.roi_size, inferer.num_classes or segmenter.network.out_channels,
                                             str(segmenter.device))
        load_seconds = time.perf_counter() - start
        result = segmenter.segment_to_file(payload["image"], payload["output"])
        stages = {"load model": load_seconds, **{s: result.timings.get(s, 0.0) for s in STAGES[1:]}}
        if engine == "nnunet":
            windows = segmenter.inferer.windows_run
        else:
            windows, counts = result.windows_run, segmenter.inferer.counts
            compute_ratio, roi = counts.voxels_computed / counts.voxels_needed, list(counts.roi_size)
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
        "compute_ratio": compute_ratio,
        "roi_size": roi,
        "stages": stages,
        "threads": torch.get_num_threads(),
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
    compute_ratio: float | None  # voxels computed / voxels needed (the Segmenter's inferer only)
    roi_size: list[int] | None
    stages: dict[str, float]
    dice: dict[str, float]
    output: str
    threads: int
    peak_gpu_bytes: int | None = None


def plan_runs(cases: Sequence[str], variants: Sequence[str], repeats: int) -> list[tuple[int, str, str]]:
    """(repeat, case, variant) in run order: forward on even repeats, backward on odd ones."""
    forward = [(case, variant) for case in cases for variant in variants]
    order = []
    for repeat in range(repeats):
        for case, variant in forward if repeat % 2 == 0 else reversed(forward):
            order.append((repeat, case, variant))
    return order


def estimated_seconds(runs: Sequence[Run], case: str, variant: str) -> tuple[float, str] | None:
    """Time of ``variant`` on ``case`` extrapolated linearly in voxels from its largest case run so far."""
    done = [r for r in runs if r.variant == variant]
    if not done:
        return None
    base = max(done, key=lambda r: math.prod(CASES[r.case].shape))
    scale = math.prod(CASES[case].shape) / math.prod(CASES[base.case].shape)
    return base.seconds * scale, base.case


def _gb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e9:.2f}"


def _num(x: float | None, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if x is not None and math.isfinite(x) else "–"


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if math.isfinite(x) else "–"


def _shape(case: str) -> str:
    shape = "x".join(map(str, CASES[case].shape))
    return f"{case} {shape}" if CASES[case].path else shape


def summarize(runs: list[Run]) -> dict[tuple[str, str], dict[str, Any]]:
    """Median over repeats per (case, variant) in run order, with Dice, agreement with (b) and speed ratios."""
    rows = {}
    for case, variant in dict.fromkeys((r.case, r.variant) for r in runs):
        mine = [r for r in runs if r.case == case and r.variant == variant]
        rows[(case, variant)] = {
            "seconds": statistics.median(r.seconds for r in mine),
            "seconds_all": [round(r.seconds, 2) for r in mine],
            "peak_rss_bytes": max(r.peak_rss_bytes for r in mine),
            "rss_after_imports_bytes": max(r.rss_after_imports_bytes for r in mine),
            "windows_run": mine[0].windows_run,
            "compute_ratio": mine[0].compute_ratio,
            "roi_size": mine[0].roi_size,
            "stages": {s: statistics.median(r.stages[s] for r in mine) for s in STAGES},
            "dice": mine[0].dice,
            "output": mine[0].output,
            "peak_gpu_bytes": max((r.peak_gpu_bytes or 0) for r in mine) if mine[0].peak_gpu_bytes is not None else None,
        }
    for (case, variant), row in rows.items():
        for baseline in BASELINES:
            other = rows.get((case, baseline))
            row[f"speedup_vs_{baseline}"] = other["seconds"] / row["seconds"] if other else math.nan
        stock = rows.get((case, "monai"))
        agreement = [d for d in dice_per_organ(Path(row["output"]), Path(stock["output"])).values()
                     if math.isfinite(d)] if stock else []
        row["agreement_with_monai"] = statistics.fmean(agreement) if agreement else math.nan
    return rows


def render(rows: dict[tuple[str, str], dict[str, Any]], precision: dict[str, str]) -> str:
    """The results table, the stage table and the scaling table, in Markdown."""
    table = []
    for (case, variant), row in rows.items():
        dice = row["dice"]
        mean = statistics.fmean(dice.values()) if dice else math.nan
        table.append([
            _shape(case), VARIANTS[variant].title, precision[variant], row["windows_run"], _num(row["compute_ratio"], 2),
            f"{row['seconds']:.1f}", _gb(row["peak_rss_bytes"]), *(_num(dice[n]) for n in LABEL_NAMES.values()),
            _num(mean), _num(row["agreement_with_monai"]),
            *(_ratio(row[f"speedup_vs_{b}"]) for b in BASELINES),
        ])
    headers = ["case", "variant", "precision", "windows run", "computed / needed", "wall (s)", "peak RSS (GB)",
               *(f"Dice {n}" for n in LABEL_NAMES.values()), "mean Dice", "agreement with MONAI",
               "MONAI / this", "nnU-Net / this"]
    if any(row["peak_gpu_bytes"] is not None for row in rows.values()):
        headers.insert(7, "peak GPU (GB)")
        for line, row in zip(table, rows.values()):
            line.insert(7, _gb(row["peak_gpu_bytes"]))
    stage_rows = []
    for (case, variant), row in rows.items():
        stages = row["stages"]
        other = row["seconds"] - sum(stages.values())
        stage_rows.append([_shape(case), VARIANTS[variant].title, *(f"{stages[s]:.1f}" for s in STAGES), f"{other:.1f}",
                           f"{row['seconds']:.1f}"])
    cases = list(dict.fromkeys(case for case, _ in rows))
    variants = list(dict.fromkeys(variant for _, variant in rows))
    scaling = []
    for case in cases:
        cells = [_shape(case), f"{math.prod(CASES[case].shape) / 1e6:.0f}"]
        for variant in variants:
            row = rows.get((case, variant))
            cells.append(f"{row['seconds']:.1f} s / {_gb(row['peak_rss_bytes'])} GB" if row else "skipped")
        scaling.append(cells)
    return (
        markdown_table(headers, table, "ll" + "l" + "r" * (len(headers) - 3))
        + "\n\nTime per stage (s): SegmentationResult.timings for segment (preprocess includes reading, network "
        "the sliding windows and stitching, postprocess the argmax and the inversion); the stock recipe timed at "
        "the same boundaries; 'other' is the rest of the wall time.\n\n"
        + markdown_table(["case", "variant", *STAGES, "other", "total"], stage_rows, "ll" + "r" * (len(STAGES) + 2))
        + "\n\nScaling with volume size (wall time / peak RSS):\n\n"
        + markdown_table(["case", "voxels (M)", *(VARIANTS[v].title for v in variants)], scaling)
    )


def targets(rows: dict[tuple[str, str], dict[str, Any]], trained: bool) -> list[str]:
    """Where the run stands against the targets of the speed work, and which stage dominates (a)."""
    lines = []
    for (case, variant), row in rows.items():
        if variant not in ("segment", "adaptive", "windows-2m", "windows-2m-fp32"):
            continue
        name = f"{_shape(case)} {VARIANTS[variant].title}"
        for baseline in BASELINES:
            other = rows.get((case, baseline))
            if other is None:
                continue
            speedup = row[f"speedup_vs_{baseline}"]
            lines.append(f"{name}: {VARIANTS[baseline].title[4:]} / this = {speedup:.2f}x "
                         f"(target >= 10x: {'met' if speedup >= 10 else 'not met'})")
            if trained:
                present = [n for n in LABEL_NAMES.values() if not math.isnan(row["dice"][n] - other["dice"][n])]
                if not present:  # no organ in the scan (a slab above them)
                    continue
                worst = round(min(row["dice"][n] - other["dice"][n] for n in present), 3) + 0.0
                lines.append(f"{name}: Dice per organ at worst {worst:+.3f} against {VARIANTS[baseline].title[4:]} "
                             f"(target: within 0.01: {'met' if worst >= -0.01 else 'not met'})")
        limit = {"clinical": 1.5e9, "large": 4e9}.get(case)
        if limit:
            lines.append(f"{name}: peak RSS {row['peak_rss_bytes'] / 1e9:.2f} GB (target <= {limit / 1e9:g} GB: "
                         f"{'met' if row['peak_rss_bytes'] <= limit else 'not met'})")
        if case == "slab" and row["compute_ratio"] is not None:
            lines.append(f"{name}: voxels computed / needed {row['compute_ratio']:.2f} "
                         f"(target <= 1.5: {'met' if row['compute_ratio'] <= 1.5 else 'not met'})")
        if case in ("clinical", "large") and row["compute_ratio"] is not None:
            lines.append(f"{name}: voxels computed / needed {row['compute_ratio']:.2f} "
                         f"(target <= 1.3: {'met' if row['compute_ratio'] <= 1.3 else 'not met'})")
        if case == "large" and (("clinical", variant) in rows):
            base = rows[("clinical", variant)]
            expected = base["seconds"] * math.prod(CASES["large"].shape) / math.prod(CASES["clinical"].shape)
            deviation = row["seconds"] / expected - 1
            lines.append(f"{name}: {row['seconds']:.1f} s, {deviation:+.0%} from linear in voxels from "
                         f"{_shape('clinical')} (target within 20%: {'met' if abs(deviation) <= 0.2 else 'not met'})")
        stages = row["stages"]
        top = max(stages, key=stages.get)
        lines.append(f"{name}: {100 * stages[top] / row['seconds']:.0f}% of its {row['seconds']:.1f} s in '{top}'")
    for (case, variant), row in rows.items():
        if VARIANTS[variant].title.startswith("(c)") and (case, "segment") in rows:
            gain = row["seconds"] / rows[(case, "segment")]["seconds"]
            lines.append(f"{_shape(case)}: turning off one speed-up ({VARIANTS[variant].title[4:]}) costs "
                         f"{gain:.2f}x the time of (a)")
    return lines


def plot_scaling(rows: dict[tuple[str, str], dict[str, Any]], path: Path, caption: str) -> None:
    """Wall time and peak RSS against input voxels, one line per variant, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for variant in dict.fromkeys(v for _, v in rows):
        points = sorted((math.prod(CASES[c].shape) / 1e6, row["seconds"], row["peak_rss_bytes"] / 1e9)
                        for (c, v), row in rows.items() if v == variant)
        voxels = [p[0] for p in points]
        left.plot(voxels, [p[1] for p in points], "o-", label=VARIANTS[variant].title)
        right.plot(voxels, [p[2] for p in points], "o-", label=VARIANTS[variant].title)
    left.set(xlabel="input voxels (millions)", ylabel="wall time (s)", title="time")
    right.set(xlabel="input voxels (millions)", ylabel="peak RSS (GB)", title="memory")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.set_xlim(left=0)
        axis.set_ylim(bottom=0)
    left.legend(fontsize=8)
    figure.suptitle(caption, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}")
    figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=[c for c in CASES if c != "tiny"],
                        default=["short", "clinical", "long", "large"],
                        help="phantom sizes, 512x512 by 100 (short), 200 (clinical), 400 (long), 600 (large) slices")
    parser.add_argument("--scan", nargs="+", default=[], metavar="PATH",
                        help="also time scans of your own (NIfTI, NRRD, DICOM folder...): no Dice, no labels read")
    parser.add_argument("--variants", nargs="+", choices=[*VARIANTS, "all"], default=list(DEFAULT_VARIANTS),
                        help=f"default: {' '.join(DEFAULT_VARIANTS)}")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant; the order alternates")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="skip a variant on a case where its time extrapolated from a smaller case exceeds this")
    parser.add_argument("--work-dir", type=Path, default=default_work_dir(), help="phantoms, weights and outputs")
    parser.add_argument("--bundle", help="bundle folder (default: bundles/abdomen_ct_attention_unet when trained)")
    parser.add_argument("--model", help="weights (state dict or TorchScript) instead of the bundle; needs --config")
    parser.add_argument("--config", help="bundle-style JSON config (network_def, preprocessing, inferer, "
                        "postprocessing...), for --model")
    parser.add_argument("--trust-config", action="store_true",
                        help="let --config or --bundle run code ($ expressions), as segment --trust-config")
    parser.add_argument("--random-weights", action="store_true", help="random weights even when the bundle is trained")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads in each run (default 0: torch's choice, as users run it)")
    parser.add_argument("--json", type=Path, help="also write the results here (default: WORK_DIR/inference.json)")
    parser.add_argument("--plot", type=Path, help="write the scaling plot (PNG) here")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny phantom and network, every variant")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        payload = json.loads(args.child)
        print_child_result(prime_cache(payload) if payload.get("prime") else run_variant(payload))
        return

    work_dir = args.work_dir.resolve()
    for path in args.scan:
        case = scan_case(path, list(CASES))
        CASES[case.name] = case
    phantoms = ["tiny"] if args.quick else list(dict.fromkeys(args.cases))
    cases = sorted(phantoms + [name for name, case in CASES.items() if case.path],
                   key=lambda c: math.prod(CASES[c].shape))
    variants = list(VARIANTS) if args.quick or "all" in args.variants else list(dict.fromkeys(args.variants))
    skipped: list[str] = []
    if "nnunet" in variants:
        from nnunet_engine import nnunet_missing

        missing = nnunet_missing()
        if missing:
            variants.remove("nnunet")
            skipped.append(f"{VARIANTS['nnunet'].title}: skipped on every case: {missing}")
            print(f"skipping {VARIANTS['nnunet'].title}: {missing}", flush=True)
    missing = next((p for p in ("openvino", "onnxscript") if importlib.util.find_spec(p) is None), None)
    for name in [v for v in variants if v in OPENVINO_VARIANTS]:
        lacking = missing or ("nncf" if name.startswith("int8") and importlib.util.find_spec("nncf") is None else None)
        if not lacking and args.device == "cpu":
            continue
        variants.remove(name)
        reason = f"{lacking} is not installed (pip install \"monai-attn[openvino]\")" if lacking else "CPU only"
        skipped.append(f"{VARIANTS[name].title}: skipped on every case: {reason}")
        print(f"skipping {VARIANTS[name].title}: {reason}", flush=True)
    import torch

    from monai_attn.inference.backends import CACHE_ENV
    from monai_attn.inference.devices import resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_description(args.device)
    print(format_machine(machine), flush=True)
    model = resolve_model(args, work_dir)
    print(f"model: {model.description}", flush=True)
    auto = resolve_precision("auto", torch.device(args.device))
    precision = {name: VARIANTS[name].overrides.get("precision", "fp32" if name in ("monai", "nnunet") else auto)
                 for name in VARIANTS}
    inputs = {case: (Path(CASES[case].path), None) if CASES[case].path else phantom_paths(CASES[case], work_dir)
              for case in cases}
    os.environ[CACHE_ENV] = str(work_dir / "cache")  # the benchmark's own cache; the children inherit it
    openvino = not missing and args.device == "cpu"
    for name in [v for v in variants if openvino and VARIANTS[v].engine == "segment"
                 and VARIANTS[v].overrides.get("backend") != "torch"]:
        made = run_child(__file__, {"name": f"cache/{name}", "prime": True, "device": args.device,
                                    "threads": args.threads, "model": asdict(model), "overrides": VARIANTS[name].overrides,
                                    "native_bf16": VARIANTS[name].native_bf16,
                                    "images": [str(image) for image, _ in inputs.values()]})
        print(f"{VARIANTS[name].title}: networks converted for every case's windows, and the choice, in "
              f"{os.environ[CACHE_ENV]} ({made['seconds']:.1f} s with one untimed pass per case; {made['backend']} "
              "runs roi_size windows)", flush=True)

    runs: list[Run] = []
    for repeat, case, variant in plan_runs(cases, variants, args.repeats):
        estimate = estimated_seconds(runs, case, variant)
        if estimate and estimate[0] > args.max_seconds and not any(r.case == case and r.variant == variant for r in runs):
            line = (f"{VARIANTS[variant].title} on {_shape(case)}: skipped, about {estimate[0]:.0f} s extrapolated from "
                    f"{_shape(estimate[1])} (over --max-seconds {args.max_seconds:g})")
            if line not in skipped:
                skipped.append(line)
                print(line, flush=True)
            continue
        image, label = inputs[case]
        output = work_dir / "outputs" / variant / f"{case}.nii.gz"
        output.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": f"{case}/{variant}", "image": str(image), "output": str(output), "device": args.device,
            "threads": args.threads, "model": asdict(model), "engine": VARIANTS[variant].engine,
            "overrides": VARIANTS[variant].overrides, "native_bf16": VARIANTS[variant].native_bf16,
        }
        load = load_average()[0]
        result = run_child(__file__, payload)
        dice = dice_per_organ(output, label) if label else {name: math.nan for name in LABEL_NAMES.values()}
        run = Run(case, variant, repeat, result["seconds"], result["peak_rss_bytes"], result["rss_after_imports_bytes"],
                  result["windows_run"], result["compute_ratio"], result["roi_size"], result["stages"], dice,
                  str(output), result["threads"], result.get("peak_gpu_bytes"))
        runs.append(run)
        print(f"{_shape(case):12s} {VARIANTS[variant].title:30s} {run.seconds:7.1f} s  peak RSS "
              f"{run.peak_rss_bytes / 1e9:5.2f} GB  windows {run.windows_run:4d}  computed/needed "
              f"{_num(run.compute_ratio, 2):>5s}  Dice " + " ".join(f"{d:.3f}" for d in dice.values())
              + f"  ({run.threads} threads, load {load:.1f})", flush=True)

    rows = summarize(runs)
    machine["load_average_end"] = [round(x, 2) for x in load_average()]
    summary_line = (f"model: {model.description}; device {args.device}; torch threads per run "
                    f"{sorted({r.threads for r in runs})}; {args.repeats} repeat(s); load average at the start "
                    f"{' '.join(f'{x:.2f}' for x in machine['load_average'])}, at the end "
                    f"{' '.join(f'{x:.2f}' for x in machine['load_average_end'])}")
    print(f"\n{summary_line}\n")
    print(render(rows, precision))
    print()
    for line in skipped:
        print(f"- {line}")
    for line in targets(rows, model.trained):
        print(f"- {line}")
    if args.plot:
        plot_scaling(rows, args.plot, f"{machine['cpu']}, {machine['usable_cpus']} CPUs; load average "
                     f"{machine['load_average'][0]:.1f} at the start, {machine['load_average_end'][0]:.1f} at the end")
        print(f"\nplot: {args.plot}")
    report = {
        "machine": machine, "model": asdict(model), "device": args.device, "repeats": args.repeats,
        "threads": args.threads, "cases": {c: asdict(CASES[c]) for c in cases}, "runs": [asdict(r) for r in runs],
        "skipped": skipped, "summary": [{"case": c, "variant": v, **row} for (c, v), row in rows.items()],
    }
    json_path = args.json or work_dir / ("inference_quick.json" if args.quick else "inference.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nresults: {json_path}")


if __name__ == "__main__":
    main()
