"""Widen a bundle's weights by an integer factor, keeping what the network computes.

Writes a state dict for the bundle's ``network_def`` with every entry of ``channels``
multiplied by ``--factor`` (:func:`monai_attn.networks.widen.widen_state_dict`), and checks
that the wide network's logits equal the narrow one's on a random input. Train from it with
the same override, e.g. for the CT bundle at the width of Oktay et al. 2018::

    python scripts/widen_weights.py --bundle bundles/abdomen_ct_attention_unet --factor 2 -o wide.pt
    python -m monai.bundle run --config_file "[...common.json, ...train.json]" \\
        --network_def#channels "[16,32,64,128,256]" --initial_weights wide.pt ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from monai_attn.bundle.configs import bundle_parser
from monai_attn.inference.models import load_network
from monai_attn.networks.widen import widen_state_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path, help="bundle folder (its configs/common.json)")
    parser.add_argument("--weights", type=Path, help="narrow state dict (default: the bundle's models/model.pt)")
    parser.add_argument("--factor", type=int, default=2, help="width multiplier (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weight shares")
    parser.add_argument("-o", "--output", required=True, type=Path, help="wide state dict to write")
    args = parser.parse_args()

    config = bundle_parser(args.bundle)
    narrow = load_network(config, args.weights or args.bundle / "models" / "model.pt").eval()
    channels = [int(c) * args.factor for c in config["network_def"]["channels"]]
    config["network_def"]["channels"] = channels
    wide = config.get_parsed_content("network_def", lazy=False).eval()
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, torch.Generator().manual_seed(args.seed)))

    x = torch.rand(1, narrow.in_channels, *[wide.size_divisor * 2] * narrow.spatial_dims, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = float((narrow(x) - wide(x)).abs().max())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wide.state_dict(), args.output)
    print(f"channels {list(narrow.channels)} -> {channels}; max |logit difference| {difference:.2e}; wrote {args.output}")


if __name__ == "__main__":
    main()
