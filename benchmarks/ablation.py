"""Plain U-Net against the grid-gated attention U-Net, trained the same way on CT phantoms.

The ablation of Oktay et al. 2018 (their Table 1: U-Net vs Attention U-Net, per-organ Dice,
parameters, inference time), at CPU scale: both networks are
:class:`monai_attn.networks.GridAttentionUNet` with the same channels, one with
``attention=True`` (2-head grid gates on the skips of levels 2..4) and one with
``attention=False`` (the identical backbone without gates). Both are trained with the same
seed, data, patch sequence, loss and schedule; only the gates differ.

- Data: ``--train-cases`` + ``--test-cases`` abdominal CT phantoms
  (``monai_attn.synthetic.write_abdomen_ct_dataset``), generated directly at the coarse
  training spacing so that the run fits a CPU.
- Training: the CT bundle's recipe at CPU scale: ``monai_attn.presets.ct_train_transforms``
  (class-balanced patches, augmentation without mirroring), Dice + cross-entropy with deep
  supervision (``monai_attn.losses.segmentation_loss("dicece", deep_supervision_weights="exp")``,
  a 1x1 head per decoder scale, as in the paper), AdamW with a cosine schedule, a fixed number
  of iterations, ``monai.utils.set_determinism``.
- Testing: :class:`monai_attn.inference.Segmenter` (the ``monai-attn segment`` path) writes
  each test case's labels; ``monai_attn.evaluation`` scores them (Dice, HD95, NSD) and compares
  the two networks case by case (paired differences, Wilcoxon signed-rank p-values).

Usage::

    python benchmarks/ablation.py               # 10 + 6 cases, 300 iterations each (about 10 min, 1 thread)
    python benchmarks/ablation.py --quick       # 2 + 2 tiny cases, 2 iterations: smoke test
    python benchmarks/ablation.py --seeds 0 1 2  # three trainings of each network, pooled

The phantoms are small and the training short, so the Dice values say how the two networks
compare under one tight budget, not what either reaches on real CT.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from _common import default_work_dir, format_machine, load_average, machine_description, markdown_table

LABEL_NAMES = {1: "spleen", 2: "kidney", 3: "pancreas"}
NAMES = {False: "U-Net", True: "Attention U-Net"}


@dataclass(frozen=True)
class Settings:
    """Data, network and schedule of one ablation run (sizes in voxels, spacing in mm)."""

    train_cases: int = 10
    test_cases: int = 6
    size: tuple[int, int, int] = (128, 128, 96)
    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 4.0)
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    patch: tuple[int, int, int] = (48, 48, 48)
    patches_per_volume: int = 2
    iterations: int = 300
    learning_rate: float = 2e-3
    deep_supervision: bool = True
    seed: int = 0
    data_seed: int = 7


QUICK = Settings(train_cases=2, test_cases=2, size=(48, 48, 32), spacing_mm=(8.0, 8.0, 12.0),
                 channels=(4, 8, 16, 32, 64), patch=(32, 32, 32), iterations=2)


def make_dataset(settings: Settings, folder: Path) -> dict[str, Any]:
    """The phantom data set (MSD layout) in ``folder``, generated unless it is there with these settings."""
    from monai_attn.synthetic import write_abdomen_ct_dataset

    stamp = folder / "settings.json"
    wanted = {k: getattr(settings, k) for k in ("train_cases", "test_cases", "size", "spacing_mm", "data_seed")}
    wanted = json.loads(json.dumps(wanted))
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        start = time.perf_counter()
        write_abdomen_ct_dataset(folder, settings.train_cases, settings.data_seed, test_cases=settings.test_cases,
                                 size=settings.size, spacing_mm=settings.spacing_mm)
        stamp.write_text(json.dumps(wanted))
        print(f"generated {settings.train_cases} + {settings.test_cases} phantoms in {time.perf_counter() - start:.0f} s",
              flush=True)
    return json.loads((folder / "dataset.json").read_text())


def build_network(settings: Settings, attention: bool):
    import torch

    from monai_attn.networks import GridAttentionUNet

    torch.manual_seed(settings.seed)
    return GridAttentionUNet(3, 1, len(LABEL_NAMES) + 1, channels=settings.channels, attention=attention,
                             deep_supervision=settings.deep_supervision)


def train(network, dataset: dict[str, Any], folder: Path, settings: Settings, device: str) -> dict[str, float]:
    """Train ``network`` in place for ``settings.iterations`` batches; returns time and loss."""
    import torch
    from monai.data import CacheDataset, DataLoader
    from monai.utils import set_determinism

    from monai_attn.losses import segmentation_loss
    from monai_attn.presets import ct_train_transforms

    set_determinism(settings.seed)
    # No mirroring or 90-degree turns: they teach a network that a spleen may lie where the liver
    # is (both ~50-70 HU), which a short training does not recover from.
    ct = ct_bundle_settings()
    transforms = ct_train_transforms(spacing_mm=settings.spacing_mm, patch_size=settings.patch,
                                     hu_window=ct["hu_window"], body_threshold_hu=ct["body_threshold_hu"],
                                     body_margin_mm=ct["body_margin_mm"],
                                     num_samples=settings.patches_per_volume, flip_prob=0.0, rotate90_prob=0.0)
    transforms.set_random_state(seed=settings.seed)
    files = [{k: str(folder / v) for k, v in item.items()} for item in dataset["training"]]
    data = CacheDataset(files, transforms, progress=False)
    loader = DataLoader(data, batch_size=1, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(settings.seed))
    loss_fn = segmentation_loss("dicece", deep_supervision_weights="exp" if settings.deep_supervision else None)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.iterations)
    network.to(device).train()
    losses: list[float] = []
    start = time.perf_counter()
    while len(losses) < settings.iterations:
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(batch["image"].to(device)), batch["label"].to(device))
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if len(losses) == settings.iterations:
                break
    set_determinism(None)
    tail = losses[-max(1, len(losses) // 10):]
    return {"train_seconds": time.perf_counter() - start, "final_loss": statistics.fmean(tail)}


def ct_bundle_settings() -> dict[str, Any]:
    """The CT bundle's intensity window and body crop (configs/common.json), for training as the bundle does."""
    from monai_attn.bundle.lookup import resolve_bundle

    common = json.loads((resolve_bundle("ct") / "configs" / "common.json").read_text())
    return {k: common[k] for k in ("hu_window", "body_threshold_hu", "body_margin_mm")}


def segment_test_cases(network, dataset: dict[str, Any], folder: Path, out_dir: Path, settings: Settings,
                       device: str) -> list[float]:
    """Segment every test case with the Segmenter; returns the seconds per case (read to write)."""
    from monai_attn.bundle.lookup import resolve_bundle
    from monai_attn.inference import Segmenter
    from monai_attn.bundle.configs import bundle_parser

    # the CT bundle's preprocessing, inferer and postprocessing around the trained network
    overrides = {"spacing_mm": list(settings.spacing_mm), "roi_size": list(settings.patch), "device": device,
                 "num_classes": len(LABEL_NAMES) + 1}
    segmenter = Segmenter.from_parser(bundle_parser(resolve_bundle("ct"), overrides), network)
    seconds = []
    for image in dataset["test"]:
        path = folder / image
        result = segmenter.segment_to_file(path, out_dir / path.name)
        seconds.append(result.timings["total"])
    return seconds


def run(settings: Settings, seeds: list[int], work_dir: Path, device: str) -> dict[str, Any]:
    """Train and test both networks once per seed; returns everything the tables need.

    Results of all seeds are pooled: a test case segmented by the networks of seed s is the
    pair ``<case>/seed<s>`` in the paired comparison.
    """
    from monai_attn.evaluation import evaluate_folders, paired_differences, summarize, write_comparison, write_report

    data_dir = work_dir / "data"
    dataset = make_dataset(settings, data_dir)
    results: dict[bool, list] = {False: [], True: []}
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    params = {}
    for seed in seeds:
        seeded = replace(settings, seed=seed)
        for attention in (False, True):
            name = NAMES[attention]
            network = build_network(seeded, attention)
            params[attention] = sum(p.numel() for p in network.parameters())
            load = load_average()[0]
            training = train(network, dataset, data_dir, seeded, device)
            pred_dir = work_dir / f"seed{seed}" / ("pred_attention" if attention else "pred_unet")
            pred_dir.mkdir(parents=True, exist_ok=True)
            seconds = segment_test_cases(network, dataset, data_dir, pred_dir, seeded, device)
            evaluation = evaluate_folders(pred_dir, data_dir / "labelsTs", LABEL_NAMES)
            if evaluation.failures:
                raise RuntimeError(f"{name}: evaluation failed for {evaluation.failures}")
            results[attention] += [replace(r, case_id=f"{r.case_id}/seed{seed}") for r in evaluation.results]
            dice = summarize(evaluation.results, LABEL_NAMES)["foreground_mean"]["Dice"]
            runs[attention].append({"seed": seed, **training, "seconds_per_case": statistics.fmean(seconds),
                                    "mean_dice": dice, "load_average": load})
            print(f"seed {seed}, {name}: {params[attention] / 1e6:.3f} M parameters, trained "
                  f"{training['train_seconds']:.0f} s (final loss {training['final_loss']:.3f}), "
                  f"{statistics.fmean(seconds):.1f} s per test case, mean Dice {dice:.3f}", flush=True)
    rows = {}
    for attention, name in NAMES.items():
        write_report(results[attention], work_dir / "report" / ("attention" if attention else "unet"), LABEL_NAMES)
        summary = summarize(results[attention], LABEL_NAMES)
        rows[name] = {
            "params": params[attention],
            **{key: statistics.fmean(r[key] for r in runs[attention])
               for key in ("train_seconds", "final_loss", "seconds_per_case")},
            "mean": summary["mean"], "std": summary["std"], "runs": runs[attention],
        }
    comparison = paired_differences(results[False], results[True], LABEL_NAMES)
    markdown = write_comparison(comparison, work_dir / "report", NAMES[False], NAMES[True])
    return {"rows": rows, "comparison": [asdict(c) for c in comparison], "comparison_markdown": markdown}


def render(rows: dict[str, dict[str, Any]]) -> str:
    """The paper-style table (Dice mean ± sd over test cases and seeds), then mean Dice per seed."""

    def dice(row: dict[str, Any], label: int) -> str:
        mean, sd = row["mean"][str(label)]["Dice"], row["std"][str(label)]["Dice"]
        if not math.isfinite(mean):
            return "–"
        return f"{mean:.3f} ± {sd:.3f}" if math.isfinite(sd) else f"{mean:.3f}"

    table = []
    for name, row in rows.items():
        means = [row["mean"][str(label)]["Dice"] for label in LABEL_NAMES]
        finite = [m for m in means if math.isfinite(m)]
        table.append([name, f"{row['params'] / 1e6:.3f}", f"{row['train_seconds']:.0f}", f"{row['final_loss']:.3f}",
                      f"{row['seconds_per_case']:.2f}", *(dice(row, label) for label in LABEL_NAMES),
                      f"{statistics.fmean(finite):.3f}" if finite else "–"])
    headers = ["network", "params (M)", "training (s)", "final loss", "inference (s/case)",
               *(f"Dice {o}" for o in LABEL_NAMES.values()), "mean Dice"]
    names = list(rows)
    seeds = [r["seed"] for r in rows[names[0]]["runs"]]
    per_seed = [[seed, *(f"{rows[n]['runs'][i]['mean_dice']:.3f}" for n in names)] for i, seed in enumerate(seeds)]
    return (markdown_table(headers, table) + "\n\nMean Dice over organs and test cases, per training seed:\n\n"
            + markdown_table(["seed", *names], per_seed))


def main(argv: list[str] | None = None) -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-cases", type=int, default=defaults.train_cases)
    parser.add_argument("--test-cases", type=int, default=defaults.test_cases)
    parser.add_argument("--iterations", type=int, default=defaults.iterations, help="training batches per network")
    parser.add_argument("--seeds", type=int, nargs="+", default=[defaults.seed],
                        help="training seeds (weights, patches, augmentation); both networks train once per seed")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steady on a shared machine; 0: torch's choice)")
    parser.add_argument("--work-dir", type=Path, default=default_work_dir() / "ablation",
                        help="phantoms, predictions and reports")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 + 2 tiny phantoms, 2 iterations")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        settings = QUICK
        work_dir = args.work_dir.resolve() / "quick"
    else:
        settings = replace(defaults, train_cases=args.train_cases, test_cases=args.test_cases,
                           iterations=args.iterations)
        work_dir = args.work_dir.resolve()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available")

    machine = machine_description(args.device)
    print(format_machine(machine), flush=True)
    print(f"settings: {json.dumps({k: v for k, v in asdict(settings).items() if k != 'seed'})}; "
          f"seeds {' '.join(map(str, args.seeds))}", flush=True)
    start = time.perf_counter()
    outcome = run(settings, args.seeds, work_dir, args.device)
    machine["load_average_end"] = [round(x, 2) for x in load_average()]
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at the end "
          f"{' '.join(f'{x:.2f}' for x in machine['load_average_end'])}\n")
    print(render(outcome["rows"]))
    print()
    print(outcome["comparison_markdown"])
    report = {"machine": machine, "settings": asdict(settings), "seeds": args.seeds, "device": args.device, **outcome}
    (work_dir / "ablation.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"results: {work_dir / 'ablation.json'}; reports: {work_dir / 'report'}")


if __name__ == "__main__":
    main()
