"""Bundles: finding them, reading their configs, deciding what to trust, and what they declare.

- :mod:`~monai_attn.bundle.lookup`: a bundle folder from a path, a name or a short name
  (:func:`resolve_bundle`), and :func:`bundle_dir`, the ``bundle_root`` of the bundles' configs.
- :mod:`~monai_attn.bundle.package_data`: where the shipped bundles and data set descriptors live.
- :mod:`~monai_attn.bundle.spec`: :class:`BundleSpec`, a bundle's task, dimensions, size divisor,
  display window, output types and the settings a user may override, read from JSON alone.
- :mod:`~monai_attn.bundle.settings`: the overridable settings, declared once with their checks.
- :mod:`~monai_attn.bundle.configs`: the merged MONAI config of a bundle or a config file.
- :mod:`~monai_attn.bundle.trust`: the allow-list an untrusted config is checked against.

Names are imported on first use (PEP 562): :mod:`~monai_attn.bundle.lookup`,
:mod:`~monai_attn.bundle.spec` and :mod:`~monai_attn.bundle.settings` load without torch or MONAI.
"""

from monai_attn.lazy_exports import lazy_exports

#: Public name -> the module defining it.
_EXPORTS = {
    "BundleSpec": "monai_attn.bundle.spec",
    "SETTINGS": "monai_attn.bundle.settings",
    "bundle_dir": "monai_attn.bundle.lookup",
    "bundle_parser": "monai_attn.bundle.configs",
    "check_config_trusted": "monai_attn.bundle.trust",
    "config_file_parser": "monai_attn.bundle.configs",
    "default_bundle": "monai_attn.bundle.lookup",
    "installed_bundles": "monai_attn.bundle.lookup",
    "is_shipped_bundle": "monai_attn.bundle.configs",
    "resolve_bundle": "monai_attn.bundle.lookup",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
