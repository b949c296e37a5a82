"""Publishing a trained checkpoint as a bundle's shipped weights, with a new version: a release gate.

Training writes to run folders (:func:`~monai_attn.training.runs.new_run_dir`) and never into
a bundle. Replacing a bundle's ``models/model.pt`` is this separate, explicit step: it checks
that the checkpoint loads (``weights_only=True``, strictly) into the bundle's ``network_def``,
that the new version is greater than the bundle's, scores the candidate and the shipped weights
on the bundle's held-out phantoms (:mod:`~monai_attn.training.release_gate`) and refuses a
candidate that is worse unless forced; then it keeps the previous weights as
``models/history/model_<old version>.pt``, replaces the weights and edits
``configs/metadata.json`` in place (``version``, a ``changelog`` entry on top, the measured
``eval_metrics``; every other line as it was).

Example::

    publish_checkpoint("ct", "runs/abdomen_ct_attention_unet/20260101-120000/models/model.pt",
                       version="0.4.0", notes="fine-tuned on 40 more phantoms; held-out spleen 0.95")
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from monai_attn.bundle.json_text import prepend_item, set_top_level
from monai_attn.bundle.lookup import resolve_bundle
from monai_attn.bundle.spec import BundleSpec
from monai_attn.errors import InputError
from monai_attn.inference.models import is_torchscript
from monai_attn.networks.widen import widen_state_dict
from monai_attn.training.release_gate import (
    HeldoutScores,
    bundle_config_parser,
    dice_metrics,
    heldout_settings,
    score_heldout,
    score_real_case,
)
from monai_attn.wording import plural

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"\d+(\.\d+)*")
#: Keys under which an epoch checkpoint of a bundle's ``train.json`` holds the network's state dict.
_NETWORK_KEYS = ("network", "model")


def publish_checkpoint(
    bundle: str | os.PathLike, checkpoint: str | os.PathLike, version: str, notes: str, *, force: bool = False,
    heldout_data: str | os.PathLike | None = None, real_case: tuple[str | os.PathLike, str | os.PathLike] | None = None,
    real_mapping: str | None = None, trust: bool = False,
) -> Path:
    """Make ``checkpoint`` the weights of ``bundle`` at ``version``; returns the new ``models/model.pt``.

    Args:
        bundle: bundle folder, full name or short name (:func:`~monai_attn.bundle.lookup.resolve_bundle`).
        checkpoint: a state dict of the bundle's ``network_def`` (a run's ``models/model.pt``), or an
            epoch checkpoint holding one under ``network``; only the network weights are written.
        version: dot-separated numbers (``0.4.0``), greater than the bundle's current version.
        notes: the changelog entry: what changed and what the weights reach.
        force: publish a candidate worse than the shipped weights on the held-out phantoms, or
            unscored when the metadata names no held-out set.
        heldout_data: folder that keeps the generated held-out phantoms between runs.
        real_case: (image, reference label map) of a real case to score the candidate on once:
            the figures are logged and written as ``real_<task>_metrics``; ``real_mapping``
            names the ``datasets/`` descriptor of the reference's label ids.
        trust: let the bundle's configs run code although they differ from the shipped ones
            (``--trust-config``: a bundle one has edited, e.g. to a wider ``network_def``).

    Raises:
        InputError: bad version or notes, a checkpoint that does not load into ``network_def``,
            a candidate worse than the shipped weights (without ``force``).
        FileNotFoundError: a missing checkpoint or bundle config.
    """
    folder = resolve_bundle(bundle)
    metadata_path = folder / "configs" / "metadata.json"
    metadata = _read_metadata(metadata_path)
    current = str(metadata.get("version", "0"))
    if not _VERSION.fullmatch(version):
        raise InputError(f"--version '{version}' is not dot-separated numbers such as 0.4.0")
    if not _VERSION.fullmatch(current):
        raise InputError(f"version '{current}' is not dot-separated numbers", path=metadata_path)
    if _as_numbers(version) <= _as_numbers(current):
        raise InputError(f"version {version} is not greater than the bundle's version {current}", path=metadata_path)
    if not notes.strip():
        raise InputError("--notes is empty: say what changed and what the new weights reach")

    state = read_state_dict(checkpoint)
    network = _network_def(folder, trust)
    check_fits(network, state, checkpoint)
    try:
        network.load_state_dict(state)  # strict: what check_fits does not see (dtypes a copy cannot cast)
    except RuntimeError as err:
        raise InputError(f"does not load into the bundle's network_def ({' '.join(str(err).split())[:300]})",
                         path=checkpoint) from err

    text = metadata_path.read_text(encoding="utf-8")
    text = prepend_item(set_top_level(text, "version", version), "changelog", version, notes.strip())
    scores = _score(folder, network, state, metadata, force, heldout_data, trust)
    if scores is not None:
        text = set_top_level(text, "eval_metrics", scores.metrics("candidate"))
    if real_case is not None:
        real = score_real_case(folder, state, real_case[0], real_case[1], real_mapping, trust=trust)
        logger.info("real case %s: %s", Path(real_case[0]).name, ", ".join(f"{k} {v:.3f}" for k, v in real.items()))
        text = set_top_level(text, f"real_{BundleSpec.read(folder).task}_metrics", dice_metrics(real))
    weights_path = folder / "models" / "model.pt"
    weights_path.parent.mkdir(exist_ok=True)
    history = weights_path.parent / "history" / f"model_{current}.pt"
    if weights_path.is_file() and not history.exists():
        history.parent.mkdir(exist_ok=True)
        shutil.copy2(weights_path, history)
    staged = []
    try:
        staged.append(_stage(weights_path, lambda tmp: torch.save(state, tmp)))
        staged.append(_stage(metadata_path, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    except BaseException:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    os.replace(staged[0], weights_path)
    os.replace(staged[1], metadata_path)
    return weights_path


def _score(folder: Path, network: torch.nn.Module, state: Mapping[str, torch.Tensor], metadata: Mapping, force: bool,
           heldout_data: str | os.PathLike | None, trust: bool) -> HeldoutScores | None:
    """The candidate (and the shipped weights, when there are some) on the held-out phantoms;
    refuses a worse candidate unless ``force``; None when there is nothing to score on and ``force``."""
    try:
        heldout_settings(metadata, folder)
    except InputError:
        if force:
            logger.warning("no held-out set in the metadata: publishing unscored (--force)")
            return None
        raise
    models = {"candidate": state}
    shipped = folder / "models" / "model.pt"
    if shipped.is_file():
        models["shipped"] = _as_network_def(network, read_state_dict(shipped), shipped)
    scores = score_heldout(folder, models, metadata, heldout_data, trust=trust)
    worse = scores.worse("candidate", "shipped") if "shipped" in models else {}
    if worse:
        lost = ", ".join(f"{name} {new:.3f} < {old:.3f}" for name, (new, old) in worse.items())
        if not force:
            raise InputError(f"the candidate is worse than the shipped weights on {plural(scores.cases, 'held-out phantom')} "
                             f"(seed {scores.seed}): {lost}; nothing changed (--force publishes it anyway)")
        logger.warning("publishing a candidate worse than the shipped weights (--force): %s", lost)
    return scores


def _as_network_def(network: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The shipped weights as the bundle's ``network`` holds them: as they are, or widened
    (:func:`~monai_attn.networks.widen.widen_state_dict`: the same outputs) when the candidate
    brings a wider network, so that the gate compares what each computes."""
    try:
        check_fits(network, state, path)
    except InputError:
        try:
            widened = widen_state_dict(state, network, torch.Generator().manual_seed(0))
        except ValueError as err:
            raise InputError(f"the shipped weights neither load into the bundle's network_def nor widen to it "
                             f"({err}); the gate cannot compare them", path=path) from err
        logger.info("%s: the shipped weights widened to the bundle's network_def for the comparison (the same "
                    "outputs)", path)
        return widened
    return state


def read_state_dict(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network weights in ``checkpoint``, read with ``torch.load(..., weights_only=True)``.

    A plain state dict (a run's ``models/model.pt``) or an epoch checkpoint holding one under
    ``network`` or ``model``.

    Raises:
        FileNotFoundError: no such file.
        InputError: not a checkpoint torch reads safely, TorchScript, or no tensors by name.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if is_torchscript(path):
        raise InputError("is a TorchScript file; publish the state dict it was exported from", path=path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises KeyError, UnpicklingError, RuntimeError... for bad files
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise InputError(f"not a checkpoint torch.load(weights_only=True) reads ({reason[:300]})", path=path) from err
    if isinstance(content, Mapping):
        for key in _NETWORK_KEYS:
            if isinstance(content.get(key), Mapping):
                content = content[key]
                break
    if not isinstance(content, Mapping) or not content or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()
    ):
        raise InputError("holds no state dict (tensors by parameter name)", path=path)
    return dict(content)


def check_fits(network: torch.nn.Module, state: Mapping[str, torch.Tensor], checkpoint: str | os.PathLike) -> None:
    """Raise :class:`InputError` naming what differs when ``state`` does not load strictly into ``network``.

    The message gives the number of missing, unexpected and wrongly shaped tensors with the
    first of each, e.g. ``1 of the wrong shape (head.weight: (3, 16, 1, 1) instead of (2, 16, 1, 1))``.
    """
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: {tuple(state[k].shape)} instead of {tuple(v.shape)}"
        for k, v in expected.items() if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{len(found)} {what} ({found[0]}{', ...' if len(found) > 1 else ''})"
        for what, found in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", shapes))
        if found
    ]
    if problems:
        raise InputError(f"does not fit the bundle's network_def: {', '.join(problems)}", path=checkpoint)


def _read_metadata(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bundle metadata not found")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"not valid JSON ({err})", path=path) from err
    if not isinstance(content, dict):
        raise InputError("bundle metadata must be a JSON object", path=path)
    return content


def _as_numbers(version: str) -> tuple[int, ...]:
    """``"0.4.0"`` -> ``(0, 4)``: trailing zeros dropped, so that 0.4 and 0.4.0 compare equal."""
    numbers = [int(part) for part in version.split(".")]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def _network_def(folder: Path, trust: bool) -> torch.nn.Module:
    """``network_def`` of the bundle's inference config (:func:`~monai_attn.training.release_gate.bundle_config_parser`).

    Only ``network_def`` is evaluated, and it does not read the metadata, which publish itself
    rewrites.
    """
    parser = bundle_config_parser(folder, trust)
    if "network_def" not in parser.config:
        raise InputError("has no 'network_def'", path=folder / "configs" / "common.json")
    return parser.get_parsed_content("network_def")


def _stage(path: Path, write: Callable[[Path], object]) -> Path:
    """Write a temporary file beside ``path`` with ``write(tmp)``, with the permissions ``path``
    has (or a new file would have); the caller renames it into place."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(tmp))
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)
