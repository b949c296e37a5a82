"""Loading a network: a bundle's ``network_def`` with its weights, or a TorchScript file.

Weights are a state dict (``torch.load(..., weights_only=True)``; a checkpoint dict holding
it under ``network``, ``model`` or ``state_dict`` works too) or a TorchScript file. A
TorchScript file exported with ``python -m monai.bundle ckpt_export`` carries its configs and
metadata, so it needs nothing else (:func:`load_torchscript`); those configs are trusted only
as :mod:`monai_attn.bundle.configs` says.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

from monai_attn.bundle.configs import config_parser, matches_shipped_bundle
from monai_attn.bundle.trust import check_config_trusted
from monai_attn.errors import InputError

#: Keys under which training checkpoints commonly hold the network's state dict.
_STATE_DICT_KEYS = ("network", "model", "state_dict", "net")
#: Names under which ``ckpt_export`` stores configs inside a TorchScript file, merged in order.
_EMBEDDED_CONFIGS = ("common.json", "inference.json")


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


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip with ``constants.pkl`` and ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


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
