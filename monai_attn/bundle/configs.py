"""Reading a bundle's configs and metadata, and deciding whether they are trusted.

A bundle's inference settings are MONAI configs: ``configs/common.json`` (every setting:
spacing, intensity window, window size, label colours, post-processing rules, the network,
``preprocessing``, ``inferer`` and ``postprocessing``) merged with ``configs/inference.json``
(data set, evaluator, writer), with ``configs/metadata.json`` as ``_meta_`` (label names come
from its ``channel_def``), exactly as ``python -m monai.bundle run --config_file
"['configs/common.json','configs/inference.json']"`` reads them. In a bundle with
``configs/parts/`` (the shipped ones), ``inference.json`` is generated from ``common.json`` and
``parts/inference.json`` (:mod:`monai_attn.bundle.standalone`) and must be current.

Trust: MONAI configs are code (``$`` expressions run as Python, ``_target_`` builds any
class). The bundles shipped with the package are trusted; any other bundle folder, ``--config``
file or configs embedded in a TorchScript file are checked, metadata included, with
:func:`monai_attn.bundle.trust.check_config_trusted` unless the caller trusts them
(``segment --trust-config``). A copy of a shipped bundle is trusted only when every file of
its ``configs/`` has the shipped file's SHA-256; embedded configs only when they and their
metadata all equal one shipped bundle's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser
from monai.bundle.utils import merge_kv

from monai_attn.bundle.json_config import read_config_with_meta, read_json_config
from monai_attn.bundle.lookup import installed_bundles
from monai_attn.bundle.spec import INFERENCE_CONFIGS, inference_config_files
from monai_attn.bundle.standalone import stale_files
from monai_attn.bundle.trust import check_config_trusted
from monai_attn.errors import InputError


def bundle_parser(
    bundle_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None, trust: bool | None = None
) -> ConfigParser:
    """The merged inference config of a bundle folder, its metadata as ``_meta_``, ``overrides`` applied.

    ``trust`` None trusts the bundles shipped with the package only; False checks any bundle.
    """
    bundle = Path(bundle_dir)
    files = inference_config_files(bundle)
    stale = stale_files(bundle) if (bundle / "configs" / "parts").is_dir() else []
    if stale:
        raise InputError(f"is not current with common.json and parts/ (edited by hand, or a source edited without "
                         f"regenerating): run python -m monai_attn.bundle.standalone {bundle}", path=stale[0])
    contents = [read_json_config(f) for f in files]
    meta_file = bundle / "configs" / "metadata.json"
    meta = read_json_config(meta_file) if meta_file.is_file() else {}
    if not (is_shipped_bundle(bundle) if trust is None else trust):
        for path, content in zip([*files, meta_file], [*contents, meta]):
            check_config_trusted(content, path)
    return config_parser(contents, meta, bundle, overrides)


def config_parser(
    contents: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    bundle_root: str | os.PathLike | None,
    overrides: Mapping[str, Any] | None = None,
) -> ConfigParser:
    """Merge config dicts in order (as MONAI merges a list of config files), set ``_meta_`` and overrides."""
    parser = ConfigParser({})
    for content in contents:
        for key, value in content.items():
            merge_kv(parser, key, value)
    parser["_meta_"] = dict(meta)
    if bundle_root is not None:
        parser["bundle_root"] = str(bundle_root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    return parser


def config_file_parser(
    config: str | os.PathLike | Mapping, overrides: Mapping[str, Any] | None = None, trust: bool = False
) -> ConfigParser:
    """Parser of a user's JSON config (or mapping), checked unless ``trust``.

    ``bundle_root`` defaults to the config's grand-parent and ``_meta_`` to a ``metadata.json``
    beside it, so a bundle's ``configs/common.json`` works as a config for its state dicts.
    """
    if isinstance(config, Mapping):
        return config_parser([config], config.get("_meta_", {}), None, overrides)
    path = Path(config)
    content, meta, meta_source = read_config_with_meta(path)
    if not (trust or matches_shipped_bundle({path.name: content}, meta)):
        check_config_trusted(content, path)
        check_config_trusted(meta, meta_source)
    return config_parser([content], meta, path.resolve().parent.parent, overrides)


def is_shipped_bundle(folder: str | os.PathLike) -> bool:
    """True for a bundle shipped with the package: the installed folder itself, or a copy whose
    ``configs/`` holds exactly the same files, byte for byte (SHA-256 of every file)."""
    real = os.path.realpath(folder)
    shipped = installed_bundles().values()
    if any(os.path.realpath(s) == real for s in shipped):
        return True
    digest = _configs_digest(Path(folder))
    return bool(digest) and any(_configs_digest(Path(s)) == digest for s in shipped)


def has_shipped_inference_configs(folder: str | os.PathLike) -> bool:
    """True when ``folder``'s inference configs (:data:`INFERENCE_CONFIGS`) have the SHA-256 of
    one shipped bundle's; its metadata is not compared (see :func:`is_shipped_bundle` for that)."""
    names = [str(Path(name).relative_to("configs")) for name in INFERENCE_CONFIGS]
    digest = _configs_digest(Path(folder))
    mine = [digest.get(name) for name in names]
    return None not in mine and any(
        [shipped.get(name) for name in names] == mine
        for shipped in map(_configs_digest, installed_bundles().values()))


def matches_shipped_bundle(configs: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> bool:
    """True when ``configs`` (file name -> parsed content, e.g. as ``ckpt_export`` embeds them) and
    ``meta`` all equal the files of one shipped bundle: its own configs and metadata, trusted.
    A shipped config next to a different metadata is not (the config evaluates ``@_meta_``)."""
    if not configs:
        return False
    for folder in installed_bundles().values():
        shipped_meta = folder / "configs" / "metadata.json"
        if not shipped_meta.is_file() or read_json_config(shipped_meta) != meta:
            continue
        paths = {name: folder / "configs" / Path(name).name for name in configs}
        if all(p.is_file() and read_json_config(p) == configs[name] for name, p in paths.items()):
            return True
    return False


def _configs_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder/configs`` by relative path ({} without that folder)."""
    configs = folder / "configs"
    if not configs.is_dir():
        return {}
    return {str(p.relative_to(configs)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(configs.rglob("*")) if p.is_file()}
