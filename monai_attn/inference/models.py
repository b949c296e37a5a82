"""Loading a network and the segmenter's settings from weights and a MONAI-style config.

A config (a bundle's ``configs/inference.json``, or the JSON passed to ``segment --config``)
is parsed with :class:`monai.bundle.ConfigParser` and may hold

- ``network_def``: the network, e.g.
  ``{"_target_": "monai_attn.networks.GridAttentionUNet", "spatial_dims": 3,
  "in_channels": 1, "out_channels": 4}``;
- ``segmenter``: :class:`~monai_attn.inference.Segmenter` arguments (``spacing_mm``,
  ``hu_window``, ``roi_size``, ``label_names``, ``postprocess``...); a ``_target_`` and a
  ``network`` entry there (as a bundle writes them) are ignored: the network is
  ``network_def`` with the weights loaded.

Weights are a state dict (``torch.load(..., weights_only=True)``; a checkpoint dict holding
it under ``network``, ``model`` or ``state_dict`` works too) or a TorchScript file
(``torch.jit.load``), which needs no ``network_def``.
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

from monai_attn.errors import InputError

#: Keys under which training checkpoints commonly hold the network's state dict.
_STATE_DICT_KEYS = ("network", "model", "state_dict", "net")


def load_segmenter_config(
    config: str | os.PathLike | Mapping | None,
    weights: str | os.PathLike,
    bundle_root: str | os.PathLike | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network with its weights loaded, and the ``segmenter`` arguments of the config.

    Args:
        config: path of a JSON config, the parsed mapping, or None (TorchScript weights only).
        weights: state dict (``.pt``) or TorchScript file.
        bundle_root: value of ``bundle_root`` in the config (defaults to the config's
            grand-parent folder when the config is a file).
    """
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: model file not found")
    parser = _parser(config, bundle_root)
    if is_torchscript(weights):
        network = torch.jit.load(str(weights), map_location="cpu")
    else:
        if parser is None or "network_def" not in parser.config:
            raise InputError(
                "a state dict needs a config with 'network_def' (--config cfg.json, or use --bundle)", path=weights
            )
        network = parser.get_parsed_content("network_def")
        _load_state_dict(network, weights)
    kwargs: dict[str, Any] = {}
    if parser is not None and "segmenter" in parser.config:
        for key in parser.config["segmenter"]:
            if key not in ("_target_", "network", "_requires_", "_disabled_", "_desc_", "_mode_"):
                kwargs[key] = parser.get_parsed_content(f"segmenter#{key}")
    return network, kwargs


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip with ``constants.pkl`` and ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _parser(config: str | os.PathLike | Mapping | None, bundle_root: str | os.PathLike | None) -> ConfigParser | None:
    if config is None:
        return None
    if isinstance(config, Mapping):
        content = dict(config)
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: config file not found")
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"not a valid JSON config ({err})", path=path) from err
        if bundle_root is None:
            bundle_root = path.resolve().parent.parent
    if not isinstance(content, dict):
        raise InputError("config must be a JSON object with 'network_def' and 'segmenter'", path=str(config))
    if bundle_root is not None:
        content.setdefault("bundle_root", str(bundle_root))
    parser = ConfigParser(content)
    return parser


def _load_state_dict(network: torch.nn.Module, weights: Path) -> None:
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/unsafe files
        raise InputError(f"cannot load weights ({' '.join(str(err).split())[:200]})", path=weights) from err
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
