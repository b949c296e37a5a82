"""Reading a bundle's settings and network: configs, metadata and weights.

A bundle's inference settings are MONAI configs: ``configs/common.json`` (every setting:
spacing, intensity window, window size, label colours, post-processing rules, the network,
``preprocessing``, ``inferer`` and ``postprocessing``) merged with ``configs/inference.json``
(data set, evaluator, writer), with ``configs/metadata.json`` as ``_meta_`` (label names come
from its ``channel_def``), exactly as ``python -m monai.bundle run --config_file
"['configs/common.json','configs/inference.json']"`` reads them.

Trust: MONAI configs are code (``$`` expressions run as Python, ``_target_`` builds any
class). The bundles shipped with the package are trusted; any other bundle folder, ``--config``
file or configs embedded in a TorchScript file are checked, metadata included, with
:func:`monai_attn.config_trust.check_config_trusted` unless the caller trusts them
(``segment --trust-config``). A copy of a shipped bundle is trusted only when every file of
its ``configs/`` has the shipped file's SHA-256; embedded configs only when they and their
metadata all equal one shipped bundle's.

Weights are a state dict (``torch.load(..., weights_only=True)``; a checkpoint dict holding
it under ``network``, ``model`` or ``state_dict`` works too) or a TorchScript file. A
TorchScript file exported with ``python -m monai.bundle ckpt_export`` carries its configs and
metadata, so it needs nothing else (:func:`load_torchscript`).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.bundle.utils import merge_kv

from monai_attn.config_trust import check_config_trusted
from monai_attn.errors import InputError

#: Keys under which training checkpoints commonly hold the network's state dict.
_STATE_DICT_KEYS = ("network", "model", "state_dict", "net")
#: The configs an inference run merges, in order, relative to the bundle folder.
INFERENCE_CONFIGS = ("configs/common.json", "configs/inference.json")
#: Names under which ``ckpt_export`` stores configs inside a TorchScript file, merged in order.
_EMBEDDED_CONFIGS = ("common.json", "inference.json")


def bundle_parser(
    bundle_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None, trust: bool | None = None
) -> ConfigParser:
    """The merged inference config of a bundle folder, its metadata as ``_meta_``, ``overrides`` applied.

    ``trust`` None trusts the bundles shipped with the package only; False checks any bundle.
    """
    bundle = Path(bundle_dir)
    files = [bundle / name for name in INFERENCE_CONFIGS if (bundle / name).is_file()]
    if not (bundle / "configs" / "inference.json").is_file():
        raise InputError("not a bundle: configs/inference.json is missing", path=bundle)
    contents = [_read_json(f) for f in files]
    meta_file = bundle / "configs" / "metadata.json"
    meta = _read_json(meta_file) if meta_file.is_file() else {}
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


def load_network(parser: ConfigParser | None, weights: str | os.PathLike) -> torch.nn.Module:
    """``network_def`` of the config with the weights loaded, or a TorchScript module."""
    weights = Path(weights)
    check_model_file(weights)
    if is_torchscript(weights):
        return torch.jit.load(str(weights), map_location="cpu")
    if parser is None or "network_def" not in parser.config:
        raise InputError("a state dict needs a config with 'network_def' (--config cfg.json, or use --bundle)", path=weights)
    network = parser.get_parsed_content("network_def")
    _load_state_dict(network, weights)
    return network


#: Suffixes of images, which a user may give as ``--model`` by mistake.
_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


def check_model_file(path: str | os.PathLike) -> None:
    """Refuse, naming ``path``, a model file that does not exist or is an image."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.name.lower().endswith(_IMAGE_SUFFIXES):
        raise InputError("is an image, not a model: --model takes weights (.pt) or a TorchScript file (.ts)", path=path)


def load_torchscript(
    path: str | os.PathLike, overrides: Mapping[str, Any] | None = None, trust: bool = False
) -> tuple[torch.nn.Module, ConfigParser]:
    """A TorchScript model and the configs and metadata ``ckpt_export`` embedded in it (checked unless ``trust``).

    Raises:
        InputError: the file carries no inference config (export it with
            ``--config_file "['configs/common.json','configs/inference.json']"``, or give ``--config``).
    """
    extra = dict.fromkeys(("metadata.json", *_EMBEDDED_CONFIGS), "")
    try:
        network = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as err:
        raise InputError(f"cannot load TorchScript ({' '.join(str(err).split())[:200]})", path=path) from err
    try:
        meta = json.loads(extra["metadata.json"]) if extra["metadata.json"] else {}
    except json.JSONDecodeError as err:
        raise InputError(f"TorchScript metadata.json is not valid JSON ({err})", path=path) from err
    contents = [json.loads(extra[name]) for name in _EMBEDDED_CONFIGS if extra[name]]
    if not (trust or matches_shipped_bundle(dict(zip(_EMBEDDED_CONFIGS, contents)), meta)):
        for content in (*contents, meta):
            check_config_trusted(content, path)
    if not contents:
        raise InputError(
            "TorchScript file carries no inference config; export it with python -m monai.bundle ckpt_export "
            "--config_file \"['configs/common.json','configs/inference.json']\" or pass --config",
            path=path,
        )
    return network, config_parser(contents, meta, None, overrides)


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
    content = _read_json(path)
    meta_file = path.parent / "metadata.json"  # MONAI's place for a config's metadata
    meta = content.get("_meta_") or (_read_json(meta_file) if meta_file.is_file() else {})
    if not (trust or matches_shipped_bundle({path.name: content}, meta)):
        check_config_trusted(content, path)
        check_config_trusted(meta, meta_file if "_meta_" not in content else path)
    return config_parser([content], meta, path.resolve().parent.parent, overrides)


def is_shipped_bundle(folder: str | os.PathLike) -> bool:
    """True for a bundle shipped with the package: the installed folder itself, or a copy whose
    ``configs/`` holds exactly the same files, byte for byte (SHA-256 of every file)."""
    from monai_attn.bundle_lookup import installed_bundles

    real = os.path.realpath(folder)
    shipped = installed_bundles().values()
    if any(os.path.realpath(s) == real for s in shipped):
        return True
    digest = _configs_digest(Path(folder))
    return bool(digest) and any(_configs_digest(Path(s)) == digest for s in shipped)


def has_shipped_inference_configs(folder: str | os.PathLike) -> bool:
    """True when ``folder``'s inference configs (:data:`INFERENCE_CONFIGS`) have the SHA-256 of
    one shipped bundle's; its metadata is not compared (see :func:`is_shipped_bundle` for that)."""
    from monai_attn.bundle_lookup import installed_bundles

    names = [str(Path(name).relative_to("configs")) for name in INFERENCE_CONFIGS]
    mine = [_configs_digest(Path(folder)).get(name) for name in names]
    return None not in mine and any(
        [_configs_digest(Path(s)).get(name) for name in names] == mine for s in installed_bundles().values())


def matches_shipped_bundle(configs: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]) -> bool:
    """True when ``configs`` (file name -> parsed content, e.g. as ``ckpt_export`` embeds them) and
    ``meta`` all equal the files of one shipped bundle: its own configs and metadata, trusted.
    A shipped config next to a different metadata is not (the config evaluates ``@_meta_``)."""
    from monai_attn.bundle_lookup import installed_bundles

    if not configs:
        return False
    for folder in installed_bundles().values():
        shipped_meta = folder / "configs" / "metadata.json"
        if not shipped_meta.is_file() or _read_json(shipped_meta) != meta:
            continue
        paths = {name: folder / "configs" / Path(name).name for name in configs}
        if all(p.is_file() and _read_json(p) == configs[name] for name, p in paths.items()):
            return True
    return False


def _configs_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder/configs`` by relative path ({} without that folder)."""
    configs = folder / "configs"
    if not configs.is_dir():
        return {}
    return {str(p.relative_to(configs)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(configs.rglob("*")) if p.is_file()}


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip with ``constants.pkl`` and ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"not a valid JSON config ({err})", path=path) from err
    if not isinstance(content, dict):
        raise InputError("config must be a JSON object", path=path)
    return content


def _load_state_dict(network: torch.nn.Module, weights: Path) -> None:
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/unsafe files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"cannot load weights: not a state dict that loads with weights_only=True "
                         f"({first.split('. ')[0][:160]})", path=weights) from err
    if isinstance(state, Mapping):
        for key in _STATE_DICT_KEYS:
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping):
        raise InputError("weights file holds no state dict", path=weights)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise InputError(f"weights do not fit network_def ({' '.join(first[:2])[:300]})", path=weights) from err
