"""Offline phantoms for demonstrating, training and testing without downloaded data.

* :mod:`~monai_attn.synthetic.abdomen_ct`: abdominal CT (HU) with spleen, kidney and pancreas
  labels, written as NIfTI (and optionally DICOM series) in the MSD layout.
* :mod:`~monai_attn.synthetic.retina`: RGB fundus photographs with optic disc / cup labels and
  vessel masks.
* :mod:`~monai_attn.synthetic.cells`: electron-microscopy-like cell images with membrane labels.

Every case is a pure function of ``(seed, index)``.
"""

from monai_attn.synthetic.abdomen_ct import (
    Acquisition,
    SpacingRange,
    case_acquisition,
    generate_abdomen_ct_case,
    write_abdomen_ct_dataset,
)
from monai_attn.synthetic.cells import generate_cells_case, write_cells_dataset
from monai_attn.synthetic.dicom_series import write_ct_series
from monai_attn.synthetic.retina import generate_retina_case, write_retina_dataset

__all__ = [
    "Acquisition",
    "SpacingRange",
    "case_acquisition",
    "generate_abdomen_ct_case",
    "generate_cells_case",
    "generate_retina_case",
    "write_abdomen_ct_dataset",
    "write_cells_dataset",
    "write_ct_series",
    "write_retina_dataset",
]
