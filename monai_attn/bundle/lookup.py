"""Finding a bundle folder from a path, a bundle name or a short name.

The bundles shipped with the package (:func:`~monai_attn.bundle.package_data.shipped_folder`) are
known by their full name (``"name"`` in ``configs/metadata.json``, e.g.
``abdomen_ct_attention_unet``) and by a short one (``"short_name"``, e.g. ``ct``), so that
``monai-attn segment --bundle ct`` and ``--bundle bundles/abdomen_ct_attention_unet`` both work.
A bundle's own configs find their folder with :func:`bundle_dir` (``bundle_root``).

Example::

    >>> resolve_bundle("retina").name
    'retina_attention_unet'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from monai_attn.errors import InputError
from monai_attn.bundle.package_data import shipped_folder

#: The bundle ``monai-attn segment`` uses without ``--bundle``: abdominal CT.
DEFAULT_BUNDLE_NAME = "abdomen_ct_attention_unet"


def bundle_names(folder: Path) -> tuple[str, str | None] | None:
    """``(name, short_name)`` from the bundle's metadata, or None for a folder that is no bundle."""
    metadata = folder / "configs" / "metadata.json"
    if not metadata.is_file():
        return None
    try:
        content = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"unreadable bundle metadata ({err})", path=metadata) from err
    return content.get("name", folder.name), content.get("short_name")


def _catalogue() -> dict[str, tuple[str | None, Path]]:
    """Full name -> (short name, folder) of every shipped bundle."""
    found = {}
    for folder in sorted(shipped_folder("bundles").iterdir()):
        names = bundle_names(folder) if folder.is_dir() else None
        if names is not None:
            found[names[0]] = (names[1], folder)
    return found


def installed_bundles() -> dict[str, Path]:
    """Full name -> folder of every bundle shipped with the package, sorted by name."""
    return {name: folder for name, (_, folder) in _catalogue().items()}


def resolve_bundle(name_or_path: str | os.PathLike) -> Path:
    """The folder of a bundle given as a folder path, a full bundle name or a short name.

    An existing folder is taken as it is (what it must hold is checked by whoever reads it);
    otherwise ``name_or_path`` must be the ``name`` or ``short_name`` of a shipped bundle.

    Raises:
        InputError: neither a folder nor a known name; the message lists the known names.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    catalogue = _catalogue()
    wanted = os.fspath(name_or_path)
    for name, (short, folder) in catalogue.items():
        if wanted in (name, short):
            return folder
    known = ", ".join(f"{name} ({short})" if short else name for name, (short, _) in catalogue.items())
    raise InputError(f"no such bundle: not a folder, nor one of {known}", path=wanted)


def default_bundle() -> Path:
    """The folder of :data:`DEFAULT_BUNDLE_NAME`."""
    return resolve_bundle(DEFAULT_BUNDLE_NAME)


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
    (:func:`installed_bundles`). ``--bundle_root DIR`` on the command
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
