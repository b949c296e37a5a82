"""Reading one JSON config file (a bundle's config or metadata) as a dict, with one-line errors."""

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
