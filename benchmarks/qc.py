"""Quality control of CT results: calibration, false alarms, detection of true failures, cost.

    python benchmarks/qc.py                      # ~15 min on a 2-core CPU with the shipped CT bundle
    python benchmarks/qc.py --quick              # tiny phantoms, seconds (smoke test)

1. **Calibration** on tuning phantoms (seed 500, never used for training or held-out scores):
   the bundle's network with temperature 1, then the temperature fitted by
   :func:`monai_attn.qc.fit_temperature` on a sample of voxels around the organs; top-label
   ECE before and after, and each organ's mean entropy at the fitted temperature (what the
   entropy limits of :mod:`monai_attn.qc.organ_checks` are chosen from).
2. **False alarms** on held-out phantoms (seed 1000): organs with Dice >= 0.5 that QC calls ``fail``.
3. **Detection** on constructed failures of the same phantoms: intensities shifted by +150 HU
   and scaled by 0.6 (miscalibrated scanners), and the scan cut through the kidneys (an organ
   at the edge of the field of view); plus ``--extra-case IMAGE LABELS MODEL`` triples (e.g. the
   real validation CT segmented by an earlier model). For every organ that truly failed
   (Dice < 0.5), whether QC flagged it (``warn``, ``fail`` or ``partial``) and why.
4. **Cost**: QC's share of the ``segment`` wall time (input checks, the softmax entropy of the
   logits, the organ checks) on a 512x512x200 phantom.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_description  # noqa: E402

from monai_attn.transforms import RemapLabels  # noqa: E402
from monai_attn.inference import LogitsToLabelsd, OrganQCd, Segmenter  # noqa: E402
from monai_attn.bundle.configs import bundle_parser
from monai_attn.inference.models import load_network  # noqa: E402
from monai_attn.io import load_image  # noqa: E402
from monai_attn.qc import expected_calibration_error, fit_temperature  # noqa: E402
from monai_attn.synthetic import generate_abdomen_ct_case  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ORGANS = {1: "spleen", 2: "kidney", 3: "pancreas"}


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    total = prediction.sum() + reference.sum()
    return float(2 * (prediction & reference).sum() / total) if total else float("nan")


def as_image(hu: np.ndarray, affine: np.ndarray, name: str):
    from monai.data import MetaTensor

    return MetaTensor(torch.as_tensor(hu, dtype=torch.float32)[None], affine=torch.as_tensor(affine),
                      meta={"filename_or_obj": name})


def labels_stage(segmenter: Segmenter) -> LogitsToLabelsd:
    """The segmenter's logits-to-labels stage (it holds the temperature)."""
    stages = [t for t in getattr(segmenter.postprocessing, "transforms", ()) if isinstance(t, LogitsToLabelsd)]
    if len(stages) != 1:
        raise SystemExit("the bundle's postprocessing has no single LogitsToLabelsd stage")
    return stages[0]


def calibration(segmenter: Segmenter, cases: list[tuple[np.ndarray, np.ndarray, np.ndarray]], voxels: int) -> dict:
    """Fit the temperature on voxels near the organs; ECE before/after; organ entropies at the fit."""
    rng = np.random.default_rng(0)
    logits, labels = [], []
    labels_stage(segmenter).temperature = 1.0
    for k, (hu, reference, affine) in enumerate(cases):
        result = segmenter.segment(as_image(hu, affine, f"tuning_{k}"), probabilities=True)
        near = np.argwhere(_dilate(reference > 0) | (result.labels > 0))
        pick = near[rng.choice(len(near), size=min(voxels, len(near)), replace=False)]
        probs = result.probabilities[tuple(pick.T)].astype(np.float32)
        logits.append(np.log(np.clip(probs, 1e-6, None)))  # log-softmax: logits up to a per-voxel constant
        labels.append(reference[tuple(pick.T)])
    logits_t = torch.as_tensor(np.concatenate(logits))
    labels_t = torch.as_tensor(np.concatenate(labels).astype(np.int64))
    temperature = fit_temperature(logits_t, labels_t)
    before = expected_calibration_error(torch.softmax(logits_t, 1).numpy(), labels_t.numpy())
    after = expected_calibration_error(torch.softmax(logits_t / temperature, 1).numpy(), labels_t.numpy())
    labels_stage(segmenter).temperature = temperature
    entropies = {name: [] for name in ORGANS.values()}
    for k, (hu, _, affine) in enumerate(cases):
        result = segmenter.segment(as_image(hu, affine, f"tuning_{k}"))
        for name, organ in result.qc.organs.items():
            if organ.entropy is not None:
                entropies[name].append(organ.entropy)
    return {"temperature": round(temperature, 3), "ece_before": round(before, 4), "ece_after": round(after, 4),
            "voxels": int(len(labels_t)), "entropy": {n: [round(v, 3) for v in e] for n, e in entropies.items()}}


def _dilate(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=3)


def score(segmenter: Segmenter, hu: np.ndarray, reference: np.ndarray, affine: np.ndarray, name: str) -> list[dict]:
    """Segment, then one row per organ: Dice against ``reference`` and the QC verdict."""
    result = segmenter.segment(as_image(hu, affine, name))
    rows = []
    for value, organ in ORGANS.items():
        qc = result.qc.organs[organ]
        rows.append({"case": name, "organ": organ, "dice": dice(result.labels == value, reference == value),
                     "status": qc.status, "reasons": "; ".join(qc.reasons), "entropy": qc.entropy})
    return rows


def constructed_failures(hu: np.ndarray, reference: np.ndarray, affine: np.ndarray):
    """(name, HU, labels, affine) variants of one phantom that should make the model or the scan fail."""
    yield "shift+150HU", np.where(hu > -900, hu + 150.0, hu), reference, affine
    yield "scale0.6", hu * 0.6, reference, affine
    z = np.nonzero((reference == 2).any(axis=(0, 1)))[0]
    cut = (z.min() + z.max()) // 2
    keep = slice(cut, None)
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [0, 0, cut] + affine[:3, 3]
    yield "cut-at-kidneys", hu[:, :, keep], reference[:, :, keep], shifted


def qc_cost(segmenter: Segmenter, size: tuple[int, int, int]) -> dict:
    """QC's seconds on a large phantom: input checks + organ checks + the entropy softmax.

    The entropy is computed inside the reduction of the logits to labels; its share is the time
    of that reduction on logits of the case's network grid minus the time of the argmax alone.
    """
    from monai_attn.qc import check_ct_input

    hu, _, affine = generate_abdomen_ct_case(1000, 0, size, (0.8, 0.8, 2.5))
    image = as_image(hu, affine, "large")
    start = time.perf_counter()
    check_ct_input(image)
    input_seconds = time.perf_counter() - start
    result = segmenter.segment(image)
    net_shape = segmenter.preprocessing({"image": image})["image"].shape[1:]
    logits = torch.randn(len(segmenter.label_names) + 1, *net_shape)
    start = time.perf_counter()
    LogitsToLabelsd("pred", temperature=labels_stage(segmenter).temperature)({"pred": logits})
    with_entropy = time.perf_counter() - start
    start = time.perf_counter()
    logits.argmax(0)
    argmax_only = time.perf_counter() - start
    labels = torch.from_numpy(result.labels)[None]
    from monai.data import MetaTensor

    start = time.perf_counter()
    OrganQCd(segmenter.label_names)({"pred": MetaTensor(labels, affine=torch.as_tensor(affine)), "input": image})
    organ_seconds = time.perf_counter() - start  # runs the input checks again
    qc_seconds = input_seconds + organ_seconds + max(0.0, with_entropy - argmax_only)
    return {"size": list(size), "segment_seconds": round(result.timings["total"], 2),
            "qc_seconds": round(qc_seconds, 3), "share": round(qc_seconds / result.timings["total"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "bundles" / "abdomen_ct_attention_unet")
    parser.add_argument("--cases", type=int, default=8, help="held-out phantoms (seed 1000)")
    parser.add_argument("--tuning-cases", type=int, default=4, help="calibration phantoms (seed 500)")
    parser.add_argument("--extra-case", nargs=3, action="append", default=[], metavar=("IMAGE", "LABELS", "MODEL"),
                        help="a real case (labels in TotalSegmentator v2 ids) and the weights to segment it with")
    parser.add_argument("--quick", action="store_true", help="tiny phantoms, for a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    size, spacing = ((64, 64, 40), (5.0, 5.0, 6.0)) if args.quick else ((256, 256, 128), None)
    cases, tuning = (2, 1) if args.quick else (args.cases, args.tuning_cases)
    torch.manual_seed(0)
    segmenter = Segmenter.from_bundle(args.bundle, overrides={"device": "cpu"})
    report = {"machine": machine_description()}
    tuning_cases = [generate_abdomen_ct_case(500, k, size, spacing) for k in range(tuning)]
    report["calibration"] = calibration(segmenter, tuning_cases, 2000 if args.quick else 200_000)
    rows = []
    for k in range(cases):
        hu, reference, affine = generate_abdomen_ct_case(1000, k, size, spacing)
        hu = hu.astype(np.float32)
        rows += [{**r, "kind": "held-out"} for r in score(segmenter, hu, reference, affine, f"heldout_{k}")]
        for name, variant_hu, variant_ref, variant_affine in constructed_failures(hu, reference, affine):
            rows += [{**r, "kind": name} for r in score(segmenter, variant_hu, variant_ref, variant_affine,
                                                        f"heldout_{k}/{name}")]
    for image_path, labels_path, model in args.extra_case:
        parser = bundle_parser(args.bundle, {"device": "cpu", "temperature": labels_stage(segmenter).temperature})
        extra = Segmenter.from_parser(parser, load_network(parser, model))
        image = load_image(image_path)
        reference = RemapLabels("totalsegmentator")(np.asarray(nib.load(labels_path).dataobj))
        rows += [{**r, "kind": f"real ({Path(model).name})"}
                 for r in score(extra, image[0].numpy(), reference, np.asarray(image.affine), Path(image_path).name)]
    report["rows"] = rows
    report["cost"] = qc_cost(segmenter, (96, 96, 40) if args.quick else (512, 512, 200))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))


def print_report(report: dict) -> None:
    c = report["calibration"]
    print(f"## Calibration ({c['voxels']} voxels of tuning phantoms)\n")
    print("| temperature | ECE before | ECE after |\n|--:|--:|--:|")
    print(f"| {c['temperature']} | {c['ece_before']:.4f} | {c['ece_after']:.4f} |\n")
    print("| organ | mean entropy per tuning case (fitted temperature) |\n|---|---|")
    for name, values in c["entropy"].items():
        print(f"| {name} | {', '.join(f'{v:.3f}' for v in values)} |")
    rows = report["rows"]
    good = [r for r in rows if r["kind"] == "held-out" and r["dice"] >= 0.5]
    print(f"\n## False alarms on held-out phantoms\n\n{sum(r['status'] == 'fail' for r in good)} of {len(good)} "
          f"organs with Dice >= 0.5 flagged fail; {sum(r['status'] == 'warn' for r in good)} warn\n")
    print("## Constructed and real failures\n")
    print("| kind | organs | Dice < 0.5 | of those flagged | reasons |\n|---|--:|--:|--:|---|")
    for kind in dict.fromkeys(r["kind"] for r in rows if r["kind"] != "held-out"):
        subset = [r for r in rows if r["kind"] == kind]
        failed = [r for r in subset if not r["dice"] >= 0.5]
        flagged = [r for r in failed if r["status"] != "ok"]
        reasons = sorted({r["reasons"].split("; ")[0] for r in flagged if r["reasons"]})
        print(f"| {kind} | {len(subset)} | {len(failed)} | {len(flagged)} | {'; '.join(reasons)[:200]} |")
    failed = [r for r in rows if r["kind"] != "held-out" and not r["dice"] >= 0.5]
    flagged = sum(r["status"] != "ok" for r in failed)
    print(f"\nDetection: {flagged} of {len(failed)} truly failed organs flagged warn/fail/partial "
          f"({100 * flagged / max(1, len(failed)):.0f} %)\n")
    cost = report["cost"]
    print(f"## Cost\n\nQC {cost['qc_seconds']:.2f} s of {cost['segment_seconds']:.1f} s "
          f"({100 * cost['share']:.1f} %) on a {'x'.join(map(str, cost['size']))} phantom")


if __name__ == "__main__":
    main()
