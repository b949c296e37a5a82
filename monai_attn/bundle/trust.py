"""The trust boundary for MONAI configs: a config from outside the package may not run code.

MONAI's config language is code by design: a string starting with ``$`` is a Python
expression evaluated when the config is parsed, a ``_target_`` names any object reachable by
attribute access from an importable module (``torch.os.system`` is ``os.system``), which is
called with the given arguments, ``_mode_: "debug"`` starts the debugger, a ``%`` macro copies
part of another file, and ``@_meta_`` pulls in the metadata, which is parsed the same way. The
bundles shipped with the package are trusted; any other config, bundle or TorchScript file
(``segment --config / --bundle / --model``) is not, unless the user says so (``--trust-config``).

:func:`check_config_trusted` walks the whole parsed tree (configs and metadata alike) before
anything is instantiated and refuses the first place that could run code:

- any string starting with ``$`` (an expression; ``$@x`` too, it is evaluated);
- a ``_target_`` unless the object it *resolves to* (the way MONAI resolves it: a bare name
  through MONAI's component table, a dotted path by import and attribute access) is allowed:
  a class defined in one of :data:`ALLOWED_DEFINITION_MODULES` that is not in
  :data:`DENIED_CLASS_NAMES`, a MONAI network of :data:`ALLOWED_MONAI_NETWORKS`, or one of the
  objects named in :data:`ALLOWED_TARGETS` (what the shipped configs use). The path used to
  reach it does not matter, the object does; functions, methods, modules and builtins are
  never allowed unless listed; a path that does not start with ``monai``, ``monai_attn``,
  ``torch`` or ``ignite`` is not even imported;
- a ``reader`` or ``writer`` string (``LoadImaged`` and ``SaveImaged`` resolve it by name)
  that is not one of MONAI's image readers or writers;
- ``_mode_`` other than ``"default"`` or ``"callable"``;
- a ``%`` macro to a file outside the config's folder (symlinks resolved); a file inside it is
  checked the same way, whole.

References (``@name``) only point at other parts of the checked tree and are allowed.

This closes the ways a config runs code of its author's choosing; it does not make a config
harmless in every respect (an allowed writer such as ``SaveImaged`` still writes where its
``output_dir`` says), so the docs still ask users to run only configs they trust.

Example::

    config = json.loads(Path("my_config.json").read_text())
    check_config_trusted(config, "my_config.json")   # raises InputError if it holds code
"""

from __future__ import annotations

import inspect
import os
import pydoc
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from monai_attn.errors import InputError

#: Top-level packages a dotted ``_target_`` may start with; nothing else is imported to resolve it.
IMPORTABLE_PACKAGES: tuple[str, ...] = ("monai", "monai_attn", "torch", "ignite")

#: Modules (and packages) of definition whose classes an untrusted config may build.
ALLOWED_DEFINITION_MODULES: tuple[str, ...] = (
    "monai.transforms.", "monai.inferers.", "monai.losses.", "monai.metrics.", "monai.handlers.",
    "monai.engines.", "monai.networks.blocks.", "monai.networks.layers.", "monai.data.image_reader",
    "monai.data.image_writer", "monai.data.dataset", "monai.data.dataloader",
    "torch.nn.modules.", "torch.optim.",
)

#: Classes in the modules above that run code handed to them, resolve other names, download or
#: unpickle: refused by class name (a substring match, so every variant is caught).
DENIED_CLASS_NAMES: tuple[str, ...] = (
    "Lambda", "TorchVision", "TorchIO", "CuCIM", "MLFlow", "ClearML",
    "PersistentDataset", "LMDBDataset", "GDSDataset", "CacheNTransDataset", "CSVDataset", "DecathlonDataset",
    "TciaDataset", "MedNISTDataset",
)

#: MONAI networks a user config may build (none of them downloads weights or resolves names).
ALLOWED_MONAI_NETWORKS: tuple[str, ...] = (
    "UNet", "BasicUNet", "BasicUNetPlusPlus", "AttentionUnet", "DynUNet", "SegResNet", "SegResNetDS",
    "UNETR", "SwinUNETR", "VNet", "HighResNet",
)

#: Other objects a config may name in ``_target_``: the package's own building blocks (what the
#: shipped configs and the docs' examples use) and a few framework classes.
ALLOWED_TARGETS: tuple[str, ...] = (
    "monai_attn.networks.GridAttentionUNet", "monai_attn.networks.GridAttentionGate",
    "monai_attn.evaluation.MultiOrganMetric", "monai_attn.evaluation.ReportWriter",
    "monai_attn.evaluation.VerticalCupDiscRatioError", "monai_attn.fundus.CleanDiscCupd",
    "monai_attn.inference.CleanLabelsd", "monai_attn.inference.DiscCropInferer", "monai_attn.inference.FundusQCd",
    "monai_attn.inference.LogitsToLabelsd", "monai_attn.inference.LookFirstInferer", "monai_attn.inference.OrganQCd",
    "monai_attn.inference.PhantomCalibration",
    "monai_attn.inference.ResampleToInputd",
    "monai_attn.inference.SaveSegmentationd", "monai_attn.inference.SegmentationInferer",
    "monai_attn.losses.segmentation_loss",
    "monai_attn.presets.ct_inference_transforms", "monai_attn.presets.ct_train_transforms",
    "monai_attn.presets.ct_val_transforms", "monai_attn.presets.cells_train_transforms",
    "monai_attn.presets.cells_val_transforms", "monai_attn.presets.retina_train_transforms",
    "monai_attn.presets.retina_val_transforms",
    "monai_attn.training.EpochCheckpointSaver", "monai_attn.training.KeyMetricState",
    "monai_attn.training.PrecisionInferer", "monai_attn.training.TrainingSummary",
    "monai_attn.training.distributed_sampler",
    "monai_attn.training.learning_rate.LearningRateWriter", "monai_attn.training.warmup_lr_schedule",
    "monai.handlers.from_engine", "monai.data.Dataset", "monai.data.CacheDataset", "monai.data.DataLoader",
    "torch.nn.parallel.DistributedDataParallel", "ignite.handlers.ProgressBar",
)

#: Argument names whose string value MONAI resolves to a class by name (``LoadImage(reader=)``,
#: ``SaveImage(writer=)``); only MONAI's own readers and writers are accepted there.
NAME_RESOLVED_ARGUMENTS: tuple[str, ...] = ("reader", "writer")

#: ``_mode_`` values that only change how a component is built, not what runs.
SAFE_MODES: tuple[str, ...] = ("default", "callable")

#: Separator of nested ids in messages, as MONAI writes them (``segmenter::overlap``).
ID_SEPARATOR = "::"

_DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ADVICE = "a config from outside the package may not run code; pass --trust-config if you trust it"


def check_config_trusted(config: Mapping[str, Any], source: str | os.PathLike) -> None:
    """Raise InputError naming ``source`` and the first key path that could run code.

    Args:
        config: the parsed JSON (or YAML) config, or a bundle's metadata.
        source: the file it came from; ``%`` macros are resolved against its folder.

    Raises:
        InputError: ``<source>: <key path> ...: <why>; a config from outside the package may
            not run code; pass --trust-config if you trust it``.
    """
    source = Path(source)
    _walk(config, [], source, Path(os.path.abspath(source)).parent, set())


def resolve_target(name: str) -> Any:
    """The object MONAI would instantiate for ``_target_: name``, or None when it resolves to nothing.

    Bare names go through MONAI's component table (as ``ConfigComponent`` does); dotted paths
    are only resolved when they start with one of :data:`IMPORTABLE_PACKAGES`.
    """
    if "." not in name:
        from monai.bundle.config_item import ComponentLocator

        module = _locator(ComponentLocator).get_component_module_name(name)
        if module is None:
            return None
        name = f"{module[0] if isinstance(module, list) else module}.{name}"
    if name.split(".", 1)[0] not in IMPORTABLE_PACKAGES:
        return None
    try:
        return pydoc.locate(name)
    except pydoc.ErrorDuringImport:
        return None


def is_allowed_object(obj: Any) -> bool:
    """True when an untrusted config may build ``obj`` (see the module docstring)."""
    if any(obj is allowed for allowed in _allowed_objects()):
        return True
    if not inspect.isclass(obj):
        return False
    module, name = getattr(obj, "__module__", "") or "", obj.__name__
    if any(denied in name for denied in DENIED_CLASS_NAMES):
        return False
    if module.startswith("monai.networks.nets."):
        return name in ALLOWED_MONAI_NETWORKS
    return any(module == m or module.startswith(m) for m in ALLOWED_DEFINITION_MODULES)


@lru_cache(maxsize=1)
def _allowed_objects() -> tuple[Any, ...]:
    return tuple(obj for obj in map(resolve_target, ALLOWED_TARGETS) if obj is not None)


@lru_cache(maxsize=1)
def _locator(cls):
    return cls()


def _walk(node: Any, keys: list[str], source: Path, folder: Path, seen: set[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = [*keys, str(key)]
            if key == "_target_":
                _check_target(value, path, source)
            elif key == "_mode_" and value not in SAFE_MODES:
                _refuse(source, path, f"{value!r} is not one of {', '.join(SAFE_MODES)}")
            elif key in NAME_RESOLVED_ARGUMENTS:
                _check_named_class(value, path, source)
            _walk(value, path, source, folder, seen)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, [*keys, str(index)], source, folder, seen)
    elif isinstance(node, str):
        if node.startswith("$"):
            _refuse(source, keys, f"is a $-expression ({_shorten(node)}), which runs as Python")
        if node.startswith("%"):
            _check_macro(node, keys, source, folder, seen)


def _check_target(value: Any, keys: list[str], source: Path) -> None:
    if not isinstance(value, str) or not _DOTTED_NAME.match(value):
        _refuse(source, keys, f"{_shorten(str(value))!r} is not a plain module.name")
    obj = resolve_target(value)
    if obj is None:
        _refuse(source, keys, f"{value!r} does not resolve to a class under {', '.join(IMPORTABLE_PACKAGES)}")
    if not is_allowed_object(obj):
        what = getattr(obj, "__module__", None) or type(obj).__name__
        _refuse(source, keys, f"{value!r} resolves to {_describe(obj)} (from {what}), which is not on the "
                              "allow-list of classes a config may build")


def _check_named_class(value: Any, keys: list[str], source: Path) -> None:
    """``reader`` / ``writer`` strings: MONAI's image readers and writers only."""
    from monai.data import ImageReader, ImageWriter

    for item in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(item, str) or item.startswith(("$", "@", "%")):
            continue  # objects are checked as targets; expressions and macros by _walk
        import monai.data

        obj = getattr(monai.data, item, None) if _DOTTED_NAME.match(item) and "." not in item else None
        if not (inspect.isclass(obj) and issubclass(obj, (ImageReader, ImageWriter))):
            _refuse(source, keys, f"{_shorten(item)!r} is not one of MONAI's image readers or writers")


def _check_macro(value: str, keys: list[str], source: Path, folder: Path, seen: set[str]) -> None:
    """``%file#id`` copies part of another file: only files inside the config's folder, checked whole."""
    file_part = value[1:].split("#", 1)[0].split(ID_SEPARATOR, 1)[0]
    if not file_part:
        return  # %#id or %::id: the same file
    target = Path(file_part)
    resolved = Path(os.path.realpath(target if target.is_absolute() else folder / target))
    if not resolved.is_relative_to(os.path.realpath(folder)):
        _refuse(source, keys, f"macro {_shorten(value)!r} reads a file outside the config's folder {folder}")
    if str(resolved) in seen or not resolved.is_file():
        return  # checked already, or MONAI will fail to read it
    seen.add(str(resolved))
    from monai.bundle import ConfigParser

    try:
        content = ConfigParser.load_config_file(str(resolved))
    except Exception as error:  # JSON and YAML readers raise many types
        _refuse(source, keys, f"macro {_shorten(value)!r} names a file that cannot be read ({_shorten(str(error))})")
    _walk(content, [], resolved, resolved.parent, seen)


def _describe(obj: Any) -> str:
    if inspect.isclass(obj):
        return f"class {obj.__qualname__}"
    if inspect.ismodule(obj):
        return f"module {obj.__name__}"
    if callable(obj):
        return f"callable {getattr(obj, '__qualname__', type(obj).__name__)}"
    return f"a {type(obj).__name__} value"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse(source: Path, keys: list[str], why: str) -> None:
    where = ID_SEPARATOR.join(keys) or "the top level"
    raise InputError(f"{where} {why}; {_ADVICE}", path=source)
