"""DICOM series folders: list the series, pick one, and build a 3-D volume with its geometry.

A CT exam arrives as a folder of single-slice DICOM files, often mixed with other series
(localizers, dose reports, a DICOMDIR, files that are not DICOM at all). This module

- lists the image series in a folder (:func:`list_dicom_series`), ignoring non-image objects
  (DICOMDIR, structured reports) and files that are not DICOM;
- picks the CT series, or the one ``series_uid`` names, and refuses to guess when several
  could be meant (:func:`select_series`);
- orders the slices by ``ImagePositionPatient`` projected on the slice normal (never by file
  name or ``InstanceNumber``), decodes pixels with SimpleITK (GDCM, so JPEG/JPEG 2000
  compressed files work) which applies ``RescaleSlope``/``RescaleIntercept`` (CT values come
  out in Hounsfield units), and checks the series is one volume (:func:`read_dicom_series`).

Geometry follows ITK: voxel index ``(i, j, k)`` = (column, row, slice); the direction matrix
has columns (row direction, column direction, slice normal) in patient LPS coordinates;
slices are ordered by ascending position along the normal, so the slice spacing is positive.
For an evenly spaced series this is exactly the grid ``SimpleITK.ImageSeriesReader`` reports.

Series that need care are repaired with a logged warning: gantry tilt (slices sheared along
the table) is corrected by shifting each slice in-plane onto a rectilinear grid, and a few
missing or unevenly spaced slices are filled by linear interpolation along the slice axis.
Series that cannot be a volume raise :class:`~monai_attn.errors.InputError`: mixed
orientations (localizers), duplicated positions (several phases in one series), large gaps,
RGB images, multi-frame files.

Nothing is decoded before the headers are checked against the files: a slice whose pixel data
is shorter than Rows x Columns x frames x BitsAllocated declares, or twice as long or more, is
refused, naming both sizes (a decoder would otherwise fill the missing rows with invented values); voxel sizes
outside 0.05-50 mm are refused; and the memory the series will need is compared with the
budget of :mod:`monai_attn.io.limits` before any pixel is read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from monai_attn.errors import InputError, brief_reason
from monai_attn.quiet import native_stderr_captured
from monai_attn.io.limits import CASE_BYTES_PER_VOXEL, check_fits_memory, check_spacing

log = logging.getLogger(__name__)

# A gap larger than this many nominal slice spacings is not interpolated: the series is refused.
MAX_INTERPOLATED_GAP = 3.0
# Slice gaps within (this fraction of the median gap + 0.01 mm) count as evenly spaced.
SPACING_TOLERANCE = 0.01
# In-plane shift between slices (in pixels) above which the series counts as tilted.
TILT_TOLERANCE_PX = 0.1


# Elements longer than this are not read with the header (their length is kept).
_DEFER_BYTES = 1024
_PIXEL_DATA = 0x7FE00010
# Lengths of encapsulated (compressed) pixel data are not known from the header.
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class SeriesInfo:
    """One image series found in a folder.

    Attributes:
        uid: SeriesInstanceUID.
        modality: Modality (``"CT"``, ``"MR"``, ...), ``""`` when absent.
        n_slices: number of image files (single-frame slices) in the series.
        description: SeriesDescription, ``""`` when absent.
        series_number: SeriesNumber, ``None`` when absent.
        image_type: ImageType values, e.g. ``("ORIGINAL", "PRIMARY", "AXIAL")``.
        files: the series' files, sorted by name (not by position).
    """

    uid: str
    modality: str
    n_slices: int
    description: str
    series_number: int | None
    image_type: tuple[str, ...]
    files: tuple[Path, ...]

    @property
    def is_localizer(self) -> bool:
        """True for scout/localizer series, which are never picked automatically."""
        return "LOCALIZER" in self.image_type

    def summary(self) -> str:
        """One-line description used in messages: uid, modality, slice count, description."""
        return f"{self.uid} ({self.modality or '?'}, {self.n_slices} slices, '{self.description}')"


@dataclass(frozen=True)
class DicomVolume:
    """A DICOM series read as one volume.

    Attributes:
        image: the volume as a SimpleITK image (HU for CT) with spacing (mm), origin (mm, LPS)
            and direction of the series.
        series: the series it came from.
        slice_files: the source files in ascending position along the slice normal; one per
            volume slice unless ``resampled`` is True.
        resampled: True when missing or unevenly spaced slices were interpolated onto an even grid.
        tilt_corrected: True when gantry tilt was corrected.
    """

    image: sitk.Image
    series: SeriesInfo
    slice_files: tuple[Path, ...]
    resampled: bool
    tilt_corrected: bool


def _read_header(path: Path) -> Dataset | None:
    """The DICOM header of ``path`` (pixel data deferred, its length known), or None if not DICOM."""
    try:
        return pydicom.dcmread(path, defer_size=_DEFER_BYTES)
    except InvalidDicomError:
        return None
    except Exception as err:  # a damaged or foreign file in a series folder is skipped, whatever pydicom raises
        log.debug("%s: not read as DICOM (%s)", path, err)
        return None


def _is_image(ds: Dataset) -> bool:
    """True for datasets holding pixel data of an image series (not DICOMDIR, SR, ...)."""
    return "Rows" in ds and "Columns" in ds and "SeriesInstanceUID" in ds


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is a file holding a DICOM image (any extension, or none)."""
    path = Path(path)
    if not path.is_file():
        return False
    ds = _read_header(path)
    return ds is not None and _is_image(ds)


def is_dicom_series_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder directly holding at least one DICOM image file.

    Only the folder's own files are looked at (not sub-folders); it stops at the first image.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    return any(entry.is_file() and is_dicom_file(entry) for entry in sorted(path.iterdir()))


def _scan(folder: Path) -> dict[str, list[tuple[Path, Dataset]]]:
    """DICOM image files directly in ``folder`` grouped by SeriesInstanceUID, sorted by name."""
    if not folder.is_dir():
        raise InputError("not a folder", path=folder)
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_file():
            continue
        ds = _read_header(entry)
        if ds is None or not _is_image(ds):
            continue
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((entry, ds))
    return groups


def _series_info(uid: str, members: Sequence[tuple[Path, Dataset]]) -> SeriesInfo:
    first = members[0][1]
    number = first.get("SeriesNumber")
    image_type = first.get("ImageType") or ()
    if isinstance(image_type, str):
        image_type = (image_type,)
    return SeriesInfo(
        uid=uid,
        modality=str(first.get("Modality", "")),
        n_slices=len(members),
        description=str(first.get("SeriesDescription", "")),
        series_number=None if number in (None, "") else int(number),
        image_type=tuple(str(v).upper() for v in image_type),
        files=tuple(path for path, _ in members),
    )


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The image series directly in ``folder``, sorted by SeriesNumber then UID.

    Files that are not DICOM, and DICOM objects without pixel data (DICOMDIR, structured
    reports), are skipped. Returns an empty list for a folder without DICOM images.
    """
    groups = _scan(Path(folder))
    infos = [_series_info(uid, members) for uid, members in groups.items()]
    return sorted(infos, key=lambda s: (s.series_number is None, s.series_number or 0, s.uid))


def select_series(series: Sequence[SeriesInfo], folder: str | os.PathLike, series_uid: str | None = None) -> SeriesInfo:
    """Pick the series to read from those found in ``folder``.

    With ``series_uid`` that series is returned. Otherwise a folder holding one series gives
    that series, and a folder holding several gives the one CT series that is not a localizer.
    Anything else is ambiguous and raises :class:`InputError` listing the series (UID,
    modality, slice count, description) so the user can pass ``series_uid``.
    """
    listing = "; ".join(s.summary() for s in series)
    if not series:
        raise InputError("no DICOM images in this folder", path=folder)
    if series_uid is not None:
        for info in series:
            if info.uid == series_uid:
                return info
        raise InputError(f"no series with SeriesInstanceUID {series_uid}; the folder holds: {listing}", path=folder)
    if len(series) == 1:
        return series[0]
    ct = [s for s in series if s.modality == "CT" and not s.is_localizer]
    if len(ct) == 1:
        log.info("%s: reading CT series %s; ignoring %d other series", folder, ct[0].summary(), len(series) - 1)
        return ct[0]
    raise InputError(f"the folder holds {len(series)} DICOM series; choose one with --series-uid: {listing}", path=folder)


@dataclass(frozen=True)
class _SliceGeometry:
    """Geometry of a checked series: slices sorted along the normal, in patient LPS (mm)."""

    order: np.ndarray  # indices of the input slices in ascending position
    positions_mm: np.ndarray  # (N,) positions along the normal, ascending
    inplane_offsets_mm: np.ndarray  # (N, 2) offsets of each slice along (row dir, column dir)
    origin: np.ndarray  # (3,) ImagePositionPatient of the first slice
    direction: np.ndarray  # (3, 3) columns: row direction, column direction, normal
    pixel_spacing_mm: tuple[float, float]  # (along a row = between columns, between rows)


def _floats(ds: Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != count:
        raise InputError(f"slice lacks {keyword}; it cannot be placed in space", path=path)
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _header_int(ds: Dataset, keyword: str, default: int, path: Path) -> int:
    """An integer header value (``default`` when absent or empty); InputError when it is not a number."""
    value = ds.get(keyword)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"DICOM header {keyword} is {value!r}, not a whole number", path=path) from err


def _check_pixels(info: SeriesInfo, members: Sequence[tuple[Path, Dataset]]) -> None:
    """Refuse series that are not grayscale single-frame slices of one size."""
    for path, ds in members:
        samples = _header_int(ds, "SamplesPerPixel", 1, path)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        if samples != 1 or not photometric.startswith("MONOCHROME"):
            raise InputError(
                f"DICOM series {info.uid} is a colour image ({photometric}, {samples} samples per pixel); "
                "expected grayscale CT slices",
                path=path,
            )
        frames = _header_int(ds, "NumberOfFrames", 1, path)
        if frames > 1:
            raise InputError(
                f"multi-frame DICOM ({frames} frames) is not supported; export the series as single-frame slices",
                path=path,
            )
        _check_pixel_data_length(path, ds, frames)
    shapes = {(_header_int(ds, "Rows", 0, p), _header_int(ds, "Columns", 0, p)) for p, ds in members}
    if len(shapes) > 1:
        raise InputError(f"DICOM series {info.uid} mixes slice sizes {sorted(shapes)}", path=members[0][0].parent)


def _check_pixel_data_length(path: Path, ds: Dataset, frames: int) -> None:
    """Refuse a file whose native pixel data does not match the size its header declares.

    Expected bytes: Rows x Columns x frames x SamplesPerPixel x BitsAllocated / 8. Fewer bytes
    would make a decoder invent the missing pixels; twice as many or more means the declared
    size is wrong. A little more (trailing padding, as some writers add) is read as declared.
    Compressed (encapsulated) pixel data is checked after decoding.
    """
    element = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if element is None:
        raise InputError("DICOM image has no pixel data", path=path)
    length = element.length if isinstance(element, RawDataElement) else len(element.value or b"")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if length == _UNDEFINED_LENGTH or (syntax is not None and syntax.is_encapsulated):
        return
    rows, columns = _header_int(ds, "Rows", 0, path), _header_int(ds, "Columns", 0, path)
    bits, samples = _header_int(ds, "BitsAllocated", 16, path), _header_int(ds, "SamplesPerPixel", 1, path)
    expected = (rows * columns * frames * samples * bits + 7) // 8
    if length < expected or length >= 2 * max(expected, 1):
        raise InputError(
            f"pixel data holds {length} bytes but the header declares {rows} rows x {columns} columns x "
            f"{frames} frame(s) x {bits} bits = {expected} bytes",
            path=path,
        )


def _check_series_size(info: SeriesInfo, members: Sequence[tuple[Path, Dataset]], geometry: _SliceGeometry) -> None:
    """Voxel sizes in the sane range and the series' memory within the budget, before decoding."""
    first = members[0][1]
    folder = members[0][0].parent if len(members) > 1 else members[0][0]
    if len(members) > 1:
        slice_mm = float(np.median(np.diff(geometry.positions_mm)))
    else:
        slice_mm = _single_slice_spacing(first)
    check_spacing(folder, (*geometry.pixel_spacing_mm, slice_mm))
    rows, columns = int(first.Rows), int(first.Columns)
    voxels = rows * columns * len(members)
    check_fits_memory(
        folder, voxels * CASE_BYTES_PER_VOXEL, f"DICOM series {info.uid} ({columns}x{rows}x{len(members)} voxels)"
    )


def _slice_geometry(info: SeriesInfo, members: Sequence[tuple[Path, Dataset]]) -> _SliceGeometry:
    """Sort the slices along their normal and check they can form one volume."""
    folder = members[0][0].parent
    orientations = np.stack([_floats(ds, "ImageOrientationPatient", 6, p) for p, ds in members])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise InputError(
            f"DICOM series {info.uid} has slices with different orientations (a localizer or multi-plane "
            "series); it cannot be read as one volume",
            path=folder,
        )
    row_dir, col_dir = orientations[0, :3], orientations[0, 3:]
    row_dir, col_dir = row_dir / np.linalg.norm(row_dir), col_dir / np.linalg.norm(col_dir)
    if abs(row_dir @ col_dir) > 1e-3:
        raise InputError(f"DICOM series {info.uid}: ImageOrientationPatient axes are not orthogonal", path=folder)
    normal = np.cross(row_dir, col_dir)
    spacings = {tuple(_floats(ds, "PixelSpacing", 2, p)) for p, ds in members}
    if len(spacings) > 1:
        raise InputError(f"DICOM series {info.uid} mixes pixel spacings {sorted(spacings)}", path=folder)
    between_rows, between_columns = spacings.pop()

    positions = np.stack([_floats(ds, "ImagePositionPatient", 3, p) for p, ds in members])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    if len(members) > 1 and np.diff(along).min() < 1e-3:
        n_dup = int((np.diff(along) < 1e-3).sum())
        raise InputError(
            f"DICOM series {info.uid} has {n_dup} slices at an already occupied position (several phases, "
            "echoes or time points in one series); it cannot be read as one 3-D volume",
            path=folder,
        )
    offsets = positions - positions[0]
    inplane = np.stack([offsets @ row_dir, offsets @ col_dir], axis=1)
    return _SliceGeometry(
        order=order,
        positions_mm=along,
        inplane_offsets_mm=inplane,
        origin=positions[0],
        direction=np.stack([row_dir, col_dir, normal], axis=1),
        pixel_spacing_mm=(between_columns, between_rows),
    )


def _read_pixels(paths: Sequence[Path], shape: tuple[int, int]) -> np.ndarray:
    """Decode slices with SimpleITK/GDCM (rescale slope/intercept applied) into (N, rows, cols) float32."""
    volume = np.empty((len(paths), *shape), dtype=np.float32)
    for k, path in enumerate(paths):
        try:
            with native_stderr_captured() as decoder_lines:  # GDCM/OpenJPEG print on corrupt data
                pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        except RuntimeError as err:
            said = f"; the decoder said: {decoder_lines[0][:120]}" if decoder_lines else ""
            raise InputError(f"cannot decode DICOM pixel data ({brief_reason(err)}){said}", path=path) from err
        if pixels.shape[-2:] != shape or pixels.size != shape[0] * shape[1]:
            raise InputError(f"pixel data has shape {pixels.shape}; expected one {shape} slice", path=path)
        volume[k] = pixels.reshape(shape)
    return volume


def _correct_tilt(volume: np.ndarray, geometry: _SliceGeometry, uid: str) -> bool:
    """Shift tilted slices in-plane onto the first slice's grid; True if the series was tilted.

    With gantry tilt each slice's origin moves in-plane as the table advances, so the slices
    do not stack on a rectilinear grid. Slice k is resampled (linear) at the in-plane position
    of the first slice; voxels with no data take the volume's minimum (air).
    """
    col_mm, row_mm = geometry.pixel_spacing_mm
    shift_px = geometry.inplane_offsets_mm / np.array([col_mm, row_mm])
    if np.abs(shift_px).max() <= TILT_TOLERANCE_PX:
        return False
    extent = geometry.positions_mm[-1] - geometry.positions_mm[0]
    tilt_deg = np.degrees(np.arctan2(np.linalg.norm(geometry.inplane_offsets_mm[-1]), extent))
    fill = float(volume.min())
    for k in range(1, volume.shape[0]):
        # array axes are (row, column): a slice offset of +d along the row direction moves content by +d/col_mm
        volume[k] = ndimage.shift(volume[k], (shift_px[k, 1], shift_px[k, 0]), order=1, mode="constant", cval=fill)
    log.warning(
        "DICOM series %s: gantry tilt of %.1f degrees; slices shifted in-plane by up to %.1f mm onto a rectilinear grid",
        uid,
        tilt_deg,
        float(np.abs(geometry.inplane_offsets_mm).max()),
    )
    return True


def _even_slices(
    volume: np.ndarray, positions_mm: np.ndarray, uid: str, folder: Path
) -> tuple[np.ndarray, float, bool]:
    """Return (volume, slice spacing in mm, resampled) with slices evenly spaced along the normal.

    Evenly spaced series (gaps within tolerance) keep their slices; the spacing is
    (last - first) / (N - 1), as ITK computes it. A few missing or unevenly spaced slices are
    filled by linear interpolation onto the median gap; gaps above MAX_INTERPOLATED_GAP times
    the median gap raise InputError.
    """
    gaps = np.diff(positions_mm)
    nominal = float(np.median(gaps))
    if gaps.max() - gaps.min() <= SPACING_TOLERANCE * nominal + 0.01:
        return volume, float((positions_mm[-1] - positions_mm[0]) / (len(positions_mm) - 1)), False
    worst = int(np.argmax(gaps))
    if gaps[worst] > MAX_INTERPOLATED_GAP * nominal:
        missing = int(round(gaps[worst] / nominal)) - 1
        raise InputError(
            f"DICOM series {uid} has a gap of {gaps[worst]:.2f} mm between slices {worst + 1} and {worst + 2} "
            f"(usual spacing {nominal:.2f} mm: about {missing} slices missing); it cannot be read as one volume",
            path=folder,
        )
    extent = positions_mm[-1] - positions_mm[0]
    n_out = int(round(extent / nominal)) + 1
    targets = positions_mm[0] + np.arange(n_out) * (extent / (n_out - 1))
    upper = np.clip(np.searchsorted(positions_mm, targets, side="right"), 1, len(positions_mm) - 1)
    lower = upper - 1
    weight = ((targets - positions_mm[lower]) / (positions_mm[upper] - positions_mm[lower])).astype(np.float32)
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]
    resampled = (1.0 - weight) * volume[lower] + weight * volume[upper]
    log.warning(
        "DICOM series %s: missing or unevenly spaced slices (gaps %.2f to %.2f mm); %d slices resampled to %d "
        "evenly spaced slices (%.3f mm) by linear interpolation along the slice axis",
        uid,
        gaps.min(),
        gaps.max(),
        len(positions_mm),
        n_out,
        extent / (n_out - 1),
    )
    return resampled.astype(np.float32), float(extent / (n_out - 1)), True


def _single_slice_spacing(ds: Dataset) -> float:
    """Slice spacing (mm) of a one-slice series: SpacingBetweenSlices, else SliceThickness, else 1."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(keyword)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return 1.0


def read_dicom_series(path: str | os.PathLike, series_uid: str | None = None) -> DicomVolume:
    """Read a DICOM series folder (or one DICOM file) as a 3-D volume.

    Args:
        path: a folder holding the series' files (non-recursive), or a single DICOM file.
        series_uid: SeriesInstanceUID to read when the folder holds several series.

    Returns:
        A :class:`DicomVolume` whose ``image`` has size (columns, rows, slices), float32 pixel
        values after RescaleSlope/Intercept (HU for CT), spacing (mm), origin and direction
        (patient LPS) of the series.

    Raises:
        InputError: no images, ambiguous series, colour or multi-frame images, slices that do
            not form one volume (mixed orientations, duplicated positions, large gaps).
    """
    path = Path(path)
    if path.is_dir():
        groups = _scan(path)
        info = select_series([_series_info(uid, m) for uid, m in groups.items()], path, series_uid)
        members = groups[info.uid]
    else:
        ds = _read_header(path)
        if ds is None or not _is_image(ds):
            raise InputError("not a DICOM image", path=path)
        members = [(path, ds)]
        info = _series_info(str(ds.SeriesInstanceUID), members)
    _check_pixels(info, members)
    geometry = _slice_geometry(info, members)
    _check_series_size(info, members, geometry)
    files = tuple(members[i][0] for i in geometry.order)
    first = members[0][1]
    volume = _read_pixels(files, (int(first.Rows), int(first.Columns)))
    tilted = _correct_tilt(volume, geometry, info.uid) if len(files) > 1 else False
    if len(files) > 1:
        volume, slice_mm, resampled = _even_slices(volume, geometry.positions_mm, info.uid, files[0].parent)
    else:
        slice_mm, resampled = _single_slice_spacing(first), False

    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((*geometry.pixel_spacing_mm, slice_mm))
    image.SetOrigin(tuple(float(v) for v in geometry.origin))
    image.SetDirection(tuple(float(v) for v in geometry.direction.ravel()))
    return DicomVolume(image=image, series=info, slice_files=files, resampled=resampled, tilt_corrected=tilted)
