"""``monai-attn prepare LAYOUT SOURCE -o DIR``: a downloaded data set into the folders the tools read.

Fundus photographs with optic disc and cup references, in the layout each public data set ships
(:data:`monai_attn.dataset_preparation.DISC_CUP_LAYOUTS`: REFUGE, the DoFE/BEAL disc crops,
Drishti-GS1, PAPILA, RIM-ONE DL), become ``DIR/images/<case>`` (the photographs, copied unchanged) and
``DIR/labels/<case>.png`` (0 background, 1 disc rim, 2 cup: the retina bundle's scheme), which
the retina bundle trains on (``--dataset_dir DIR``) and ``segment`` / ``evaluate`` read. A case
whose reference cannot be read is reported at the end and the others are still written.
"""

from __future__ import annotations

import argparse
import logging
import time

from monai_attn.errors import InputError
from monai_attn.wording import plural

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from monai_attn.dataset_preparation import DISC_CUP_LAYOUTS

    parser = subparsers.add_parser(
        "prepare",
        help="turn a downloaded fundus data set (REFUGE, disc crops, Drishti-GS, PAPILA, RIM-ONE DL) into images/ and labels/",
        description=__doc__.split("\n\n", 1)[1].replace("``", "").replace(":data:`", "").replace("`", ""),
    )
    parser.add_argument("layout", choices=list(DISC_CUP_LAYOUTS),
                        help="; ".join(f"{name}: {text}" for name, (_, text) in DISC_CUP_LAYOUTS.items()))
    parser.add_argument("source", help="the data set's folder as downloaded and unpacked (only read)")
    parser.add_argument("-o", "--output", required=True, help="folder for images/ and labels/ (created)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from monai_attn.dataset_preparation import prepare_disc_cup

    start = time.perf_counter()
    result = prepare_disc_cup(args.layout, args.source, args.output)
    logger.info("%s: %s with disc and cup labels in %.1f s -> %s", args.layout, plural(len(result.written), "case"),
                time.perf_counter() - start, args.output)
    for source, reason in result.failed:
        logger.error("%s: skipped: %s", source, reason)
    if result.failed:
        raise InputError(f"{plural(len(result.failed), 'case')} could not be prepared (listed above); "
                         f"{len(result.written)} written")
    return 0
