"""Domain randomisation for CT training: make the model key on anatomy, not on one data source.

A model trained on one generator (or one scanner, one contrast phase) learns its exact grey
values: the shipped CT weights of version 0.2 found nothing on a real non-contrast scan because
every phantom kidney had an enhancing cortex. These transforms widen the training distribution
on the already windowed image (HU window scaled to 0..1):

* :class:`RandLabelIntensityShiftd` moves each organ's intensity by its own random offset, so
  the organ-to-neighbour contrast varies (the contrast phase, fatty pancreas, iron overload);
* :func:`ct_intensity_randomisation` chains it with MONAI's intensity transforms: a shifted and
  rescaled window, gamma, a smooth bias field, noise, blur or sharpening (reconstruction
  kernels) and simulated low resolution (thick slices, coarse pixels).

The intensity transforms change the image only; the labels stay exact. The random end of the
field of view is :class:`~monai_attn.transforms.spatial.RandTruncatedFieldOfViewd`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import (
    MapTransform,
    RandAdjustContrastd,
    RandBiasFieldd,
    RandGaussianNoised,
    RandGaussianSharpend,
    RandGaussianSmoothd,
    RandHistogramShiftd,
    RandomizableTransform,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSimulateLowResolutiond,
)
from monai.transforms.transform import Transform


class RandLabelIntensityShiftd(RandomizableTransform, MapTransform):
    """Add a random offset to the image inside each labelled structure, one offset per label.

    Args:
        keys: the image key(s) to change.
        label_key: the label map (same spatial grid, channel first) that selects the voxels.
        offsets: an offset per label is drawn uniformly from ``[-offsets, offsets]``, in the
            image's units (for a CT window of W HU scaled to 0..1, 30 HU is ``30 / W``).
        prob: probability that a sample is changed at all.
        label_prob: probability, within a changed sample, that each present label is shifted.

    Example::

        shift = RandLabelIntensityShiftd("image", "label", offsets=40 / 425, prob=0.5)
    """

    def __init__(self, keys: KeysCollection, label_key: str, offsets: float, prob: float = 0.5,
                 label_prob: float = 0.7, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if offsets < 0 or not 0 <= label_prob <= 1:
            raise ValueError(f"need offsets >= 0 and 0 <= label_prob <= 1, got {offsets}, {label_prob}")
        self.label_key = label_key
        self.offsets = float(offsets)
        self.label_prob = float(label_prob)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        label = torch.as_tensor(d[self.label_key])
        values = [int(v) for v in torch.unique(label).tolist() if v > 0]
        shifts = {v: float(self.R.uniform(-self.offsets, self.offsets)) for v in values
                  if self.R.uniform() < self.label_prob}
        if not shifts:
            return d
        table = torch.zeros(max(shifts) + 1, dtype=torch.float32)
        for value, shift in shifts.items():
            table[value] = shift
        index = label.long().clamp(0, len(table) - 1)
        added = torch.where(label.long() < len(table), table[index], torch.zeros((), dtype=torch.float32))
        for key in self.key_iterator(d):
            image = d[key]
            d[key] = image + added.to(device=image.device, dtype=image.dtype)
        return d

def ct_intensity_randomisation(
    image_key: str,
    label_key: str,
    hu_window: Sequence[float],
    prob: float = 0.25,
    label_offset_hu: float = 45.0,
    window_shift_hu: float = 40.0,
    window_scale: float = 0.15,
    gamma: tuple[float, float] = (0.7, 1.5),
    noise_hu: float = 25.0,
    blur_sigma_voxels: tuple[float, float] = (0.5, 1.2),
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0),
) -> list[Transform]:
    """Intensity domain randomisation for CT patches scaled from ``hu_window`` to 0..1.

    Each step happens with probability ``prob`` (the label shift with ``2 * prob``), with
    magnitudes given in HU and converted with the window width:

    * per-label offsets up to ``label_offset_hu`` (:class:`RandLabelIntensityShiftd`);
    * gamma in ``gamma`` (a non-linear window);
    * window scale by ``1 +- window_scale`` and shift up to ``window_shift_hu`` (calibration,
      kVp); a smooth multiplicative bias field (beam hardening, cupping);
    * Gaussian noise with a standard deviation up to ``noise_hu`` (low dose, large patients);
    * Gaussian blur with sigma in ``blur_sigma_voxels`` or sharpening (soft and sharp kernels);
    * downsampling by a factor in ``low_resolution_zoom`` and back (thick slices, coarse pixels).
    """
    width = float(hu_window[1]) - float(hu_window[0])
    if width <= 0:
        raise ValueError(f"hu_window must be (low, high) with low < high, got {tuple(hu_window)}")
    sigma = tuple(blur_sigma_voxels)
    return [
        RandLabelIntensityShiftd(image_key, label_key, offsets=label_offset_hu / width, prob=min(1.0, 2 * prob)),
        RandAdjustContrastd(image_key, gamma=gamma, prob=prob),
        RandScaleIntensityd(image_key, factors=window_scale, prob=prob),
        RandShiftIntensityd(image_key, offsets=window_shift_hu / width, prob=prob),
        RandBiasFieldd(image_key, degree=3, coeff_range=(0.0, 0.08), prob=prob),
        RandGaussianSmoothd(image_key, sigma_x=sigma, sigma_y=sigma, sigma_z=sigma, prob=prob),
        RandGaussianSharpend(image_key, prob=prob / 3),
        RandSimulateLowResolutiond(image_key, zoom_range=low_resolution_zoom, prob=prob),
        RandGaussianNoised(image_key, std=noise_hu / width, prob=prob),
    ]

def em_intensity_randomisation(
    image_key: str,
    prob: float = 0.4,
    gamma: tuple[float, float] = (0.6, 1.6),
    histogram_points: tuple[int, int] = (5, 10),
    noise_std: float = 0.06,
    blur_sigma_px: tuple[float, float] = (0.4, 1.3),
    low_resolution_zoom: tuple[float, float] = (0.6, 1.0),
) -> list[Transform]:
    """Intensity domain randomisation for electron micrographs scaled to 0..1.

    Sections differ in stain, thickness, detector and microscope far more than CT scanners do;
    each step happens with probability ``prob``:

    * gamma in ``gamma`` and a random monotone tone curve (``RandHistogramShiftd`` with
      ``histogram_points`` control points): staining and exposure;
    * a smooth multiplicative bias field: uneven section thickness and illumination;
    * Gaussian blur with sigma in ``blur_sigma_px`` pixels, or sharpening: focus and filters;
    * downsampling by a factor in ``low_resolution_zoom`` and back: coarser pixels;
    * Gaussian noise with a standard deviation up to ``noise_std`` (of the 0..1 range): dose.
    """
    sigma = tuple(blur_sigma_px)
    return [
        RandAdjustContrastd(image_key, gamma=gamma, prob=prob),
        RandHistogramShiftd(image_key, num_control_points=histogram_points, prob=prob),
        RandBiasFieldd(image_key, degree=3, coeff_range=(0.0, 0.15), prob=prob),
        RandGaussianSmoothd(image_key, sigma_x=sigma, sigma_y=sigma, prob=prob),
        RandGaussianSharpend(image_key, prob=prob / 3),
        RandSimulateLowResolutiond(image_key, zoom_range=low_resolution_zoom, upsample_mode="bilinear", prob=prob),
        RandGaussianNoised(image_key, std=noise_std, prob=prob),
    ]
