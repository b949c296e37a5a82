"""``monai-attn demo``: the whole pipeline end to end, offline, in a few minutes on a CPU.

1. synthesise abdominal CT phantoms the model has never seen and write them as DICOM series;
2. segment them with the shipped abdominal CT bundle (``monai-attn segment``), with previews
   and organ statistics;
3. evaluate the labels against the phantoms' truth (``monai-attn evaluate``) and print the
   per-organ table.

Each step is the public command a user would run; this module only chains them.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from monai_attn.commands.segment import DEFAULT_BUNDLE

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="synthesise CT phantoms as DICOM, segment them with the CT bundle, evaluate",
        description="End-to-end demo: phantom DICOM series -> segment (abdominal CT bundle) -> "
                    "evaluate against the phantoms' labels. Writes everything under --output.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_output"),
                        help="folder for data, predictions, previews and the report (default: demo_output)")
    parser.add_argument("--cases", type=int, default=3, help="number of phantom scans (default: 3)")
    parser.add_argument("--seed", type=int, default=2026,
                        help="phantom seed (default: 2026, unlike the seed the bundle was trained on)")
    parser.add_argument("--size", type=int, nargs=3, default=(256, 256, 128), metavar=("X", "Y", "Z"),
                        help="phantom size in voxels (default: 256 256 128)")
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="bundle to segment with")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from monai_attn.cli import main
    from monai_attn.synthetic import write_abdomen_ct_dataset

    out: Path = args.output
    data, predictions, report = out / "data", out / "predictions", out / "report"
    start = time.perf_counter()

    logger.info("1/3 synthesising %d abdominal CT phantoms as DICOM series in %s", args.cases, data)
    write_abdomen_ct_dataset(data, cases=0, test_cases=args.cases, seed=args.seed, size=tuple(args.size), dicom=True)

    logger.info("2/3 segmenting with %s", args.bundle)
    code = main(["segment", "-i", str(data / "imagesTs_dicom"), "-o", str(predictions),
                 "--bundle", str(args.bundle), "--preview", "--statistics"])
    if code:
        return code

    logger.info("3/3 evaluating against the phantom labels")
    code = main(["evaluate", "--pred", str(predictions), "--gt", str(data / "labelsTs"), "-o", str(report)])
    logger.info("demo finished in %.0f s: previews in %s, report in %s", time.perf_counter() - start,
                predictions, report)
    return code
