"""Forward-pass speed and achieved FLOP rate of GridAttentionUNet against its baselines.

Measures, for one (B=1, C=1) window of ``--size``^3 voxels, in fp32 and bf16 autocast under
``torch.inference_mode``: median (and best) forward time over ``--runs`` runs after ``--warmup`` runs,
FLOPs per forward (``torch.utils.flop_counter.FlopCounterMode``; a multiply-add counts 2),
achieved GFLOP/s (from the median time), and that rate as a fraction of this machine's measured matmul "peak"
(the best of several large square fp32 / bf16 matmuls; a measured, not a theoretical, peak,
so convolution kernels can beat it, e.g. when the BLAS matmul path is weaker than oneDNN's
convolutions on the CPU at hand or the CPU was busier during the matmul). Models (4 output classes, channels 16..256):

- GridAttentionUNet (attention=True, the default 2-head gates),
- the same backbone without gates (attention=False, the plain U-Net of the ablation),
- MONAI's ``monai.networks.nets.AttentionUnet`` with the same channels.

Usage::

    python benchmarks/network.py                 # 96^3, 2 warm-up + 5 timed runs
    python benchmarks/network.py --quick         # 32^3, 1 run: a smoke test
    python benchmarks/network.py --device cuda --size 128

Timings on a shared CPU are noisy; compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _common import format_machine, machine_description
from monai.networks.nets import AttentionUnet
from torch.utils.flop_counter import FlopCounterMode

from monai_attn.networks import GridAttentionUNet

CHANNELS = (16, 32, 64, 128, 256)
OUT_CHANNELS = 4


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_times(fn: Callable[[], object], device: torch.device, warmup: int, runs: int) -> list[float]:
    """Wall times (s) of ``runs`` calls of ``fn()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n: int, runs: int) -> float:
    """Best GFLOP/s of ``runs`` n x n x n matmuls in ``dtype``: the reference "peak" here."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        seconds = min(run_times(lambda: a @ b, device, warmup=1, runs=runs))
    return 2 * n**3 / seconds / 1e9


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def build_models() -> dict[str, torch.nn.Module]:
    return {
        "GridAttentionUNet": GridAttentionUNet(3, 1, OUT_CHANNELS, channels=CHANNELS, attention=True),
        "GridAttentionUNet (attention=False)": GridAttentionUNet(3, 1, OUT_CHANNELS, channels=CHANNELS, attention=False),
        "MONAI AttentionUnet": AttentionUnet(3, 1, OUT_CHANNELS, channels=CHANNELS, strides=(2, 2, 2, 2)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="window edge in voxels (multiple of 16)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model and precision")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 32^3 window, 1 run, no warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.runs, args.warmup = 32, 1, 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    print(f"{format_machine(machine_description(str(device)))}; device {device}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    peak_n = 1024 if args.quick else 8192 if device.type == "cuda" else 4096
    peaks = {
        "fp32": matmul_peak_gflops(device, torch.float32, peak_n, runs=max(args.runs, 3)),
        "bf16": matmul_peak_gflops(device, torch.bfloat16, peak_n, runs=max(args.runs, 3)),
    }
    print(f"reference peak ({peak_n}^3 matmul): fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")
    print(f"window: 1 x 1 x {args.size}^3; median of {args.runs} run(s) after {args.warmup} warm-up run(s)\n")

    x = torch.randn(1, 1, args.size, args.size, args.size, device=device)
    rows = []
    for name, model in build_models().items():
        model = model.to(device).eval()
        params = sum(p.numel() for p in model.parameters())
        flops = count_flops(model, x)
        for precision in ("fp32", "bf16"):

            def forward() -> torch.Tensor:
                with torch.inference_mode(), torch.autocast(
                    device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
                ):
                    return model(x)

            times = run_times(forward, device, args.warmup, args.runs)
            seconds = statistics.median(times)
            gflops = flops / seconds / 1e9
            rows.append((name, params, precision, seconds, min(times), flops, gflops, gflops / peaks[precision]))

    print("| model | params (M) | precision | median (ms) | best (ms) | GFLOP/forward | GFLOP/s | of peak |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name, params, precision, seconds, best, flops, gflops, ratio in rows:
        print(
            f"| {name} | {params / 1e6:.2f} | {precision} | {seconds * 1e3:.0f} | {best * 1e3:.0f} "
            f"| {flops / 1e9:.1f} | {gflops:.1f} | {100 * ratio:.0f}% |"
        )


if __name__ == "__main__":
    main()
