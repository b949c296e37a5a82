"""Package names imported on first use (PEP 562), so that a package's light modules load
without the heavy libraries (torch, MONAI, SimpleITK) that its other modules need.

Example (a package's ``__init__.py``)::

    __getattr__ = lazy_exports(__name__, {"load_image": "monai_attn.io.readers"})
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first access
    of ``name`` and keeps the value in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
