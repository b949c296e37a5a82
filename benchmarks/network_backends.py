"""CPU back ends for the shipped CT network: forward time of one window and agreement with fp32 eager.

The network is the CT bundle's ``network_def`` with its shipped weights
(``bundles/abdomen_ct_attention_unet/models/model.pt``, ``torch.load(..., weights_only=True)``).
The input is one ``--size``^3 window (batch ``--batch``, default the bundle's
``sw_batch_size``) from the centre of an abdominal CT phantom run through the bundle's own
preprocessing (body crop, RAS, 2 mm, HU window scaled to [0, 1]), so labels are compared on
real organs, not noise. Variants (each in fp32 and/or bf16):

- ``current``: the inference path as ``segment`` runs it: the Segmenter's network (weights in
  ``channels_last_3d``) through :class:`monai_attn.inference.inferer.WindowPredictor` (input
  in ``channels_last_3d``, bf16 autocast when ``precision: auto`` resolves to bf16, as on CPUs
  with native bf16);
- ``ncdhw-weights``: the same with the weights left in ``contiguous_format`` (NCDHW), as a
  network built straight from ``network_def`` has them;
- ``channels-first``: weights and input both NCDHW, eager;
- ``compile``: ``torch.compile(dynamic=False)`` of the current path's network (inductor's CPU
  C++/OpenMP code and oneDNN convolutions); ``compile-freezing``: the same with inductor's
  ``freezing`` (weights become constants: conv + batch-norm folding, oneDNN weight prepacking);
- ``jit-freeze``: ``torch.jit.trace`` + ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``
  (oneDNN conv fusion). Tracing under autocast fails in TorchScript, so its bf16 variant casts
  the weights and input to bf16 instead (batch norm and the gates' sigmoid then run in bf16 too);
- ``onnxruntime``: ``torch.onnx.export`` (opset 18, fixed window shape) run by ONNX Runtime's
  CPU execution provider, graph optimisation level ALL, default intra-op threads; fp32 only
  (the CPU provider has no general bf16 kernels);
- ``openvino``: the inferer's ``backend="openvino"`` path
  (:class:`monai_attn.inference.backends.OpenVINONetwork`: the same ONNX export compiled by
  OpenVINO's CPU plugin), ``INFERENCE_PRECISION_HINT`` f32 and bf16 (skipped when openvino is
  not installed).

All variants run with the torch / runtime threads chosen by default, as users run them. After
``--warmup`` untimed rounds, ``--runs`` timed rounds each call every variant once
(round-robin, with a 0.3 s pause before each call), so a change in the machine's load hits
all of them alike. Reported per variant: build time (conversion, compilation and the first call), median and best forward
time, achieved GFLOP/s (``torch.utils.flop_counter``; a multiply-add counts 2) and that rate
as a fraction of this machine's measured matmul peak in the same precision (``network.py``),
the ratio of the current path's median to the variant's median (``> 1``: faster), the largest
absolute logit difference and the argmax agreement (fraction of voxels with the same label)
against fp32 eager, and the argmax agreement with the current default path (bf16 on this
kind of CPU).

Usage::

    python benchmarks/network_backends.py --runs 7 --warmup 2 --json benchmarks/.cache/network_backends.json
    python benchmarks/network_backends.py --quick            # 32^3 window, 1 run: a smoke test
    python benchmarks/network_backends.py --quick --variants current channels-first onnxruntime

Timings on a shared CPU are noisy; compare ratios from the same (interleaved) run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import format_machine, load_average, machine_description, markdown_table
from network import count_flops, matmul_peak_gflops

from monai_attn.inference.backends import OpenVINONetwork, export_onnx
from monai_attn.inference.devices import autocast_dtype, resolve_precision
from monai_attn.inference.inferer import WindowPredictor
from monai_attn.bundle.configs import bundle_parser
from monai_attn.inference.models import load_network

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "abdomen_ct_attention_unet"
#: Seed and index of the phantom the window is cut from.
PHANTOM_SEED, PHANTOM_INDEX = 0, 0
#: Phantom matrix (voxels) at the bundle's 2 mm spacing: an abdomen with room around a 96^3 window.
PHANTOM_SIZE = (176, 176, 120)

#: Pause (s) before each timed call, so that the worker threads of the runtime that ran last
#: (OpenMP, TBB, ONNX Runtime's pool) have stopped spinning, as they would in a run of one back end.
PAUSE_S = 0.3

#: A forward pass: window batch (B, 1, *roi) float32 -> logits (B, classes, *roi) float32.
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Variant:
    """One way of running the network: ``build(network, window)`` returns its forward pass."""

    family: str
    precision: str
    build: Callable[[torch.nn.Module, torch.Tensor], Forward]

    @property
    def name(self) -> str:
        return f"{self.family} {self.precision}"


@dataclass
class Row:
    """What was measured for one variant (times in seconds)."""

    family: str
    precision: str
    build_seconds: float
    times: list[float] = field(default_factory=list)
    max_abs_logit_diff: float = float("nan")
    agreement_fp32: float = float("nan")
    agreement_current: float = float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _autocast(precision: str) -> contextlib.AbstractContextManager:
    dtype = autocast_dtype(precision)
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def build_current(precision: str, weights_layout: torch.memory_format) -> Callable[[torch.nn.Module, torch.Tensor], Forward]:
    """The shipped path: :class:`WindowPredictor` (channels-last input, autocast) under inference mode.

    ``segment`` (the Segmenter) puts a CT network's weights in ``channels_last_3d``; the
    bundle's ``inference.json`` evaluator left them ``contiguous_format`` (NCDHW).
    """

    def build(network: torch.nn.Module, window: torch.Tensor) -> Forward:
        model = copy.deepcopy(network).to(memory_format=weights_layout)
        predictor = WindowPredictor(model, num_classes=model.out_channels, autocast_dtype=autocast_dtype(precision))

        def forward(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return predictor(x)

        return forward

    return build


def build_channels_first(precision: str) -> Callable[[torch.nn.Module, torch.Tensor], Forward]:
    """Weights and input both in ``contiguous_format`` (NCDHW), eager, autocast as the current path."""

    def build(network: torch.nn.Module, window: torch.Tensor) -> Forward:
        model = copy.deepcopy(network).to(memory_format=torch.contiguous_format)

        def forward(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), _autocast(precision):
                return model(x.contiguous()).float()

        return forward

    return build


def build_compile(precision: str, freezing: bool) -> Callable[[torch.nn.Module, torch.Tensor], Forward]:
    """``torch.compile`` (inductor, ``dynamic=False``) of the current path's network, autocast inside the call."""

    def build(network: torch.nn.Module, window: torch.Tensor) -> Forward:
        compiled = torch.compile(copy.deepcopy(network), dynamic=False, options={"freezing": freezing})

        def forward(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), _autocast(precision):
                return compiled(x.contiguous(memory_format=torch.channels_last_3d)).float()

        return forward

    return build


def build_jit_freeze(precision: str) -> Callable[[torch.nn.Module, torch.Tensor], Forward]:
    """Traced, frozen and ``optimize_for_inference`` TorchScript; bf16 casts weights and input (no autocast)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def build(network: torch.nn.Module, window: torch.Tensor) -> Forward:
        model = copy.deepcopy(network).to(dtype)
        with torch.no_grad():
            traced = torch.jit.trace(model, window.to(dtype), check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

        def forward(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return frozen(x.to(dtype)).float()

        return forward

    return build


def build_onnxruntime(work_dir: Path) -> Callable[[torch.nn.Module, torch.Tensor], Forward]:
    """ONNX Runtime CPU execution provider, all graph optimisations, default threads; fp32."""

    def build(network: torch.nn.Module, window: torch.Tensor) -> Forward:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        onnx_file = export_onnx(network, window, work_dir / "network.onnx")
        session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"image": x.contiguous().numpy()})[0])

        return forward

    return build


def build_openvino(precision: str) -> Callable[[torch.nn.Module, torch.Tensor], Forward]:
    """The ``backend="openvino"`` path of the inferer: :class:`OpenVINONetwork` at ``precision``, default threads."""

    def build(network: torch.nn.Module, window: torch.Tensor) -> Forward:
        return OpenVINONetwork(network, precision)

    return build


#: Variant families in table order; ``--variants`` picks among them.
FAMILIES = (
    "current", "ncdhw-weights", "channels-first", "compile", "compile-freezing", "jit-freeze", "onnxruntime", "openvino"
)


def make_variants(families: Sequence[str], work_dir: Path) -> list[Variant]:
    """The variants of the chosen families, in :data:`FAMILIES` order, fp32 before bf16."""
    catalogue = [
        Variant("current", "fp32", build_current("fp32", torch.channels_last_3d)),
        Variant("current", "bf16", build_current("bf16", torch.channels_last_3d)),
        Variant("ncdhw-weights", "fp32", build_current("fp32", torch.contiguous_format)),
        Variant("ncdhw-weights", "bf16", build_current("bf16", torch.contiguous_format)),
        Variant("channels-first", "fp32", build_channels_first("fp32")),
        Variant("channels-first", "bf16", build_channels_first("bf16")),
        Variant("compile", "fp32", build_compile("fp32", freezing=False)),
        Variant("compile", "bf16", build_compile("bf16", freezing=False)),
        Variant("compile-freezing", "fp32", build_compile("fp32", freezing=True)),
        Variant("compile-freezing", "bf16", build_compile("bf16", freezing=True)),
        Variant("jit-freeze", "fp32", build_jit_freeze("fp32")),
        Variant("jit-freeze", "bf16", build_jit_freeze("bf16")),
        Variant("onnxruntime", "fp32", build_onnxruntime(work_dir)),
        Variant("openvino", "fp32", build_openvino("fp32")),
        Variant("openvino", "bf16", build_openvino("bf16")),
    ]
    return [v for v in catalogue if v.family in families]


def missing_runtime(family: str) -> str | None:
    """Why a family cannot run here (its optional package is not installed), or None."""
    package = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(family)
    if package and importlib.util.find_spec(package) is None:
        return f"{package} is not installed (pip install {package})"
    if family in ("onnxruntime", "openvino") and importlib.util.find_spec("onnxscript") is None:
        return "torch.onnx.export needs onnxscript (pip install onnxscript)"
    return None


def phantom_window(parser: Any, size: int, batch: int) -> torch.Tensor:
    """(batch, 1, size, size, size) float32: the centre of a preprocessed CT phantom (values in [0, 1]).

    The phantom is generated at the bundle's spacing, then goes through the bundle's own
    ``preprocessing`` (checks, body crop, RAS, resampling, HU window); the window is cut from
    the centre of the result (padded with 0, i.e. air, where the image is smaller).
    """
    from monai.data import MetaTensor
    from monai.transforms import ResizeWithPadOrCrop

    from monai_attn.synthetic import generate_abdomen_ct_case

    spacing = tuple(float(s) for s in parser["spacing_mm"])
    image_hu, _, affine = generate_abdomen_ct_case(PHANTOM_SEED, PHANTOM_INDEX, PHANTOM_SIZE, spacing_mm=spacing)
    scan = MetaTensor(torch.from_numpy(image_hu[None].astype(np.float32)), affine=torch.from_numpy(affine))
    image = parser.get_parsed_content("preprocessing")({"image": scan})["image"].as_tensor()
    window = ResizeWithPadOrCrop((size,) * 3)(image)  # centre crop, or zero padding where smaller
    return torch.as_tensor(window).float().expand(batch, 1, size, size, size).contiguous()


@dataclass
class Measurement:
    """Rows of the variants that ran, why others failed (name -> one line), the 1-minute load
    average at the start of each timed round, and the fraction of the window's voxels that fp32
    eager labels as an organ (how much of the agreement is about organs, not background)."""

    rows: list[Row]
    failures: dict[str, str]
    loads: list[float]
    foreground_fraction: float


def measure(
    network: torch.nn.Module, window: torch.Tensor, variants: Sequence[Variant], warmup: int, runs: int
) -> Measurement:
    """Build every variant (timing the build and first call), then time them round-robin."""
    forwards: dict[str, Forward] = {}
    rows: dict[str, Row] = {}
    failures: dict[str, str] = {}
    outputs: dict[str, torch.Tensor] = {}
    for variant in variants:
        start = time.perf_counter()
        try:
            forward = variant.build(network, window)
            outputs[variant.name] = forward(window).float()
        except Exception as err:  # a back end that cannot take this network: record why, keep the rest
            failures[variant.name] = f"{type(err).__name__}: " + (str(err).strip().splitlines() or [""])[0][:200]
            print(f"{variant.name}: failed: {failures[variant.name]}", flush=True)
            continue
        forwards[variant.name] = forward
        rows[variant.name] = Row(variant.family, variant.precision, time.perf_counter() - start)
        print(f"{variant.name}: built in {rows[variant.name].build_seconds:.1f} s", flush=True)
    for _ in range(warmup):
        for forward in forwards.values():
            forward(window)
    loads = []
    for _ in range(runs):
        loads.append(load_average()[0])
        for name, forward in forwards.items():
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            forward(window)
            rows[name].times.append(time.perf_counter() - start)
    reference = outputs.get("current fp32")
    current = outputs.get("current bf16")
    for name, row in rows.items():
        if reference is not None:
            row.max_abs_logit_diff = float((outputs[name] - reference).abs().max())
            row.agreement_fp32 = agreement(outputs[name], reference)
        if current is not None:
            row.agreement_current = agreement(outputs[name], current)
    foreground = float((reference.argmax(dim=1) > 0).double().mean()) if reference is not None else float("nan")
    return Measurement(list(rows.values()), failures, loads, foreground)


def agreement(logits: torch.Tensor, reference: torch.Tensor) -> float:
    """Fraction of voxels whose argmax label equals the reference's, in [0, 1]."""
    return float((logits.argmax(dim=1) == reference.argmax(dim=1)).double().mean())


def render(rows: Sequence[Row], flops: int, peaks: dict[str, float]) -> str:
    """The Markdown table: times in ms, ratios to the current path (same precision, and bf16)."""
    base = {r.precision: r.median for r in rows if r.family == "current"}
    table = []
    for row in rows:
        gflops = flops / row.median / 1e9
        table.append([
            row.family, row.precision, f"{row.build_seconds:.1f}", f"{row.median * 1e3:.0f}",
            f"{min(row.times) * 1e3:.0f}", f"{gflops:.0f}", f"{100 * gflops / peaks[row.precision]:.0f}%",
            _ratio(base.get(row.precision), row.median), _ratio(base.get("bf16"), row.median),
            f"{row.max_abs_logit_diff:.2g}", f"{row.agreement_fp32:.5f}", f"{row.agreement_current:.5f}",
        ])
    headers = ["variant", "precision", "build (s)", "median (ms)", "best (ms)", "GFLOP/s", "of peak",
               "current / this (same precision)", "current bf16 / this", "max abs logit diff vs fp32",
               "labels = fp32 eager", "labels = current bf16"]
    return markdown_table(headers, table, align="ll" + "r" * (len(headers) - 2))


def _ratio(base: float | None, seconds: float) -> str:
    return f"{base / seconds:.2f}x" if base is not None else "–"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="window edge in voxels (default: the bundle's roi_size)")
    parser.add_argument("--batch", type=int, default=None, help="windows per call (default: the bundle's sw_batch_size)")
    parser.add_argument("--runs", type=int, default=5, help="timed round-robin rounds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds before timing")
    parser.add_argument("--variants", nargs="+", choices=FAMILIES, default=list(FAMILIES), help="variant families")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="smoke test: 32^3 window, 1 run, no warm-up")
    args = parser.parse_args(argv)

    bundle = bundle_parser(BUNDLE)
    size = 32 if args.quick else args.size or int(bundle["roi_size"][0])
    batch = args.batch or int(bundle["sw_batch_size"])
    runs, warmup = (1, 0) if args.quick else (args.runs, args.warmup)
    machine = machine_description("cpu")
    print(format_machine(machine), flush=True)
    print(f"precision 'auto' on this CPU: {resolve_precision('auto', torch.device('cpu'))}", flush=True)

    # as the Segmenter prepares a CT network: eval mode, weights in channels_last_3d
    network = load_network(bundle, BUNDLE / "models" / "model.pt").eval().to(memory_format=torch.channels_last_3d)
    window = phantom_window(bundle, size, batch)
    flops = count_flops(network, window)
    peak_n = 1024 if args.quick else 4096
    peaks = {p: matmul_peak_gflops(torch.device("cpu"), d, peak_n, runs=3)
             for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"window {batch} x 1 x {size}^3 from phantom {PHANTOM_SEED}/{PHANTOM_INDEX}; {flops / 1e9:.1f} GFLOP/forward; "
          f"measured {peak_n}^3 matmul peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)

    skipped = {}
    for family in dict.fromkeys(args.variants):
        reason = missing_runtime(family)
        if reason:
            skipped[family] = reason
            print(f"skipping {family}: {reason}", flush=True)
    families = [f for f in args.variants if f not in skipped]
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(network, window, make_variants(families, Path(tmp)), warmup, runs)
    loads = result.loads

    machine["load_average_end"] = [round(x, 2) for x in load_average()]
    print(f"\nwindow {batch} x 1 x {size}^3; {warmup} warm-up and {runs} timed round(s), round-robin; torch threads "
          f"{torch.get_num_threads()}; load average at the start {' '.join(f'{x:.2f}' for x in machine['load_average'])}, "
          f"1-min during {min(loads, default=float('nan')):.2f}-{max(loads, default=float('nan')):.2f}, at the end "
          f"{' '.join(f'{x:.2f}' for x in machine['load_average_end'])}; fp32 eager labels "
          f"{100 * result.foreground_fraction:.1f}% of the window as organs\n")
    print(render(result.rows, flops, peaks))
    for name, reason in result.failures.items():
        print(f"- {name}: failed: {reason}")
    for family, reason in skipped.items():
        print(f"- {family}: skipped: {reason}")
    if args.json:
        report = {
            "machine": machine, "window": [batch, 1, size, size, size], "flops_per_forward": flops,
            "matmul_peak_gflops": peaks, "warmup": warmup, "runs": runs, "load_1min_per_round": loads,
            "foreground_fraction": result.foreground_fraction,
            "rows": [{**asdict(r), "median": r.median} for r in result.rows], "failures": result.failures,
            "skipped": skipped,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nresults: {args.json}")


if __name__ == "__main__":
    main()
