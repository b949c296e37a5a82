"""Image readers that keep geometry: NIfTI, NRRD/MetaImage, DICOM series, 2-D PNG/JPEG/TIFF.

Two MONAI :class:`~monai.data.ImageReader` subclasses and one function:

- :class:`SimpleITKReader` reads NRRD (.nrrd/.nhdr), MetaImage (.mha/.mhd) and DICOM
  (a series folder or a single file) with SimpleITK; MONAI's own ``ITKReader`` needs the
  ``itk`` package, which this project does not use.
- :class:`MedicalImageReader` is the reader for pipelines: it picks the backend from the path
  (NIfTI: MONAI ``NibabelReader``; 2-D images: MONAI ``PILReader``; the rest:
  :class:`SimpleITKReader`) and turns bad input (empty or truncated files, files that are
  not images, 4-D images, NaNs) into one-line :class:`~monai_attn.errors.InputError` messages.
  Use it as ``LoadImaged(keys, reader=MedicalImageReader(expect="ct"))`` or, in a bundle
  config, ``"reader": "monai_attn.io.readers.MedicalImageReader"``. Gzip NIfTI is decompressed
  by python-isal (Intel ISA-L) where it is installed: a 512x512x200 int16 CT reads in 0.46 s
  instead of 0.71 s, identical voxels (``benchmarks/nifti_io.py``).
- :func:`load_image` reads one image as a channel-first ``MetaTensor``.

Conventions are MONAI's (as ``NibabelReader``/``ITKReader``): the array keeps the file's voxel
order, index ``(i, j, k)``, as float32 (``LoadImage``'s default; label maps keep the file's
dtype, and so do integer images read with ``keep_integers``: an int16 CT in half the memory,
converted to float32 later, only where and when a step computes with it);
``meta["affine"]`` and ``meta["original_affine"]`` map voxel indices to RAS world coordinates
in mm; ``meta["spatial_shape"]`` is the file's grid;
``meta["spacing"]`` the voxel size in mm at read time (``MetaTensor.pixdim`` follows later
resampling); ``meta["filename_or_obj"]`` the path. DICOM series add ``dicom_series_uid``,
``dicom_modality``, ``dicom_series_description`` and ``dicom_files`` (source files in volume
slice order).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import SimpleITK as sitk
from monai.data import ImageReader, MetaTensor, NibabelReader, PILReader
from monai.data.utils import affine_to_spacing, correct_nifti_header_if_necessary, orientation_ras_lps
from monai.transforms import LoadImage
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from nibabel.fileholders import FileHolder
from numpy.typing import DTypeLike
from PIL import Image, ImageOps

from monai_attn.errors import InputError, brief_reason
from monai_attn.io.dicom import DicomVolume, is_dicom_file, read_dicom_series
from monai_attn.io.names import NIFTI_SUFFIXES, PLANAR_SUFFIXES, SITK_SUFFIXES
from monai_attn.io.limits import CASE_BYTES_PER_VOXEL, check_fits_memory, check_spacing

log = logging.getLogger(__name__)

SUPPORTED = "NIfTI, NRRD, MetaImage, DICOM, PNG, JPEG, TIFF, BMP or GIF"

Expect = Literal["ct", "2d"] | None


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


#: Smallest |determinant| of a voxel-to-world matrix (mm^3) taken as a real volume.
_MIN_VOXEL_VOLUME_MM3 = 1e-9


def _check_direction(path: Path, matrix: np.ndarray) -> None:
    """Refuse a singular voxel-to-world matrix (axes that coincide or vanish): no volume can be placed."""
    if matrix.size and abs(float(np.linalg.det(matrix))) < _MIN_VOXEL_VOLUME_MM3:
        columns = "; ".join(" ".join(f"{v:g}" for v in col) for col in matrix.T)
        raise InputError(
            f"degenerate affine: its voxel axes ({columns}) span no volume (determinant 0)", path=path
        )


def _check_nifti_header(path: Path, image: Any) -> None:
    """Before any voxel is read: memory within budget, a real affine, and as many bytes as declared."""
    header = image.header
    shape = tuple(int(s) for s in image.shape)
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf":  # complex, RGB records, ...
        raise InputError(f"voxel type {dtype} is not a number per voxel (complex or colour data)", path=path)
    voxels = math.prod(shape)
    check_fits_memory(path, voxels * CASE_BYTES_PER_VOXEL, f"a {'x'.join(map(str, shape))} image")
    spatial = min(len(shape), 3)
    coded = [m for m, code in (header.get_sform(coded=True), header.get_qform(coded=True)) if code and m is not None]
    for matrix in coded:
        _check_direction(path, np.asarray(matrix)[:spatial, :spatial])
    if not coded:
        log.warning(
            "%s: the header sets no orientation (qform and sform codes 0); the volume is placed by its voxel sizes "
            "(%s mm), centred on the origin, with a guessed orientation: check it",
            path,
            " x ".join(f"{z:g}" for z in header.get_zooms()[:spatial]),
        )
    _check_direction(path, np.asarray(image.affine)[:spatial, :spatial])
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))  # where reading starts
    declared = voxels * dtype.itemsize
    held = _nifti_payload_bytes(path, offset + declared) - offset
    if held < declared:
        raise InputError(
            f"file is truncated: the header declares {'x'.join(map(str, shape))} {dtype.name} voxels = "
            f"{declared} bytes, "
            f"the file holds {max(held, 0)} bytes of voxel data",
            path=path,
        )


def _nifti_payload_bytes(path: Path, expected_total: int) -> int:
    """Bytes of a NIfTI file after decompression (header included).

    Plain files: the file size. Gzip files: the size in the gzip trailer when it matches
    ``expected_total`` (modulo 2**32, as stored); otherwise the stream is decompressed and
    counted up to where it ends or breaks (a truncated file).
    """
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    with open(path, "rb") as raw:
        raw.seek(-4, os.SEEK_END)
        if int.from_bytes(raw.read(4), "little") == expected_total % 2**32:
            return expected_total
    total, member = 0, zlib.decompressobj(wbits=31)
    with open(path, "rb") as raw:
        while data := raw.read(1 << 20):
            while data:
                try:  # bounded output per call: a small gzip can expand a thousandfold
                    total += len(member.decompress(data, 1 << 24))
                except zlib.error:  # damaged stream: count what decoded
                    return total
                if member.eof:  # next member of a multi-member file, if any
                    data, member = member.unused_data, zlib.decompressobj(wbits=31)
                else:
                    data = member.unconsumed_tail
    return total


def _sitk_array_and_meta(image: sitk.Image) -> tuple[np.ndarray, dict]:
    """Array in ITK index order (i, j, k[, channel]) and MONAI meta with the RAS affine."""
    ndim = image.GetDimension()
    array = sitk.GetArrayFromImage(image)  # numpy order (k, j, i[, channel])
    channels = image.GetNumberOfComponentsPerPixel()
    axes = list(range(ndim))[::-1] + ([ndim] if channels > 1 else [])
    array = np.ascontiguousarray(np.transpose(array, axes))
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] = np.asarray(image.GetDirection(), dtype=np.float64).reshape(ndim, ndim) @ np.diag(spacing)
    affine[:ndim, -1] = image.GetOrigin()
    affine = orientation_ras_lps(affine)
    meta = {
        MetaKeys.AFFINE: affine,
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(image.GetSize()),
        MetaKeys.SPACE: SpaceKeys.RAS,
        MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if channels == 1 else -1,
        "spacing": spacing,
    }
    return array, meta


class SimpleITKReader(ImageReader):
    """Read NRRD, MetaImage and DICOM (series folder or single file) with SimpleITK.

    DICOM goes through :func:`monai_attn.io.dicom.read_dicom_series` (series selection, slice
    ordering by position, HU rescale, gap and tilt checks). Arrays come back in ITK index
    order (i, j, k), channel last for vector images, with a RAS affine, as MONAI's
    ``ITKReader`` does.

    Args:
        series_uid: SeriesInstanceUID to read from folders holding several series.

    Example::

        LoadImaged("image", reader=SimpleITKReader())({"image": "ct.nrrd"})
    """

    def __init__(self, series_uid: str | None = None) -> None:
        super().__init__()
        self.series_uid = series_uid

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """True for NRRD/MetaImage/.dcm files, DICOM files without extension and folders."""
        return all(
            Path(f).is_dir() or _suffix(Path(f)) in SITK_SUFFIXES or is_dicom_file(f) for f in ensure_tuple(filename)
        )

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> sitk.Image | DicomVolume:
        """Read one path: a DICOM folder or file gives a :class:`DicomVolume`, others a SimpleITK image."""
        paths = ensure_tuple(data)
        if len(paths) != 1:
            raise InputError(f"SimpleITKReader reads one image at a time; got {len(paths)} paths")
        path = Path(paths[0])
        if path.is_dir() or _suffix(path) == ".dcm" or is_dicom_file(path):
            return read_dicom_series(path, series_uid=self.series_uid)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()  # the header only: size, type and geometry
        except RuntimeError as err:
            raise InputError(f"not a readable image ({brief_reason(err)})", path=path) from err
        size = tuple(int(s) for s in reader.GetSize())
        voxels = math.prod(size) * reader.GetNumberOfComponents()
        check_fits_memory(path, voxels * CASE_BYTES_PER_VOXEL, f"a {'x'.join(map(str, size))} image")
        _check_direction(path, np.asarray(reader.GetDirection(), dtype=np.float64).reshape(len(size), len(size)))
        try:
            return reader.Execute()
        except RuntimeError as err:
            raise InputError(f"file is truncated or corrupt ({brief_reason(err)})", path=path) from err

    def get_data(self, img: sitk.Image | DicomVolume) -> tuple[np.ndarray, dict]:
        """Array (i, j, k[, channel]) and MONAI meta (RAS affine, spatial_shape, spacing, DICOM fields)."""
        if not isinstance(img, DicomVolume):
            return _sitk_array_and_meta(img)
        array, meta = _sitk_array_and_meta(img.image)
        meta.update(
            dicom_series_uid=img.series.uid,
            dicom_modality=img.series.modality,
            dicom_series_description=img.series.description,
            dicom_files=[str(f) for f in img.slice_files],
            dicom_resampled=img.resampled,
            dicom_tilt_corrected=img.tilt_corrected,
        )
        return array, meta


#: EXIF Orientation tag.
EXIF_ORIENTATION = 0x0112


def _planar_converter(image: Image.Image) -> Image.Image:
    """Bring PIL modes to gray ("L", "I;16", "I", "F") or "RGB" (palette, binary, alpha, CMYK),
    turned upright by its EXIF orientation (as photographs are shown)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("L", "RGB", "I", "I;16", "F"):
        return image
    if image.mode in ("1", "P", "LA"):
        return image.convert("L")
    return image.convert("RGB")


def _bits_per_sample(image: Image.Image, array: np.ndarray) -> int:
    """Bits per sample a picture was stored with (8, 16 or 32; 0 for floating point): 16-bit
    PNG and TIFF open as ``I;16*``; ``I`` (32-bit integer) counts as 16-bit when it fits."""
    if image.mode.startswith("I;16"):
        return 16
    if image.mode == "I":
        return 16 if array.size == 0 or (array.min() >= 0 and array.max() <= 65535) else 32
    if image.mode == "F":
        return 0
    return 8


def _planar_label_converter(image: Image.Image) -> Image.Image:
    """Label pictures keep their values: a palette PNG gives its indices (the labels ``segment``
    writes), a binary one 0/1; other modes as :func:`_planar_converter`."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        return Image.fromarray(np.asarray(image))
    if image.mode == "1":
        return Image.fromarray(np.asarray(image, dtype=np.uint8))
    return _planar_converter(image)


@dataclass
class _Source:
    """One path read by a backend, before its pixel data is fetched (``exif_orientation``: the
    EXIF tag of a picture, 1 when upright or absent; ``stream``: an open file the pixel data
    will be read from, closed once it is)."""

    path: Path
    backend: ImageReader
    obj: Any
    exif_orientation: int = 1
    stream: IO[bytes] | None = None


class MedicalImageReader(ImageReader):
    """The project's reader: any supported format, with geometry, and clear errors.

    Picks the backend from the path: NIfTI (.nii, .nii.gz) with MONAI ``NibabelReader``;
    PNG/JPEG/TIFF/BMP/GIF with MONAI ``PILReader`` (palette, binary and alpha images become
    gray or RGB); NRRD, MetaImage, DICOM folders and DICOM files with :class:`SimpleITKReader`.
    Several paths are stacked as channels (same grid required), like MONAI readers.

    Args:
        expect: what the image must be. ``"ct"``: a 3-D single-channel volume; ``"2d"``: a 2-D
            image (gray or RGB); ``None``: a 2-D image or a 3-D volume.
        series_uid: SeriesInstanceUID to read from DICOM folders holding several series.
        label_map: the files are label maps: palette pictures give their indices and binary
            pictures 0/1, instead of the gray levels of their colours.

    Raises (from ``read``/``get_data``) :class:`InputError` naming the file for: a missing or
    empty file, a file that is not an image, a truncated or corrupt file, an image of the wrong
    dimensionality (``image is 4-D (512, 512, 90, 2); expected a 3-D CT volume``), NaN or
    infinite voxels, and the DICOM problems listed in :mod:`monai_attn.io.dicom`.

    Example::

        LoadImaged(("image", "label"), reader=MedicalImageReader(expect="ct"), ensure_channel_first=True)
    """

    def __init__(self, expect: Expect = None, series_uid: str | None = None, label_map: bool = False,
                 keep_integers: bool = False) -> None:
        super().__init__()
        if expect not in ("ct", "2d", None):
            raise ValueError(f"expect must be 'ct', '2d' or None, got {expect!r}")
        self.expect = expect
        self.series_uid = series_uid
        self.label_map = bool(label_map)
        self.keep_integers = bool(keep_integers)

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """True when every path is a supported file type, a DICOM file or a folder."""
        return all(
            Path(f).is_dir() or _suffix(Path(f)) in NIFTI_SUFFIXES + SITK_SUFFIXES + PLANAR_SUFFIXES or is_dicom_file(f)
            for f in ensure_tuple(filename)
        )

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> list[_Source]:
        """Open each path, check it is an image of the expected kind; pixel data is fetched in ``get_data``."""
        return [self._open(Path(p)) for p in ensure_tuple(data)]

    def _open(self, path: Path) -> _Source:
        if path.is_symlink() and not path.exists():
            raise InputError("symbolic link leads nowhere (broken, or a loop)", path=path)
        if not path.exists():
            raise InputError("no such file or folder", path=path)
        if path.is_file() and path.stat().st_size == 0:
            raise InputError("file is empty (0 bytes)", path=path)
        suffix = _suffix(path)
        orientation = 1  # EXIF, pictures only
        stream = None
        if suffix in NIFTI_SUFFIXES:
            backend: ImageReader = NibabelReader(squeeze_non_spatial_dims=True)
            try:
                obj = backend.read(path)
            except Exception as err:  # nibabel raises many types for non-NIfTI content
                raise InputError(f"not a readable NIfTI image ({brief_reason(err)})", path=path) from err
            shape = tuple(int(s) for s in obj.shape)
            while len(shape) > 3 and shape[-1] == 1:
                shape = shape[:-1]
            self._check_dims(path, shape, 1)
            _check_nifti_header(path, obj)
            if self.expect == "ct":
                check_spacing(path, np.linalg.norm(np.asarray(obj.affine)[:3, :3], axis=0))
            if path.name.lower().endswith(".gz") and (stream := _isal_stream(path)) is not None:
                holder = FileHolder(filename=str(path), fileobj=stream)  # the same image, its voxels through isal
                try:
                    obj = correct_nifti_header_if_necessary(type(obj).from_file_map({"header": holder, "image": holder}))
                except Exception as err:  # as nib.load above
                    stream.close()
                    raise InputError(f"not a readable NIfTI image ({brief_reason(err)})", path=path) from err
        elif suffix in PLANAR_SUFFIXES:
            backend = PILReader(converter=_planar_label_converter if self.label_map else _planar_converter)
            try:
                with Image.open(path) as probe:
                    pages = getattr(probe, "n_frames", 1)
                    orientation = int(probe.getexif().get(EXIF_ORIENTATION, 1))
                obj = backend.read(path)
            except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError...
                raise InputError(f"not a readable image ({brief_reason(err)})", path=path) from err
            if pages > 1:
                raise InputError(f"multi-page image ({pages} pages); expected one 2-D image per file", path=path)
            self._check_dims(path, (obj.width, obj.height), len(obj.getbands()))
        elif path.is_dir() or suffix in SITK_SUFFIXES or is_dicom_file(path):
            backend = SimpleITKReader(series_uid=self.series_uid)
            obj = backend.read(path)
            image = obj.image if isinstance(obj, DicomVolume) else obj
            self._check_dims(path, image.GetSize(), image.GetNumberOfComponentsPerPixel())
            if self.expect == "ct":
                check_spacing(path, image.GetSpacing())
        else:
            raise InputError(
                f"not an image: unsupported file type '{suffix or path.name}' (expected {SUPPORTED})", path=path
            )
        return _Source(path=path, backend=backend, obj=obj, exif_orientation=orientation, stream=stream)

    def _check_dims(self, path: Path, shape: Sequence[int], channels: int) -> None:
        """Raise InputError unless the grid (and channel count) is what ``expect`` asks for."""
        shape = tuple(int(s) for s in shape)
        ndim = len(shape)
        if not all(s > 0 for s in shape):
            raise InputError(f"image has an empty axis: shape {shape}", path=path)
        if self.expect == "ct":
            if ndim != 3:
                raise InputError(f"image is {ndim}-D {shape}; expected a 3-D CT volume", path=path)
            if channels != 1:
                raise InputError(
                    f"image has {channels} values per voxel; expected a single-channel CT volume", path=path
                )
        elif self.expect == "2d":
            if ndim != 2:
                raise InputError(f"image is {ndim}-D {shape}; expected a 2-D image", path=path)
        elif ndim not in (2, 3):
            raise InputError(f"image is {ndim}-D {shape}; expected a 2-D image or a 3-D volume", path=path)

    def get_data(self, img: list[_Source]) -> tuple[np.ndarray, dict]:
        """Fetch pixel data; returns (array, meta) as MONAI readers do (channels stacked first if several)."""
        arrays, metas = [], []
        for source in img:
            try:
                array, meta = source.backend.get_data(source.obj)
            except InputError:
                raise
            except Exception as err:  # truncated gzip (EOFError), zlib.error, short reads (ValueError/OSError)
                raise InputError(f"file is truncated or corrupt ({brief_reason(err)})", path=source.path) from err
            finally:
                if source.stream is not None:
                    source.stream.close()
            array = np.asarray(array)
            floating = np.issubdtype(array.dtype, np.floating)
            keep = self.label_map or (self.keep_integers and array.dtype.kind in "iu")
            array = c_order(array, None if keep else np.float32)
            if floating:
                bad = int(array.size - np.count_nonzero(np.isfinite(array)))
                if bad:
                    raise InputError(f"image contains {bad} NaN or infinite voxels", path=source.path)
            if MetaKeys.ORIGINAL_AFFINE not in meta:  # 2-D pictures: pixel grid, 1 unit per pixel
                meta[MetaKeys.ORIGINAL_AFFINE] = np.eye(4)
                meta[MetaKeys.AFFINE] = np.eye(4)
                meta[MetaKeys.SPACE] = SpaceKeys.RAS
            meta["spacing"] = affine_to_spacing(meta[MetaKeys.ORIGINAL_AFFINE], r=len(meta[MetaKeys.SPATIAL_SHAPE]))
            if isinstance(source.obj, Image.Image):
                meta["bits_per_sample"] = _bits_per_sample(source.obj, array)
                meta["exif_orientation"] = source.exif_orientation  # turned upright on reading; outputs turn back
            arrays.append(array)
            metas.append(meta)
        if len(arrays) == 1:
            return arrays[0], metas[0]
        return self._stack(img, arrays, metas)

    @staticmethod
    def _stack(sources: list[_Source], arrays: list[np.ndarray], metas: list[dict]) -> tuple[np.ndarray, dict]:
        """Stack several single- or multi-channel images of one grid into (C, *spatial)."""
        first = metas[0]
        channel_first = []
        for source, array, meta in zip(sources, arrays, metas):
            if tuple(meta[MetaKeys.SPATIAL_SHAPE]) != tuple(first[MetaKeys.SPATIAL_SHAPE]) or (
                MetaKeys.AFFINE in first and not np.allclose(meta[MetaKeys.AFFINE], first[MetaKeys.AFFINE], atol=1e-4)
            ):
                raise InputError(f"channel is not on the grid of {sources[0].path.name}", path=source.path)
            channel_dim = meta[MetaKeys.ORIGINAL_CHANNEL_DIM]
            channel_first.append(array[None] if np.isnan(channel_dim) else np.moveaxis(array, int(channel_dim), 0))
        meta = dict(first)
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return np.concatenate(channel_first, axis=0), meta


def c_order(array: np.ndarray, dtype: DTypeLike = None, slab: int = 16) -> np.ndarray:
    """``array`` in C order as ``dtype`` (its own when None), in one pass (no copy when it already is).

    NIfTI stores x fastest (Fortran order); MONAI makes every array C-contiguous float32, one
    strided pass that took 1.2 s of a 512x512x200 scan's 1.7 s read. Copying ``slab`` slices of
    the last axis at a time keeps the reads and writes in cache, and converting in the same copy
    spares a second pass and an intermediate array (0.16-0.19 s and 200 MB for that int16 scan,
    against 0.14-0.50 s and 300 MB for reordering, then converting).
    """
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    if array.ndim < 3 or not array.flags.f_contiguous or array.flags.c_contiguous:
        return np.ascontiguousarray(array, dtype=dtype)
    ordered = np.empty(array.shape, dtype=dtype)
    for start in range(0, array.shape[-1], slab):
        ordered[..., start:start + slab] = array[..., start:start + slab]
    return ordered


def _isal_stream(path: Path) -> IO[bytes] | None:
    """``path`` opened for reading through python-isal's gzip, or None where it is not installed."""
    try:
        from isal import igzip
    except ImportError:
        return None
    return igzip.open(path, "rb")


def load_image(path: str | os.PathLike, series_uid: str | None = None, expect: Expect = None,
               keep_integers: bool = False) -> MetaTensor:
    """Read one image as a channel-first ``MetaTensor`` (C, *spatial), float32, with its geometry.

    Equivalent to ``LoadImage(image_only=True, ensure_channel_first=True)`` with
    :class:`MedicalImageReader`, but errors arrive as :class:`InputError` rather than MONAI's
    generic ``RuntimeError``.

    Args:
        path: NIfTI, NRRD, MetaImage, DICOM series folder or file, or a 2-D PNG/JPEG/TIFF.
        series_uid: SeriesInstanceUID when a DICOM folder holds several series.
        expect: ``"ct"`` (3-D, one channel), ``"2d"`` or None (2-D or 3-D), see :class:`MedicalImageReader`.
        keep_integers: integer voxels (int16 HU) keep their dtype instead of becoming float32.

    Returns:
        MetaTensor: a CT volume gives shape (1, i, j, k) in the file's voxel order, values in HU;
        ``.affine``/``meta["original_affine"]`` are RAS voxel-to-world matrices (mm).

    Example::

        ct = load_image("case_001.nii.gz", expect="ct")
        ct.shape, ct.pixdim  # (1, 512, 512, 90), tensor([0.78, 0.78, 2.5])
    """
    reader = MedicalImageReader(expect=expect, series_uid=series_uid, keep_integers=keep_integers)
    return _loader(keep_integers)(path, reader=reader)


@cache
def _loader(keep_dtype: bool = False) -> LoadImage:
    """A shared MONAI loader (float32, or the reader's dtype); the reader is passed per call, so
    its registered readers are unused."""
    return LoadImage(image_only=True, ensure_channel_first=True, dtype=None if keep_dtype else np.float32)
