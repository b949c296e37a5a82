"""Label names as every part of the package holds them: ``{label value (int): name (str)}``, background left out."""

from __future__ import annotations

from collections.abc import Mapping


def foreground_names(names: Mapping[int | str, object] | None) -> dict[int, str]:
    """``names`` with integer keys (JSON gives strings) and string names, label 0 (background) dropped.

    Example: ``foreground_names({"0": "background", "1": "spleen"})`` -> ``{1: "spleen"}``.
    """
    return {int(k): str(v) for k, v in (names or {}).items() if int(k) != 0}
