"""Every command that README.md and docs/ show, run in the order written, on tiny inputs.

``pytest -m docs`` (CI runs it after the default suite; about nine minutes on 2 cores). Each
documentation file gets a fresh workspace: links to the checkout's ``scripts/`` and
``benchmarks/``, a copy of ``bundles/`` (so training, export and ``publish`` never touch the
checkout), an empty ``docs/`` and, beside it, ``../shared`` when the checkout has one. Its
commands run there one after the other, as a reader types them, so each reads what the ones
above it wrote; each must exit 0 and leave the outputs it names (``-o``, ``--output``,
``--output_dir``, ``--filepath``, ``--json``).

"Tiny inputs" is the only change made to what is written (:func:`tiny`): case counts are capped
(:data:`CAPS`), CT phantoms are 96x96x48 voxels unless a size is written, bundle training runs
one epoch on two folds, the demo makes one small phantom, benchmarks run ``--quick`` and
``publish`` scores the shipped weights (a one-epoch run would be refused) on one small held-out
phantom. Inputs a reader brings (``scan.nii.gz``,
``dicom_series/``, ``fundus.jpg``, prediction folders ...) are made by :data:`PROVIDERS` when a
command names one that is not there. Skipped, each saying why: synopses, data sets the reader
downloads (``/data/...``), the shared real data where it is absent, the test suite itself, and
commands that read what a skipped command would have written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from doc_blocks import DOCS, REPO, DocCommand, doc_commands, is_synopsis

pytestmark = pytest.mark.docs

SHARED = REPO.parent / "shared"
#: Largest case counts kept: four cases give a two-fold split with a case per process under torchrun;
#: one rendered case (about half a minute) is enough to show the renderer runs.
CAPS = {"--cases": 4, "--test-cases": 1, "--phantoms": 1}
RENDERED_CASES = 1
CT_SIZE = ["96", "96", "48"]
#: The demo's options for one small phantom (``monai-attn demo`` and ``bootstrap.sh demo``).
DEMO_ONCE = ["--cases", "1", "--size", *CT_SIZE]
#: What one epoch of a bundle's training on a few cases needs (replacing what the docs write).
TRAIN_ONCE = {"--epochs": "1", "--val_interval": "1", "--n_folds": "2", "--cache_rate": "0", "--num_samples": "1"}
#: Inputs the providers take from ../shared (real patients' label maps).
FROM_SHARED = {"maps"}
OUTPUT_OPTIONS = ("-o", "--output", "--output_dir", "--filepath", "--json")


def _set_option(argv: list[str], name: str, values: list[str]) -> list[str]:
    """``argv`` with option ``name`` taking ``values`` (replaced where written, else appended)."""
    if name in argv:
        at = argv.index(name)
        return argv[:at + 1] + values + argv[at + 1 + len(values):]
    return argv + [name, *values]


def _is_bundle_training(argv: list[str]) -> bool:
    configs = argv[argv.index("--config_file") + 1] if "--config_file" in argv else ""
    return "run" in argv and "train.json" in configs and "evaluate.json" not in configs


def tiny(argv: list[str], workspace: Path) -> list[str]:
    """The command made small (see the module docstring); its meaning is unchanged."""
    argv = list(argv)
    for name, cap in CAPS.items():
        if name in argv:
            at = argv.index(name) + 1
            argv[at] = str(min(int(argv[at]), cap))
    if argv[:3] == ["monai-attn", "synth", "abdomen-ct-anatomy"]:
        argv = _set_option(argv, "--cases", [str(RENDERED_CASES)])
    if argv[:3] == ["monai-attn", "synth", "abdomen-ct"] and "--size" not in argv:
        argv += ["--size", *CT_SIZE]
    if argv[:2] == ["monai-attn", "demo"]:
        argv += DEMO_ONCE
    if argv[:3] == ["bash", "scripts/bootstrap.sh", "demo"]:  # bootstrap works in its checkout
        argv = ["bash", str(REPO / "scripts" / "bootstrap.sh"), "demo", *argv[3:], *DEMO_ONCE,
                "-o", str(workspace / "demo_output")]
    if _is_bundle_training(argv):
        for name, value in TRAIN_ONCE.items():
            argv = _set_option(argv, name, [value])
    if argv[0] == ".venv/bin/python":  # the checkout's interpreter, wherever the suite runs
        argv[0] = "python"
    if argv[0] == "python" and argv[1].startswith("benchmarks/") and "--quick" not in argv:
        argv.append("--quick")
    if argv[:2] == ["monai-attn", "segment"] and "--bundle" in argv:
        # a path into bundles/ means the checkout's own bundle there; the workspace's copy, once
        # `publish` has changed it, is (rightly) no longer trusted to run code
        at = argv.index("--bundle") + 1
        if argv[at].startswith("bundles/"):
            argv[at] = str(REPO / argv[at])
    if argv[:2] == ["monai-attn", "publish"]:
        argv = _prepare_publish(argv, workspace)
    return argv


def _prepare_publish(argv: list[str], workspace: Path) -> list[str]:
    """``publish`` into the workspace's copy of the bundle, scored on one small held-out phantom,
    with the shipped weights as the candidate: a one-epoch run is (rightly) refused by the gate."""
    from monai_attn.bundle.lookup import resolve_bundle

    bundle = resolve_bundle(argv[argv.index("--bundle") + 1])
    candidate = workspace / argv[argv.index("--checkpoint") + 1]
    candidate.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(bundle / "models" / "model.pt", candidate)
    heldout = workspace / "heldout_tiny"
    if not heldout.is_dir():
        _synth("abdomen-ct", heldout, "--cases", "1", "--seed", "1000", "--size", *CT_SIZE)
    argv = _set_option(argv, "--bundle", [str(workspace / "bundles" / bundle.name)])
    return _set_option(argv, "--heldout-data", [str(heldout)])


def skip_reason(argv: tuple[str, ...]) -> str | None:
    """Why a documented command is not run, or None."""
    if is_synopsis(argv):
        return "a synopsis (placeholders, alternatives), not a command"
    if any(token.startswith("/data/") for token in argv):
        return "names a data set the reader downloads (/data/...)"
    if any("../shared/" in token or token.rstrip("/") in FROM_SHARED for token in argv) and not SHARED.is_dir():
        return f"needs the shared real data ({SHARED} is absent)"
    if argv[:3] == ("bash", "scripts/bootstrap.sh", "test"):
        return "the test suite itself (CI runs it)"
    return None


# ---- inputs a reader brings -------------------------------------------------------------------

def _world(root: Path) -> Path:
    """Small data the providers copy from: two CT phantoms (one also as DICOM), two EM sections."""
    world = root / "world"
    if not world.is_dir():
        _synth("abdomen-ct", world / "ct", "--cases", "2", "--dicom", "--size", *CT_SIZE)
        _synth("cells", world / "cells", "--cases", "2")
    return world


def _synth(kind: str, folder: Path, *options: str) -> None:
    """``monai-attn synth KIND -o FOLDER OPTIONS``, in this process."""
    from monai_attn.cli import main

    assert main(["synth", kind, "-o", str(folder), *options]) == 0


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _ct_case(world: Path) -> Path:
    return sorted((world / "ct" / "imagesTr").glob("*.nii.gz"))[0]


def _fundus(world: Path, target: Path) -> None:
    from PIL import Image
    from skimage import data

    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.retina()).resize((800, 800)).save(target, quality=90)


def _eroded_labels(world: Path, target: Path) -> None:
    """The phantoms' labels with every organ eroded by one voxel: a prediction that differs."""
    import nibabel as nib
    from scipy import ndimage

    target.mkdir(parents=True)
    for path in sorted((world / "ct" / "labelsTr").glob("*.nii.gz")):
        image = nib.load(path)
        labels = np.asarray(image.dataobj)
        kept = np.zeros_like(labels)
        for value in np.unique(labels[labels > 0]):
            kept[ndimage.binary_erosion(labels == value)] = value
        nib.save(nib.Nifti1Image(kept, image.affine, image.header), target / path.name)


def _totalsegmentator_labels(workspace: Path, target: Path) -> None:
    """data/ct/labelsTs (written by the command before) in TotalSegmentator ids (kidney 2, pancreas 7)."""
    import nibabel as nib

    target.mkdir(parents=True)
    for path in sorted((workspace / "data" / "ct" / "labelsTs").glob("*.nii.gz")):
        image = nib.load(path)
        ours = np.asarray(image.dataobj)
        theirs = np.choose(ours, [0, 1, 2, 7]).astype(np.uint8)
        nib.save(nib.Nifti1Image(theirs, image.affine), target / path.name)


def _export_torchscript(workspace: Path, target: Path) -> None:
    bundle = "bundles/abdomen_ct_attention_unet"
    _run(["python", "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(target),
          "--ckpt_file", f"{bundle}/models/model.pt", "--meta_file", f"{bundle}/configs/metadata.json",
          "--config_file", f"['{bundle}/configs/common.json','{bundle}/configs/inference.json']"], workspace)


_CT_WEIGHTS = REPO / "bundles" / "abdomen_ct_attention_unet" / "models" / "model.pt"
Provider = Callable[[Path, Path, Path], None]  # (world, workspace, target)
#: Inputs a reader brings, by the name the docs give them.
PROVIDERS: dict[str, Provider] = {
    "scan.nii.gz": lambda world, ws, target: _copy(_ct_case(world), target),
    "dicom_series": lambda world, ws, target: _copy(world / "ct" / "imagesTr_dicom" / _ct_case(world).name.split(".")[0], target),
    "scan_or_dicom_folder": lambda world, ws, target: _copy(_ct_case(world), target / _ct_case(world).name),
    "scans": lambda world, ws, target: _copy(world / "ct" / "imagesTr", target),
    "fundus.jpg": lambda world, ws, target: _fundus(world, target),
    "fundus": lambda world, ws, target: _fundus(world, target / "retina.jpg"),  # a folder of photographs
    "em_sections": lambda world, ws, target: _copy(world / "cells" / "imagesTr", target),
    "maps": lambda world, ws, target: target.symlink_to(SHARED / "real-anatomy" / "totalsegmentator"),
    "phantom": lambda world, ws, target: _copy(world / "ct", target),
    "gt": lambda world, ws, target: _copy(world / "ct" / "labelsTr", target),
    "labelsTr": lambda world, ws, target: _copy(world / "ct" / "labelsTr", target),
    "unet": lambda world, ws, target: _eroded_labels(world, target),
    "attention": lambda world, ws, target: _copy(world / "ct" / "labelsTr", target),
    "attention_unet": lambda world, ws, target: _copy(world / "ct" / "labelsTr", target),
    "pred_coarse": lambda world, ws, target: _eroded_labels(world, target),
    "pred_fine": lambda world, ws, target: _copy(world / "ct" / "labelsTr", target),
    "totalseg_labels": lambda world, ws, target: _totalsegmentator_labels(ws, target),
    "abdomen-ct.ts": lambda world, ws, target: _export_torchscript(ws, target),
    "runs/ct/models/model.pt": lambda world, ws, target: _copy(_CT_WEIGHTS, target),  # a trained run's stand-in
    "model_0.2.0.pt": lambda world, ws, target: _copy(_CT_WEIGHTS, target),  # earlier releases' stand-ins
    "model_0.4.0.pt": lambda world, ws, target: _copy(_CT_WEIGHTS, target),
}


# ---- running ----------------------------------------------------------------------------------

def _environment() -> dict[str, str]:
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (f"exit {done.returncode}: {' '.join(argv)}\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _new_workspace(root: Path, doc: Path) -> Path:
    workspace = root / str(doc.relative_to(REPO)).replace("/", "_").removesuffix(".md")
    workspace.mkdir()
    for name in ("scripts", "benchmarks"):
        (workspace / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "bundles", workspace / "bundles",
                    ignore=shutil.ignore_patterns("runs", "eval", "history", "__pycache__"))
    (workspace / "docs").mkdir()
    if SHARED.is_dir() and not (root / "shared").exists():
        (root / "shared").symlink_to(SHARED)
    return workspace


@pytest.fixture(scope="session")
def docs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs")


@pytest.fixture(scope="session")
def workspaces(docs_root) -> dict[Path, Path]:
    return {}


@pytest.fixture(scope="session")
def not_written() -> dict[Path, dict[str, str]]:
    """Per documentation file: outputs of its skipped commands (path -> where the command is)."""
    return {}


def _outputs(argv) -> list[str]:
    return [argv[argv.index(option) + 1].rstrip("/") for option in OUTPUT_OPTIONS if option in argv]


def _params() -> list:
    return [pytest.param(command, id=command.where) for doc in DOCS for command in doc_commands(doc)]


@pytest.mark.parametrize("command", _params())
def test_documented_command_runs(command: DocCommand, docs_root: Path, workspaces: dict[Path, Path],
                                 not_written: dict[Path, dict[str, str]]):
    missing = not_written.setdefault(command.path, {})
    reason = skip_reason(command.argv) or next(
        (f"reads {token}, the output of {missing[token.rstrip('/')]}, which was skipped"
         for token in command.argv[1:] if token.rstrip("/") in missing), None)
    if reason:
        missing.update(dict.fromkeys(_outputs(command.argv), command.where))
        pytest.skip(reason)
    if command.path not in workspaces:
        workspaces[command.path] = _new_workspace(docs_root, command.path)
    workspace = workspaces[command.path]
    for token in command.argv[1:]:
        name = token.rstrip("/")
        if name in PROVIDERS and not (workspace / name).exists():
            PROVIDERS[name](_world(docs_root), workspace, workspace / name)
    argv = tiny(list(command.argv), workspace)
    _run(argv, workspace)
    for output in _outputs(argv):
        assert (workspace / output).exists(), f"{command.where}: {output} was not written"
