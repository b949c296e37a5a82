"""Locating a bundle folder from a bundle config, wherever ``monai.bundle run`` is started."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: The ``bundles/`` folder of a source checkout (next to the ``monai_attn`` package).
REPOSITORY_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _is_bundle(folder: Path, name: str) -> bool:
    metadata = folder / "configs" / "metadata.json"
    if not metadata.is_file():
        return False
    try:
        return json.loads(metadata.read_text(encoding="utf-8")).get("name") == name
    except (OSError, json.JSONDecodeError):
        return False


def bundle_dir(name: str) -> str:
    """The folder of bundle ``name`` (its ``configs/metadata.json`` has ``"name": name``).

    MONAI bundle configs resolve paths from ``bundle_root``, but ``monai.bundle run`` does
    not tell a config where its file lives. This looks, in order, at the current folder (run
    from inside the bundle, as MONAI's model zoo does), ``./bundles/<name>`` (run from the
    repository root) and the ``bundles/<name>`` folder of the source checkout this package
    comes from. ``--bundle_root DIR`` on the command line replaces the whole lookup.

    Raises:
        FileNotFoundError: none of the places holds the bundle.
    """
    cwd = Path(os.getcwd())
    candidates = [cwd, cwd / "bundles" / name, REPOSITORY_BUNDLES / name]
    for folder in candidates:
        if _is_bundle(folder, name):
            return str(folder)
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"bundle '{name}' not found (looked in {tried}); pass --bundle_root DIR")


def resolve_bundle(name_or_path: str | os.PathLike) -> Path:
    """A bundle folder from a path, a bundle name or a short name (``ct``, ``retina``, ``cells``)."""
    from monai_attn.errors import InputError

    path = Path(name_or_path)
    if (path / "configs").is_dir():
        return path
    short = {"ct": "abdomen_ct_attention_unet", "retina": "retina_attention_unet", "cells": "cells_attention_unet"}
    name = short.get(str(name_or_path), str(name_or_path))
    try:
        return Path(bundle_dir(name))
    except FileNotFoundError as err:
        raise InputError(f"no bundle named {name_or_path!r} (known: {', '.join(short)})", path=path) from err
