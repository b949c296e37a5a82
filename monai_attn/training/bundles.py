"""Locating a bundle folder from a bundle config, wherever ``monai.bundle run`` is started."""

from __future__ import annotations

import os
from pathlib import Path

from monai_attn.bundle_lookup import bundle_names, installed_bundles
from monai_attn.errors import InputError


def _is_bundle(folder: Path, name: str) -> bool:
    try:
        names = bundle_names(folder)
    except InputError:  # a folder with broken metadata is not the bundle asked for
        return False
    return names is not None and names[0] == name


def bundle_dir(name: str) -> str:
    """The folder of bundle ``name`` (its ``configs/metadata.json`` has ``"name": name``).

    MONAI bundle configs resolve paths from ``bundle_root``, but ``monai.bundle run`` does
    not tell a config where its file lives. This looks, in order, at the current folder (run
    from inside a copy of the bundle, as MONAI's model zoo does), ``./bundles/<name>`` (run
    from the root of a repository checkout) and the bundles shipped with the package
    (:func:`monai_attn.bundle_lookup.installed_bundles`). ``--bundle_root DIR`` on the command
    line replaces the whole lookup.

    Raises:
        InputError: none of the places holds the bundle.
    """
    cwd = Path(os.getcwd())
    candidates = (cwd, cwd / "bundles" / name)
    for folder in candidates:
        if _is_bundle(folder, name):
            return str(folder)
    shipped = installed_bundles()
    if name in shipped:
        return str(shipped[name])
    raise InputError(
        f"bundle '{name}' not found in {candidates[0]}, {candidates[1]} or the installed bundles "
        f"({', '.join(shipped)}); pass --bundle_root DIR"
    )
