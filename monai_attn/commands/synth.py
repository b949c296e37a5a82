"""``monai-attn synth <task> -o DIR``: write a phantom data set in the MSD layout.

Tasks: ``abdomen-ct`` (NIfTI CT in HU with spleen/kidney/pancreas labels, optionally DICOM
series), ``retina`` (RGB fundus PNGs with disc/cup labels and vessel masks; ``--variety`` varies
cameras, framing, crops, cups, artefacts and colour per case) and ``cells``
(EM PNGs with membrane labels). Training case ``i`` depends only on ``--seed`` and ``i``;
test cases (``--test-cases``) come from a held-out seed that no training set uses
(:func:`monai_attn.synthetic.rng.case_key`), so evaluating on them never scores training data.

Writing into a folder that holds an earlier ``synth`` data set replaces it: the folders and
files ``synth`` writes (:data:`OWNED`) are removed first, so no stale ``imagesTs/`` or
``imagesTr_dicom/`` remain; anything else in the folder is left alone. A folder holding a
data set that ``synth`` did not write (a ``dataset.json`` without its ``"synthetic"`` record)
is refused.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import shutil
import time
from pathlib import Path

from monai_attn.errors import InputError
from monai_attn.synthetic.rng import MAX_SEED
from monai_attn.wording import plural

logger = logging.getLogger(__name__)

#: Entries of the output folder that ``synth`` writes (and replaces on a re-run).
OWNED: tuple[str, ...] = (
    "dataset.json",
    "imagesTr",
    "labelsTr",
    "imagesTs",
    "labelsTs",
    "imagesTr_dicom",
    "imagesTs_dicom",
    "labelsTr_vessels",
    "labelsTs_vessels",
    "previews",
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="write a synthetic phantom data set (MSD layout)",
        description="Write a synthetic phantom data set in the Medical Segmentation Decathlon layout "
                    "(dataset.json, imagesTr/, labelsTr/, imagesTs/). No download needed.")
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)

    ct = tasks.add_parser("abdomen-ct", help="abdominal CT (HU) with spleen, kidney and pancreas labels",
                          description="Abdominal CT phantoms: int16 HU NIfTI images and uint8 labels "
                                      "(0 background, 1 spleen, 2 kidney, 3 pancreas).")
    _common(ct)
    ct.add_argument("--size", type=int, nargs=3, default=(256, 256, 128), metavar=("X", "Y", "Z"),
                    help="voxels per axis (default: 256 256 128)")
    ct.add_argument("--spacing", type=float, nargs="+", default=None, metavar="MM",
                    help="voxel size in mm: 'SX SY SZ' fixed, or 'XY_MIN XY_MAX Z_MIN Z_MAX' drawn per case "
                         "(default: per case, a 340-440 mm field of view and a clinical slice interval)")
    ct.add_argument("--dicom", action="store_true",
                    help="also write each image as a CT DICOM series in imagesTr_dicom/<case>/")
    ct.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    ct.set_defaults(func=_run_abdomen_ct)

    anatomy = tasks.add_parser(
        "abdomen-ct-anatomy", help="abdominal CT rendered from real patients' label maps",
        description="CT rendered from whole-abdomen label maps (TotalSegmentator v2, AMOS; each map with a "
                    "classes.json beside it): int16 HU NIfTI and uint8 labels (0 background, 1 spleen, 2 kidney, "
                    "3 pancreas). Each case is a new patient: pose, deformation, organ sizes, contrast phase, "
                    "field of view, slice thickness, noise.")
    _common(anatomy)
    anatomy.add_argument("--anatomy", nargs="+", required=True, metavar="MAP",
                         help="label maps (.nii.gz) or folders of them, each folder with a classes.json")
    anatomy.add_argument("--phantoms", type=int, default=0,
                         help="also add this many parametric phantoms (synth abdomen-ct) to the training list")
    anatomy.add_argument("--random-tissues", type=float, default=None, metavar="FRACTION",
                         help="fraction of rendered cases whose tissues all get random HU, SynthSeg-style "
                              "domain randomisation (0..1; default: the renderer's RANDOM_TISSUE_FRACTION, 0.15)")
    anatomy.add_argument("--workers", type=int, default=1, help="parallel processes (default: 1)")
    anatomy.set_defaults(func=_run_abdomen_ct_anatomy)

    two_d = (
        ("retina", "RGB fundus photographs with optic disc/cup labels and vessel masks",
         "Fundus phantoms: RGB PNG images, labels 0 background, 1 disc rim, 2 cup; vessel masks in "
         "labelsTr_vessels/.", _run_retina),
        ("cells", "electron-microscopy cell images with membrane labels",
         "EM phantoms (ISBI 2012 style): grey PNG images, labels 1 membrane, 0 cell interior.", _run_cells),
    )
    for name, help_text, description, run in two_d:
        task = tasks.add_parser(name, help=help_text, description=description)
        _common(task)
        task.add_argument("--size", type=int, default=None,
                          help="image width and height in pixels (default: the generator's DEFAULT_SIZE, the size "
                               "the bundle trains on: 768 retina, 512 cells)")
        if name == "retina":
            task.add_argument("--variety", action="store_true",
                              help="vary the acquisition per case: 30/45/50 degree cameras, disc- or macula-centred "
                                   "framing and disc crops, cup/disc ratio up to 0.9, glare, dust, eyelash shadows, "
                                   "uneven focus, JPEG, camera colour profiles (recorded in dataset.json)")
        task.set_defaults(func=run)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (created if missing; an earlier synth data set in it is replaced)")
    parser.add_argument("--cases", type=int, default=10, help="training cases (default: 10)")
    parser.add_argument("--test-cases", type=int, default=0,
                        help="test cases in imagesTs/, from a held-out seed no training set uses (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help=f"data-set seed, 0 .. {MAX_SEED} (default: 0)")
    parser.add_argument("--preview", action="store_true", help="also write previews/<case>.png overlays")


def _check(args: argparse.Namespace) -> None:
    if args.cases < 0 or args.test_cases < 0 or args.cases + args.test_cases == 0:
        raise InputError(f"--cases {args.cases} and --test-cases {args.test_cases}: need at least one case")
    if not 0 <= args.seed <= MAX_SEED:
        raise InputError(f"--seed {args.seed}: must be 0 .. {MAX_SEED}")


def clear_previous(out_dir: str | Path) -> None:
    """Remove an earlier ``synth`` data set (the :data:`OWNED` entries) from ``out_dir``.

    Raises:
        InputError: ``out_dir`` is a file, or holds a data set ``synth`` did not write.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("is a file; synth writes a data set folder", path=out)
    present = [name for name in OWNED if (out / name).exists()]
    if not present:
        return
    try:
        ours = "synthetic" in json.loads((out / "dataset.json").read_text())
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise InputError(f"holds {', '.join(present)} not written by synth; choose a new or empty folder", path=out)
    for name in present:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    logger.info("replaced the earlier synthetic data set in %s", out)


def _run_abdomen_ct(args: argparse.Namespace) -> int:
    from monai_attn.synthetic.abdomen_ct import SpacingRange, write_abdomen_ct_dataset

    _check(args)
    if min(args.size) < 8:
        raise InputError(f"--size {' '.join(map(str, args.size))}: each axis needs at least 8 voxels")
    spacing = None
    if args.spacing is not None:
        text = " ".join(map(str, args.spacing))
        if len(args.spacing) not in (3, 4) or min(args.spacing) <= 0:
            raise InputError(f"--spacing {text}: give 3 positive sizes (SX SY SZ) or 4 (XY_MIN XY_MAX Z_MIN Z_MAX), mm")
        if len(args.spacing) == 3:
            spacing = tuple(args.spacing)
        elif args.spacing[0] > args.spacing[1] or args.spacing[2] > args.spacing[3]:
            raise InputError(f"--spacing {text}: each range must be MIN MAX")
        else:
            spacing = SpacingRange(tuple(args.spacing[:2]), tuple(args.spacing[2:]))
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be >= 1")
    return _report(args, lambda: write_abdomen_ct_dataset(
        args.output, args.cases, args.seed, test_cases=args.test_cases, size=tuple(args.size),
        spacing_mm=spacing, dicom=args.dicom,
        preview=args.preview, workers=args.workers))


def _run_abdomen_ct_anatomy(args: argparse.Namespace) -> int:
    from monai_attn.synthetic.anatomy_ct import anatomy_sources, write_anatomy_ct_dataset

    _check(args)
    if args.workers < 1 or args.phantoms < 0:
        raise InputError(f"--workers {args.workers} --phantoms {args.phantoms}: need workers >= 1, phantoms >= 0")
    if args.random_tissues is not None and not 0.0 <= args.random_tissues <= 1.0:
        raise InputError(f"--random-tissues {args.random_tissues}: a fraction of the cases, 0..1")
    try:
        sources = anatomy_sources(args.anatomy)
    except ValueError as error:
        raise InputError(str(error)) from None
    # None: the renderer's own default
    randomised = {} if args.random_tissues is None else {"random_tissues": args.random_tissues}
    return _report(args, lambda: write_anatomy_ct_dataset(
        args.output, sources, args.cases, args.seed, test_cases=args.test_cases, phantoms=args.phantoms,
        workers=args.workers, **randomised))


def _run_retina(args: argparse.Namespace) -> int:
    from monai_attn.synthetic.retina import write_retina_dataset

    return _run_2d(args, functools.partial(write_retina_dataset, variety=args.variety))


def _run_cells(args: argparse.Namespace) -> int:
    from monai_attn.synthetic.cells import write_cells_dataset

    return _run_2d(args, write_cells_dataset)


def _run_2d(args: argparse.Namespace, write_dataset) -> int:
    """Check the common 2-D options and write the data set with ``write_dataset``."""
    _check(args)
    if args.size is not None and args.size < 32:
        raise InputError(f"--size {args.size}: must be at least 32 pixels")
    sizes = {} if args.size is None else {"size": args.size}  # None: the generator's own default
    return _report(args, lambda: write_dataset(args.output, args.cases, args.seed, test_cases=args.test_cases,
                                               preview=args.preview, **sizes))


def _report(args: argparse.Namespace, write) -> int:
    clear_previous(args.output)
    start = time.perf_counter()
    path = write()
    total = args.cases + args.test_cases + getattr(args, "phantoms", 0)
    logger.info("%s: %s in %.1f s -> %s", args.task, plural(total, "case"), time.perf_counter() - start, path)
    return 0
