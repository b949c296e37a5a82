"""The bundles' standalone configs, generated from ``common.json`` and the parts of each workflow.

MONAI's model zoo runs a bundle from its folder with one config per workflow::

    python -m monai.bundle run --config_file configs/inference.json

so ``configs/inference.json``, ``configs/train.json`` and ``configs/evaluate.json`` must each hold
everything they need. The settings are still written once: ``configs/common.json`` (every
setting inference and training share) and ``configs/parts/<workflow>.json`` (what only that
workflow adds) are the sources; the standalone files are merged from them as MONAI merges a list
of config files (``+key`` extends a list or dict) and are never edited by hand. The lists used so
far (``"['configs/common.json','configs/train.json']"``) keep working: a standalone file holds
common.json's items already.

Regenerate after editing a source, and check that they are current (CI does)::

    python -m monai_attn.bundle.standalone            # rewrite every shipped bundle's files
    python -m monai_attn.bundle.standalone --check    # exit 1 naming any stale file
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from monai_attn.bundle.json_config import read_json_config

#: Standalone config (under ``configs/``) -> its sources in merge order (under ``configs/``).
STANDALONE: dict[str, tuple[str, ...]] = {
    "inference.json": ("common.json", "parts/inference.json"),
    "train.json": ("common.json", "parts/train.json"),
    "evaluate.json": ("common.json", "parts/train.json", "parts/evaluate.json"),
}


def merged_config(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Config dicts merged in order as MONAI merges config files: a later key replaces an earlier
    one, a ``+key`` extends the earlier list or dict (and is copied when there is none)."""
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in source.items():
            if key.startswith("+") and isinstance(merged.get(key[1:]), (list, dict)):
                target = merged[key[1:]]
                merged[key[1:]] = [*target, *value] if isinstance(target, list) else {**target, **value}
            else:
                merged[key.removeprefix("+")] = value
    return merged


def standalone_text(folder: str | os.PathLike, name: str) -> str:
    """The text ``configs/<name>`` of the bundle in ``folder`` must have (4-space JSON, as MONAI writes it)."""
    configs = Path(folder) / "configs"
    merged = merged_config([read_json_config(configs / source) for source in STANDALONE[name]])
    return json.dumps(merged, indent=4, ensure_ascii=False) + "\n"


def stale_files(folder: str | os.PathLike) -> list[Path]:
    """The standalone configs of the bundle in ``folder`` that differ from their sources."""
    configs = Path(folder) / "configs"
    return [configs / name for name in STANDALONE
            if not (configs / name).is_file() or (configs / name).read_text(encoding="utf-8") != standalone_text(folder, name)]


def write_standalone(folder: str | os.PathLike) -> list[Path]:
    """Rewrite the stale standalone configs of the bundle in ``folder``; returns those written."""
    written = stale_files(folder)
    for path in written:
        path.write_text(standalone_text(folder, path.name), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> int:
    from monai_attn.bundle.lookup import installed_bundles

    parser = argparse.ArgumentParser(prog="python -m monai_attn.bundle.standalone", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    parser.add_argument("bundles", nargs="*", type=Path, help="bundle folders (default: every shipped bundle)")
    args = parser.parse_args(argv)
    folders = args.bundles or list(installed_bundles().values())
    stale = [path for folder in folders for path in (stale_files(folder) if args.check else write_standalone(folder))]
    for path in stale:
        print(f"{path}: {'stale, run python -m monai_attn.bundle.standalone' if args.check else 'written'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
