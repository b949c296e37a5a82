"""``monai-attn publish``: make a trained checkpoint the shipped weights of a bundle.

Thin wrapper over :func:`monai_attn.training.publish.publish_checkpoint`; see docs/bundles.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="make a trained checkpoint the weights of a bundle, with a new version",
        description=(
            "Check that CHECKPOINT loads into the bundle's network_def, score it and the shipped weights on "
            "the bundle's held-out phantoms (refusing a worse candidate unless --force), then keep the old "
            "weights in models/history/, replace models/model.pt and set the metadata's version, changelog "
            "(NOTES) and eval_metrics (the candidate's held-out Dice). Training never writes into a bundle; "
            "this is the step that does."
        ),
    )
    parser.add_argument("--bundle", required=True, help="bundle folder, name or short name (ct, retina, cells)")
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a run's models/model.pt (or an epoch checkpoint; only the network is kept)")
    parser.add_argument("--version", required=True, help="the new bundle version, greater than the current one")
    parser.add_argument("--notes", required=True, help="changelog entry: what changed, what the weights reach")
    parser.add_argument("--force", action="store_true",
                        help="publish even a candidate worse than the shipped weights on the held-out phantoms")
    parser.add_argument("--real-case", nargs=2, type=Path, metavar=("IMAGE", "REFERENCE"),
                        help="also score the candidate once on a real image and its reference label map; the Dice "
                        "is printed and written into the metadata (real_<task>_metrics)")
    parser.add_argument("--real-mapping", metavar="DESCRIPTOR",
                        help="datasets/ descriptor of the reference's label ids, e.g. totalsegmentator")
    parser.add_argument("--heldout-data", type=Path, metavar="DIR",
                        help="keep the generated held-out phantoms here and reuse them (default: a temporary folder)")
    parser.add_argument("--trust-config", action="store_true",
                        help="let the bundle's configs run code although they are not the shipped ones "
                        "(a bundle you edited, e.g. to a wider network_def)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from monai_attn.training.publish import publish_checkpoint

    weights = publish_checkpoint(args.bundle, args.checkpoint, args.version, args.notes, force=args.force,
                                 heldout_data=args.heldout_data, real_case=args.real_case,
                                 real_mapping=args.real_mapping, trust=args.trust_config)
    print(f"{weights}: published as version {args.version}")
    return 0
