"""Reading and writing gzip NIfTI as ``segment`` does, with nibabel's gzip and with faster gzip libraries.

``segment`` reads a CT with :func:`monai_attn.io.load_image` (MONAI's ``LoadImage`` over
nibabel) and writes the label map with :func:`monai_attn.io.save_like` (``nib.save``, uint8,
nibabel's gzip level 1). Both go through nibabel's opener for ``.gz`` files, so a gzip
library can be swapped in under them:

- ``zlib``: nibabel as installed without extras (Python's ``gzip`` module, zlib);
- ``indexed_gzip``: nibabel reads with ``indexed_gzip.IndexedGzipFile`` when that package is
  installed (nibabel's own support; writing stays zlib);
- ``isal``: what the project does: :class:`monai_attn.io.MedicalImageReader` hands nibabel a
  python-isal (Intel ISA-L) ``igzip`` stream for the voxels, and writing goes through
  ``isal.igzip`` at level 1 like nibabel's default. The other two rows turn the reader's isal
  stream off.

For the phantom CT scans of ``inference.py`` (512x512x200 and 512x512x600 at 0.8x0.8x2.5 mm,
int16, generated into the same cache), each backend reads the image and writes the phantom's
label map; the backends alternate within each repeat and the median is reported. The arrays
read must be identical, and the label files written must hold identical NIfTI bytes once
decompressed (gzip streams of different libraries differ). Backends whose package is not
installed are skipped with a message.

Usage::

    python benchmarks/nifti_io.py                 # 512x512x200 and 512x512x600, 3 repeats
    python benchmarks/nifti_io.py --quick         # tiny phantom: smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import importlib.util
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import default_work_dir, format_machine, load_average, machine_description, markdown_table
from inference import CASES, phantom_paths

#: The gzip libraries compared, in table order; the first is the reference.
BACKENDS = ("zlib", "indexed_gzip", "isal")
#: nibabel's default gzip level for writing, kept for every backend.
NIBABEL_GZIP_LEVEL = 1


def backend_missing(name: str) -> str | None:
    """None when ``name`` can run here; otherwise why not."""
    package = {"zlib": None, "indexed_gzip": "indexed_gzip", "isal": "isal"}[name]
    if package and importlib.util.find_spec(package) is None:
        return f"{package} is not installed (pip install {'python-isal' if package == 'isal' else package})"
    return None


def _isal_open(filename: str, mode: str = "rb", compresslevel: int = NIBABEL_GZIP_LEVEL, mtime: int = 0,
               keep_open: bool = False) -> gzip.GzipFile:
    """nibabel's ``gzip_open`` signature over python-isal (levels 0-3; nibabel writes level 1)."""
    from isal import igzip

    return igzip.IGzipFile(filename, mode, compresslevel=min(int(compresslevel), 3), mtime=mtime)


@contextlib.contextmanager
def gzip_backend(name: str) -> Iterator[None]:
    """nibabel reads and writes ``.gz`` with backend ``name`` inside the block."""
    import nibabel._compression as compression
    from nibabel.openers import Opener

    from monai_attn.io import readers

    saved_map, saved_flag = dict(Opener.compress_ext_map), compression.HAVE_INDEXED_GZIP
    saved_class, saved_stream = compression.IndexedGzipFile, readers._isal_stream
    try:
        if name != "isal":
            readers._isal_stream = lambda path: None
        compression.HAVE_INDEXED_GZIP = name == "indexed_gzip"
        if name == "indexed_gzip":
            from indexed_gzip import IndexedGzipFile

            compression.IndexedGzipFile = IndexedGzipFile
        if name == "isal":
            Opener.compress_ext_map[".gz"] = (_isal_open, saved_map[".gz"][1])
        yield
    finally:
        Opener.compress_ext_map.clear()
        Opener.compress_ext_map.update(saved_map)
        compression.HAVE_INDEXED_GZIP, compression.IndexedGzipFile = saved_flag, saved_class
        readers._isal_stream = saved_stream


def read_and_write(image_path: Path, labels: Any, output: Path) -> dict[str, Any]:
    """Read the image and write ``labels`` on its grid as ``segment`` does; seconds and checksums."""
    import numpy as np

    from monai_attn.io import load_image, save_like

    tick = time.perf_counter()
    image = load_image(image_path)
    read_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    save_like(labels, image, output, dtype=np.uint8)
    write_seconds = time.perf_counter() - tick
    return {
        "read": read_seconds,
        "write": write_seconds,
        "image_sha256": hashlib.sha256(np.ascontiguousarray(image.numpy()).tobytes()).hexdigest(),
        "label_nifti_sha256": hashlib.sha256(gzip.decompress(output.read_bytes())).hexdigest(),
        "label_bytes": output.stat().st_size,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=[c for c in CASES if c != "tiny"], default=["clinical", "large"])
    parser.add_argument("--repeats", type=int, default=3, help="reads and writes per backend; the median is reported")
    parser.add_argument("--work-dir", type=Path, default=default_work_dir(), help="phantoms (shared with inference.py)")
    parser.add_argument("--json", type=Path, help="also write the results here (default: WORK_DIR/nifti_io.json)")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny phantom, one repeat")
    args = parser.parse_args(argv)

    import nibabel as nib

    machine = machine_description()
    print(format_machine(machine), flush=True)
    backends = []
    for name in BACKENDS:
        missing = backend_missing(name)
        if missing:
            print(f"skipping {name}: {missing}", flush=True)
        else:
            backends.append(name)
    work_dir = args.work_dir.resolve()
    cases = ["tiny"] if args.quick else list(dict.fromkeys(args.cases))
    repeats = 1 if args.quick else args.repeats
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for case in cases:
        image_path, label_path = phantom_paths(CASES[case], work_dir)
        labels = nib.load(label_path).get_fdata(dtype="float32").astype("uint8")
        for repeat in range(repeats):
            for name in backends if repeat % 2 == 0 else reversed(backends):
                output = work_dir / "io" / name / f"{case}_labels.nii.gz"
                with gzip_backend(name):
                    results.setdefault((case, name), []).append(read_and_write(image_path, labels, output))

    rows, checks = [], []
    for case in cases:
        reference = results[(case, backends[0])][0]
        base = {op: statistics.median(r[op] for r in results[(case, backends[0])]) for op in ("read", "write")}
        for name in backends:
            runs = results[(case, name)]
            median = {op: statistics.median(r[op] for r in runs) for op in ("read", "write")}
            same_image = all(r["image_sha256"] == reference["image_sha256"] for r in runs)
            same_labels = all(r["label_nifti_sha256"] == reference["label_nifti_sha256"] for r in runs)
            checks.append(same_image and same_labels)
            rows.append([
                "x".join(map(str, CASES[case].shape)), name, f"{median['read']:.2f}", f"{base['read'] / median['read']:.2f}x",
                f"{median['write']:.2f}", f"{base['write'] / median['write']:.2f}x",
                f"{runs[0]['label_bytes'] / 1e6:.2f}", "yes" if same_image else "NO", "yes" if same_labels else "NO",
            ])
    print(f"\n{repeats} repeat(s); load average at the start {' '.join(f'{x:.2f}' for x in machine['load_average'])}, "
          f"at the end {' '.join(f'{x:.2f}' for x in load_average())}\n")
    print(markdown_table(
        ["case", "gzip", "read image (s)", "zlib / this", "write labels (s)", "zlib / this", "label file (MB)",
         "same image", "same label NIfTI"],
        rows, "ll" + "r" * 5 + "ll",
    ))
    report = {"machine": machine, "repeats": repeats, "backends": backends,
              "runs": {f"{c}/{b}": r for (c, b), r in results.items()}, "table": rows}
    json_path = args.json or work_dir / ("nifti_io_quick.json" if args.quick else "nifti_io.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    print(f"\nresults: {json_path}")
    if not all(checks):
        raise SystemExit("error: a gzip backend read or wrote different data")


if __name__ == "__main__":
    main()
