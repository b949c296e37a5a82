"""Where the folders shipped beside the code live: the bundles and the dataset descriptors.

A source checkout keeps them at the top of the repository (``bundles/``, ``datasets/``), and so
does an editable install, whose code stays in the checkout. A wheel installs them inside the
package, as ``monai_attn/bundles/`` and ``monai_attn/dataset_descriptors/``: ``pyproject.toml``
maps the top-level folders onto these names (``[tool.setuptools.package-dir]``).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

#: Folder name inside the installed package -> folder name at the top of a source checkout.
SHIPPED_FOLDERS: dict[str, str] = {"bundles": "bundles", "dataset_descriptors": "datasets"}


def shipped_folder(name: str) -> Path:
    """The folder ``name`` (a key of :data:`SHIPPED_FOLDERS`) of the ``monai_attn`` being run.

    Looks inside the installed package first (``importlib.resources``; a wheel install), then
    next to the package in its source checkout (a checkout on ``PYTHONPATH`` or an editable
    install). The checkout found is the one the imported code comes from, never another one.

    Raises:
        FileNotFoundError: neither place holds the folder (a broken install).
    """
    package = importlib.resources.files("monai_attn")
    installed = package.joinpath(name)
    if installed.is_dir():
        return Path(str(installed))
    checkout = Path(str(package)).parent / SHIPPED_FOLDERS[name]
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"{installed}: monai_attn is installed without its {name} folder (nor is {checkout} there)")
