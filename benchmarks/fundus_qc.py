"""Quality control of fundus results: the uncertainty limit, its false alarms and what it catches.

    python benchmarks/fundus_qc.py                         # ~6 min on a 2-core CPU with the shipped retina bundle
    python benchmarks/fundus_qc.py --quick                 # 3 small photographs (smoke test)

1. **Tuning** on fundus phantoms photographed with acquisition variety (``synth retina
   --variety``, seed 500: never used for training or held-out scores): every photograph is
   segmented by the retina bundle as ``monai-attn segment`` does, and the mean normalised entropy
   of the rim and of the cup (:mod:`monai_attn.fundus_qc`) is listed beside the disc and cup Dice
   against the phantom's labels. :data:`monai_attn.fundus_qc.ENTROPY_WARN` is chosen from this
   table (and only from it).
2. **Held-out check** on the held-out variety phantoms (seed 1000, as the retina model card scores
   them): the photographs whose disc or cup Dice is below ``--bad-disc`` / ``--bad-cup`` (the
   failures QC should flag) and the others that the uncertainty check flags anyway (false
   alarms), with the verdict of every check.

No real photograph is used: the limit must not be tuned on the photographs it is judged on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import format_machine, machine_description, markdown_table  # noqa: E402

from monai_attn.fundus import CUP_LABELS, DISC_LABELS  # noqa: E402
from monai_attn.fundus_qc import ENTROPY_WARN  # noqa: E402
from monai_attn.inference import Segmenter  # noqa: E402
from monai_attn.synthetic.retina import generate_retina_case  # noqa: E402

#: Seeds of the tuning and held-out phantoms.
TUNING_SEED, HELDOUT_SEED = 500, 1000


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def score_phantoms(segmenter: Segmenter, seed: int, cases: int, size: int, work: Path) -> list[dict]:
    """Segment ``cases`` variety phantoms of ``seed``: Dice, entropies and the QC verdict of each."""
    rows = []
    for index in range(cases):
        image, reference, _ = generate_retina_case(seed, index, size, variety=True)
        path = work / f"retina_{seed}_{index:03d}.png"
        Image.fromarray(image).save(path)
        result = segmenter.segment(path)
        labels = result.labels.T  # the reader's (X, Y) grid -> the phantom's (row, column) arrays
        measures = result.qc.measures
        rows.append({
            "case": f"{seed}/{index}",
            "disc Dice": dice(np.isin(labels, DISC_LABELS), np.isin(reference, DISC_LABELS)),
            "cup Dice": dice(np.isin(labels, CUP_LABELS), np.isin(reference, CUP_LABELS)),
            "rim entropy": measures.get("rim_entropy"),
            "cup entropy": measures.get("cup_entropy"),
            "verdict": result.qc.verdict(),
        })
    return rows


def table(rows: list[dict]) -> str:
    header = ["case", "disc Dice", "cup Dice", "rim entropy", "cup entropy", "QC"]
    body = [[r["case"], f"{r['disc Dice']:.3f}", f"{r['cup Dice']:.3f}",
             "–" if r["rim entropy"] is None else f"{r['rim entropy']:.3f}",
             "–" if r["cup entropy"] is None else f"{r['cup entropy']:.3f}", r["verdict"]] for r in rows]
    return markdown_table(header, body, align="lrrrrl")


def largest_entropy(row: dict) -> float:
    return max((v for v in (row["rim entropy"], row["cup entropy"]) if v is not None), default=0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=16, help="tuning phantoms (seed 500)")
    parser.add_argument("--heldout", type=int, default=10, help="held-out phantoms (seed 1000)")
    parser.add_argument("--size", type=int, default=768, help="photograph width and height (pixels)")
    parser.add_argument("--bad-disc", type=float, default=0.8, help="disc Dice below which a result has failed")
    parser.add_argument("--bad-cup", type=float, default=0.7, help="cup Dice below which a result has failed")
    parser.add_argument("--quick", action="store_true", help="two tuning and one held-out phantom of 256 px")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.heldout, args.size = 2, 1, 256

    segmenter = Segmenter.from_bundle("retina")
    print(f"# Fundus QC: uncertainty\n\n{format_machine(machine_description())}\n")
    with tempfile.TemporaryDirectory() as folder:
        tuning = score_phantoms(segmenter, TUNING_SEED, args.cases, args.size, Path(folder))
        heldout = score_phantoms(segmenter, HELDOUT_SEED, args.heldout, args.size, Path(folder))
    def failed(row: dict) -> bool:
        return row["disc Dice"] < args.bad_disc or row["cup Dice"] < args.bad_cup

    good = [largest_entropy(r) for r in tuning if not failed(r)]
    bad = [largest_entropy(r) for r in tuning if failed(r)]
    print(f"## Tuning phantoms (seed {TUNING_SEED}, --variety)\n\n{table(tuning)}\n")
    for name, values in (("good", good), ("failed", bad)):
        if values:
            print(f"Largest rim or cup entropy of the {len(values)} {name} results (failed: disc Dice < {args.bad_disc} "
                  f"or cup Dice < {args.bad_cup}): min {min(values):.3f}, median {statistics.median(values):.3f}, "
                  f"max {max(values):.3f}")
    print(f"\nENTROPY_WARN = {ENTROPY_WARN}\n")
    print(f"## Held-out phantoms (seed {HELDOUT_SEED}, --variety)\n\n{table(heldout)}\n")
    failures = [r for r in heldout if failed(r)]
    caught = [r for r in failures if not r["verdict"].startswith("QC ok")]
    alarms = [r for r in heldout if not failed(r) and "uncertain" in r["verdict"]]
    print(f"Failures: {len(failures)}, flagged by QC: {len(caught)}; uncertainty warnings on results that did "
          f"not fail: {len(alarms)} of {len(heldout) - len(failures)}")


if __name__ == "__main__":
    main()
