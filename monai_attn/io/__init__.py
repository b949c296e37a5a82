"""Reading and writing images with their geometry.

- :func:`load_image`: any supported image (NIfTI, NRRD, MetaImage, DICOM series, PNG/JPEG/TIFF)
  as a channel-first MONAI ``MetaTensor`` with its RAS affine.
- :class:`MedicalImageReader`, :class:`SimpleITKReader`: the same reading as MONAI
  ``ImageReader`` classes, for ``LoadImaged`` in pipelines and bundle configs.
- :func:`list_dicom_series`, :func:`is_dicom_series_dir`, :class:`SeriesInfo`: DICOM folders.
- :func:`save_like`: write a NIfTI on the grid of the image a result came from.
"""

from monai_attn.io.dicom import SeriesInfo, is_dicom_series_dir, list_dicom_series, read_dicom_series
from monai_attn.io.readers import MedicalImageReader, SimpleITKReader, load_image
from monai_attn.io.writers import save_like

__all__ = [
    "MedicalImageReader",
    "SeriesInfo",
    "SimpleITKReader",
    "is_dicom_series_dir",
    "list_dicom_series",
    "load_image",
    "read_dicom_series",
    "save_like",
]
