"""Checks in a pipeline: :class:`CheckCTInputd` refuses a scan that is not CT in HU."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.transforms import Transform

from monai_attn.errors import InputError
from monai_attn.transforms.io import image_name

class CheckCTInputd(Transform):
    """Refuse a scan that is not CT in HU (:func:`monai_attn.qc.check_ct_input`), unless ``force``.

    Forced scans keep their findings: :class:`OrganQCd` reports them.
    """

    def __init__(self, key: str = "image", force: bool = False) -> None:
        self.key, self.force = key, bool(force)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_attn.qc import check_ct_input

        if not self.force:
            errors = [f for f in check_ct_input(data[self.key]) if f.level == "error"]
            if errors:
                raise InputError(f"{errors[0].message} (--force segments it anyway)", path=image_name(data[self.key]))
        return dict(data)
