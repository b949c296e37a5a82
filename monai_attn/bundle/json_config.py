"""Reading JSON config files (a bundle's configs and metadata) as dicts, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monai_attn.errors import InputError


def read_json_config(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        FileNotFoundError: no such file.
        InputError: not valid JSON, or not a JSON object.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"not a valid JSON config ({err})", path=path) from err
    if not isinstance(content, dict):
        raise InputError("config must be a JSON object", path=path)
    return content


def read_config_with_meta(path: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """A config file, its metadata and where that came from: the config's own ``_meta_``, else a
    ``metadata.json`` beside it (MONAI's place for it), else none (``{}``)."""
    content = read_json_config(path)
    if content.get("_meta_"):
        return content, content["_meta_"], path
    meta_file = path.parent / "metadata.json"
    return content, read_json_config(meta_file) if meta_file.is_file() else {}, meta_file
