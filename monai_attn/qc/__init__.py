"""Quality control: input checks before inference, per-organ checks and uncertainty after it (fundus photographs:
:mod:`monai_attn.fundus_qc`)."""

from monai_attn.qc.calibration import expected_calibration_error, fit_temperature, normalised_entropy
from monai_attn.qc.input_checks import Finding, check_ct_input
from monai_attn.qc.organ_checks import CaseQC, OrganQC, organ_qc

__all__ = [
    "CaseQC",
    "Finding",
    "OrganQC",
    "check_ct_input",
    "expected_calibration_error",
    "fit_temperature",
    "normalised_entropy",
    "organ_qc",
]
