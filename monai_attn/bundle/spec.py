"""What a bundle is and which settings a user may change: :class:`BundleSpec`, read once per run.

The spec is read from the bundle's JSON (``configs/common.json`` merged with
``configs/inference.json``, and ``configs/metadata.json``) without evaluating anything: ``$``
expressions stay text and ``@`` references are followed only to literal values. So the command
line can check its options against the bundle before torch or MONAI load, and nothing in an
untrusted config runs to answer "which settings do you have?".

Example::

    spec = BundleSpec.read(resolve_bundle("retina"))
    spec.spatial_dims, spec.size_divisor, spec.defaults["roi_size"]   # 2, 8, [512, 512]
    spec.check_overrides({"roi_size": [96, 96, 96]})   # InputError: takes 2 numbers
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_attn.bundle.json_config import read_config_with_meta, read_json_config
from monai_attn.bundle.settings import SETTINGS, check_roi_size
from monai_attn.errors import InputError
from monai_attn.networks.sizes import grid_unet_size_divisor

#: The configs an inference run merges, in order, relative to the bundle folder.
INFERENCE_CONFIGS = ("configs/common.json", "configs/inference.json")


@dataclass(frozen=True)
class BundleSpec:
    """A bundle's identity, geometry and overridable settings.

    Attributes:
        name, version: from ``metadata.json`` (``"unnamed"`` / ``"0"`` when absent).
        task: ``ct``, ``fundus`` or ``em`` (the config's ``task``; ``ct`` when absent).
        spatial_dims: 2 or 3, from ``network_def``.
        size_divisor: every window size must be a multiple of it (from ``network_def``; None
            when the network's rule is not known, and then nothing is checked).
        display_window: the intensity window of previews (CT: HU), or None.
        output_types: label formats the bundle writes by default (``inference.json``).
        defaults: every declared setting (an id of :data:`~monai_attn.bundle.settings.SETTINGS`
            present in the config) and its literal value (None for an expression).
    """

    name: str
    version: str
    task: str
    spatial_dims: int
    size_divisor: int | None
    display_window: tuple[float, float] | None
    output_types: tuple[str, ...]
    defaults: Mapping[str, Any]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> BundleSpec:
        """The spec of a merged config (the raw dict MONAI would parse) and its metadata."""
        meta = meta if meta is not None else config.get("_meta_", {})
        network = config.get("network_def")
        network = network if isinstance(network, Mapping) else {}
        dims = _literal(config, network.get("spatial_dims", 3))
        writer = config.get("writer") if isinstance(config.get("writer"), Mapping) else {}
        window = _literal(config, writer.get("display_window"))
        output_types = _literal(config, config.get("output_types"))
        return cls(
            name=str(meta.get("name", "unnamed")),
            version=str(meta.get("version", "0")),
            task=str(_literal(config, config.get("task", "ct"))),
            spatial_dims=int(dims) if isinstance(dims, int) else 3,
            size_divisor=network_size_divisor(config, network),
            display_window=tuple(float(v) for v in window) if isinstance(window, list) and len(window) == 2 else None,
            output_types=tuple(output_types) if isinstance(output_types, list) else (),
            defaults={key: _literal(config, config[key]) for key in SETTINGS if key in config},
        )

    @classmethod
    def read(cls, folder: str | os.PathLike) -> BundleSpec:
        """The spec of the bundle in ``folder`` (its inference configs and metadata, as JSON).

        Raises:
            InputError: no ``configs/inference.json``, or a config that is not a JSON object.
        """
        bundle = Path(folder)
        config: dict[str, Any] = {}
        for path in inference_config_files(bundle):
            config.update(read_json_config(path))
        meta_file = bundle / "configs" / "metadata.json"
        return cls.from_config(config, read_json_config(meta_file) if meta_file.is_file() else {})

    @classmethod
    def from_config_file(cls, path: str | os.PathLike) -> BundleSpec:
        """The spec of one config file (``segment --config``), its metadata from a ``metadata.json``
        beside it when the config has no ``_meta_`` (as :func:`~monai_attn.bundle.configs.config_file_parser`)."""
        content, meta, _ = read_config_with_meta(Path(path))
        return cls.from_config(content, meta)

    @classmethod
    def from_torchscript(cls, path: str | os.PathLike) -> BundleSpec | None:
        """The spec of the configs ``python -m monai.bundle ckpt_export`` embedded in a TorchScript
        file (read from the archive, no model loaded); None when it embeds no inference config."""
        found: dict[str, dict[str, Any]] = {}
        try:
            with zipfile.ZipFile(path) as archive:
                for entry in archive.namelist():
                    folder, _, name = entry.rpartition("/")
                    if folder.endswith("extra") and name in ("common.json", "inference.json", "metadata.json"):
                        found[name] = json.loads(archive.read(entry).decode("utf-8") or "{}")
        except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError):
            return None  # the model loader reports a broken file with its own message
        config = {**found.get("common.json", {}), **found.get("inference.json", {})}
        return cls.from_config(config, found.get("metadata.json", {})) if config else None

    def declares(self, setting_id: str) -> bool:
        """True when the bundle has the setting ``setting_id`` (so overriding it has an effect)."""
        return setting_id in self.defaults

    def check_overrides(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """``overrides`` (config id -> value) checked against this bundle: each setting declared,
        each value valid (``roi_size``: one number per spatial dimension, multiples of
        :attr:`size_divisor`). Returns the checked values.

        Raises:
            InputError: one line naming the option and the bundle.
        """
        checked = {}
        for key, value in overrides.items():
            setting = SETTINGS[key]
            if not self.declares(key):
                raise InputError(f"{setting.option}: bundle {self.name} has no '{key}' setting (it does not apply "
                                 f"to this bundle)")
            if key == "roi_size":
                value = self.check_roi_size(value)
            elif setting.check is not None:
                value = setting.check(value)
            checked[key] = value
        return checked

    def check_roi_size(self, roi_size: Any) -> tuple[int, ...]:
        """A window size for this bundle: :attr:`spatial_dims` positive multiples of :attr:`size_divisor`."""
        roi = tuple(int(v) for v in roi_size)
        if len(roi) != self.spatial_dims:
            example = " ".join(map(str, (self.defaults.get("roi_size") or [96] * self.spatial_dims)))
            raise InputError(f"--roi-size takes {self.spatial_dims} numbers for the {self.spatial_dims}-D bundle "
                             f"{self.name}, got {len(roi)} ({' '.join(map(str, roi))}); e.g. --roi-size {example}")
        return check_roi_size(roi, self.size_divisor or 1)


def inference_config_files(bundle: Path) -> list[Path]:
    """The files of :data:`INFERENCE_CONFIGS` the bundle in ``bundle`` has, in merge order.

    Raises:
        InputError: no ``configs/inference.json``: not a bundle.
    """
    if not (bundle / "configs" / "inference.json").is_file():
        raise InputError("not a bundle: configs/inference.json is missing", path=bundle)
    return [bundle / name for name in INFERENCE_CONFIGS if (bundle / name).is_file()]


def network_size_divisor(config: Mapping[str, Any], network: Mapping[str, Any]) -> int | None:
    """The multiple every input size of ``network_def`` must be: our grid attention U-Net's from its
    ``channels``, MONAI's U-Nets' from their ``strides``; None for a network whose rule is unknown."""
    target = str(network.get("_target_", ""))
    if target.rsplit(".", 1)[-1] == "GridAttentionUNet":
        channels = _literal(config, network.get("channels"))
        return grid_unet_size_divisor(channels) if isinstance(channels, list) else None
    strides = _literal(config, network.get("strides"))
    if isinstance(strides, list) and strides:
        return math.prod(max(s) if isinstance(s, list) else int(s) for s in strides)
    return None


def _literal(config: Mapping[str, Any], value: Any, depth: int = 8) -> Any:
    """``value`` with ``@id`` references followed to literal values (None for an expression)."""
    if isinstance(value, str) and value.startswith("$"):
        return None
    if isinstance(value, str) and value.startswith("@") and depth > 0:
        node: Any = config
        for part in value[1:].split("#"):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return _literal(config, node, depth - 1)
    return value
