"""Offline phantoms for demonstrating, training and testing without downloaded data.

* :mod:`~monai_attn.synthetic.abdomen_ct`: abdominal CT (HU) with spleen, kidney and pancreas
  labels, written as NIfTI (and optionally DICOM series) in the MSD layout.
* :mod:`~monai_attn.synthetic.retina`: RGB fundus photographs with optic disc / cup labels and
  vessel masks.
* :mod:`~monai_attn.synthetic.cells`: electron-microscopy-like cell images with membrane labels.

Every case is a pure function of ``(seed, index)``.

Names are imported on first use (PEP 562), so the light modules (:mod:`~monai_attn.synthetic.rng`)
load without torch or MONAI.
"""

from monai_attn.lazy_exports import lazy_exports

#: Public name -> the module defining it.
_EXPORTS = {
    "Acquisition": "monai_attn.synthetic.abdomen_ct",
    "SpacingRange": "monai_attn.synthetic.abdomen_ct",
    "case_acquisition": "monai_attn.synthetic.abdomen_ct",
    "generate_abdomen_ct_case": "monai_attn.synthetic.abdomen_ct",
    "generate_cells_case": "monai_attn.synthetic.cells",
    "generate_retina_case": "monai_attn.synthetic.retina",
    "write_abdomen_ct_dataset": "monai_attn.synthetic.abdomen_ct",
    "write_cells_dataset": "monai_attn.synthetic.cells",
    "write_ct_series": "monai_attn.synthetic.dicom_series",
    "write_retina_dataset": "monai_attn.synthetic.retina",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
