"""The trust boundary for MONAI configs: a config from outside the package may not run code.

MONAI's config language is code by design: a string starting with ``$`` is a Python
expression evaluated when the config is parsed (``"$__import__('os').system('...')"``), a
``_target_`` names any importable callable, which is called with the given arguments, and
``_mode_: "debug"`` starts the debugger. The bundles installed with this package are
trusted; a config or bundle a user points ``segment --config/--bundle`` at is not, unless the
user says so (``--trust-config``). :func:`check_config_trusted` is the check: it walks a parsed
config and refuses the first place that could run code outside the allow-list.

Refused:

- any string value starting with ``$`` (an expression; ``$@x`` too, it is evaluated);
- a ``_target_`` that is not a plain dotted name under ``allowed_prefixes`` (``monai.``,
  ``monai_attn.``, ``torch.``); a bare name such as ``"Compose"`` is looked up in MONAI and
  counts as MONAI;
- a ``_target_`` in :data:`DENIED_TARGETS` even though it is under an allowed prefix: the
  callables there run shell commands (``monai.utils.run_cmd``), import or build anything by
  name, run other bundles, download, or unpickle or write files (``torch.load``,
  ``torch.save``, ``torch.hub``); bare names of these (``run_cmd``) are refused too;
- ``_mode_`` other than ``"default"`` or ``"callable"``;
- a ``%`` macro that copies from another file outside the config's folder (``%../x.json#a``,
  ``%/etc/y.json#b``); macros within the same file (``%#a``) or folder are fine.

References (``@name``) only point at other parts of the same config and are allowed.

This closes the ways a config runs code of its author's choosing; it does not make a config
harmless in every respect (an allowed writer such as ``SaveImaged`` still writes where its
``output_dir`` says), so the docs still ask users to run only configs they trust.

Example::

    config = json.loads(Path("my_config.json").read_text())
    check_config_trusted(config, "my_config.json")   # raises InputError if it holds code
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_attn.errors import InputError

#: Module prefixes whose callables an untrusted config may name in ``_target_``.
DEFAULT_ALLOWED_PREFIXES: tuple[str, ...] = ("monai.", "monai_attn.", "torch.")

#: Callables under the allowed prefixes that run code, import by name, run bundles, download, or
#: read or write pickles. Entries ending in "." deny a whole module.
DENIED_TARGETS: tuple[str, ...] = (
    "monai.utils.run_cmd",
    "monai.utils.misc.run_cmd",
    "monai.utils.optional_import",
    "monai.utils.instantiate",
    "monai.utils.module.",
    "monai.bundle.",
    "monai.apps.download_url",
    "monai.apps.download_and_extract",
    "monai.apps.extractall",
    "monai.apps.utils.",
    "torch.load",
    "torch.save",
    "torch.serialization.",
    "torch.hub.",
    "torch.package.",
    "torch.utils.cpp_extension.",
    "torch.utils.model_zoo.",
    "torch.ops.load_library",
    "torch.classes.load_library",
    "torch.jit.load",
)

#: Bare names MONAI would resolve to the denied callables above.
DENIED_BARE_NAMES: frozenset[str] = frozenset(
    {t.rsplit(".", 1)[1] for t in DENIED_TARGETS if not t.endswith(".")}
    | {"look_up", "load", "run", "download", "ConfigParser", "ConfigWorkflow", "PythonicWorkflow", "create_workflow",
       "run_workflow", "load_bundle_config", "download_large_files", "push_to_hf_hub", "init_bundle", "ckpt_export",
       "onnx_export", "trt_export"}
)

#: ``_mode_`` values that only change how a component is built, not what runs.
SAFE_MODES: tuple[str, ...] = ("default", "callable")

#: Separator of nested ids in messages, as MONAI writes them (``segmenter::overlap``).
ID_SEPARATOR = "::"

_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ADVICE = "a config from outside the package may not run code; pass --trust-config if you trust it"


def check_config_trusted(
    config: Mapping[str, Any],
    source: str | os.PathLike,
    allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES,
) -> None:
    """Raise InputError naming ``source`` and the first key path that could run code.

    Args:
        config: the parsed JSON (or YAML) config.
        source: the file it came from; ``%`` macros are resolved against its folder.
        allowed_prefixes: module prefixes a ``_target_`` may start with.

    Raises:
        InputError: ``<source>: <key path> ...: <why>; a config from outside the package may
            not run code; pass --trust-config if you trust it``.
    """
    folder = Path(os.path.abspath(source)).parent
    _walk(config, [], Path(source), folder, tuple(allowed_prefixes))


def _walk(node: Any, keys: list[str], source: Path, folder: Path, allowed: tuple[str, ...]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = [*keys, str(key)]
            if key == "_target_":
                _check_target(value, path, source, allowed)
            elif key == "_mode_" and value not in SAFE_MODES:
                _refuse(source, path, f"{value!r} is not one of {', '.join(SAFE_MODES)}")
            _walk(value, path, source, folder, allowed)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, [*keys, str(index)], source, folder, allowed)
    elif isinstance(node, str):
        if node.startswith("$"):
            _refuse(source, keys, f"is a $-expression ({_shorten(node)}), which runs as Python")
        if node.startswith("%"):
            _check_macro(node, keys, source, folder)


def _check_target(value: Any, keys: list[str], source: Path, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or not _DOTTED_NAME.match(value):
        _refuse(source, keys, f"{_shorten(str(value))!r} is not a plain module.name")
    if "." not in value:  # a bare name is looked up in MONAI's modules
        if value in DENIED_BARE_NAMES:
            _refuse(source, keys, f"{value!r} resolves to a MONAI callable that runs code, downloads or unpickles")
        return
    if not value.startswith(tuple(allowed)):
        _refuse(source, keys, f"{value!r} is outside {', '.join(p + '*' for p in allowed)}")
    for denied in DENIED_TARGETS:
        if value == denied or value.startswith(denied if denied.endswith(".") else f"{denied}."):
            where = f"{denied}*" if denied.endswith(".") else denied
            _refuse(source, keys, f"{value!r} runs code, downloads, or reads or writes pickles (denied: {where})")


def _check_macro(value: str, keys: list[str], source: Path, folder: Path) -> None:
    """``%file#id`` copies part of another file: allowed only for files inside the config's folder."""
    file_part = value[1:].split("#", 1)[0].split(ID_SEPARATOR, 1)[0]
    if not file_part:
        return  # %#id or %::id: the same file
    target = Path(file_part)
    resolved = Path(os.path.realpath(target if target.is_absolute() else folder / target))
    if not resolved.is_relative_to(os.path.realpath(folder)):
        _refuse(source, keys, f"macro {_shorten(value)!r} reads a file outside the config's folder {folder}")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse(source: Path, keys: list[str], why: str) -> None:
    where = ID_SEPARATOR.join(keys) or "the top level"
    raise InputError(f"{where} {why}; {_ADVICE}", path=source)
