"""Reading and writing images with their geometry.

- :func:`load_image`: any supported image (NIfTI, NRRD, MetaImage, DICOM series, PNG/JPEG/TIFF)
  as a channel-first MONAI ``MetaTensor`` with its RAS affine.
- :class:`MedicalImageReader`, :class:`SimpleITKReader`: the same reading as MONAI
  ``ImageReader`` classes, for ``LoadImaged`` in pipelines and bundle configs.
- :func:`list_dicom_series`, :func:`is_dicom_series_dir`, :class:`SeriesInfo`: DICOM folders.
- :func:`save_like`: write a NIfTI on the grid of the image a result came from.

Names are imported on first use (PEP 562), so the light modules of this package
(:mod:`~monai_attn.io.atomic`, :mod:`~monai_attn.io.names`) load without SimpleITK, MONAI or torch.
"""

from monai_attn.lazy_exports import lazy_exports

#: Public name -> the module defining it.
_EXPORTS = {
    "MedicalImageReader": "monai_attn.io.readers",
    "SeriesInfo": "monai_attn.io.dicom",
    "SimpleITKReader": "monai_attn.io.readers",
    "is_dicom_series_dir": "monai_attn.io.dicom",
    "list_dicom_series": "monai_attn.io.dicom",
    "load_image": "monai_attn.io.readers",
    "read_dicom_series": "monai_attn.io.dicom",
    "save_like": "monai_attn.io.writers",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
