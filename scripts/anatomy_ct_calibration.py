"""Calibrate the label-map CT renderer against real CT: same anatomy, real image vs rendered.

For each calibration CT (a real CT with its TotalSegmentator label map, neck and chest), the
label map is rendered undeformed on the CT's own grid (``render_on_grid``) for several seeds in
the contrast phase the real scan was acquired in, and the two are compared with one estimator
each:

* per-tissue median HU inside the labels (fat: unlabelled body voxels between -200 and -50 HU;
  air: outside the body);
* noise level: standard deviation of the in-plane high-pass residual (image minus its 3x3
  median) inside eroded muscle and fat;
* noise texture: centroid of the radially averaged noise power spectrum of that residual
  (cycles/mm);
* edge sharpness: 10-90 % width (mm) of the skin-air edge, from the steepest gradient.

Writes ``docs/anatomy_ct_calibration.md`` (table) and ``docs/anatomy_ct_calibration.png``
(real vs rendered, same slice, same window).

    python scripts/anatomy_ct_calibration.py --anatomy ../shared/real-anatomy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from monai_attn.synthetic.anatomy_ct import Anatomy, render_on_grid
from monai_attn.synthetic.label_map_tissues import LabelMapClasses

#: (calibration case, contrast phase of the real scan: carotids ~130 HU in s0002, ~40 HU in s0003)
CASES = (("s0002", "portal_venous"), ("s0003", "non_contrast"))
GROUPS = {"bone": ("bone",), "muscle": ("muscle",), "vessels": ("artery", "vein"), "lung": ("lung",),
          "airway": ("airway",), "spinal cord": ("cord",), "thyroid": ("thyroid",)}
SEEDS = 6


def tissue_medians(image: np.ndarray, labels: np.ndarray, table: LabelMapClasses) -> dict[str, float]:
    body = ndimage.binary_fill_holes(ndimage.binary_opening(image > -500, iterations=2))
    out = {}
    for group, tissues in GROUPS.items():
        ids = [c for c, t in table.tissue.items() if t in tissues]
        mask = np.isin(labels, ids)
        if mask.sum() > 50:
            out[group] = float(np.median(image[mask]))
    fat = body & (labels == 0) & (image > -200) & (image < -50)
    out["fat"] = float(np.median(image[fat]))
    out["air"] = float(np.median(image[~ndimage.binary_dilation(body, iterations=5)]))
    return out


def noise(image: np.ndarray, labels: np.ndarray, table: LabelMapClasses, spacing_mm: float) -> tuple[float, float]:
    """Noise level (HU) and NPS centroid (cycles/mm) in eroded muscle and fat."""
    muscle = np.isin(labels, [c for c, t in table.tissue.items() if t == "muscle"])
    fat = (labels == 0) & (image > -200) & (image < -50)
    region = ndimage.binary_erosion(muscle | fat, np.ones((3, 3, 1)))
    residual = image.astype(np.float32) - ndimage.median_filter(image.astype(np.float32), size=(3, 3, 1))
    level = float(np.std(residual[region]))
    spectra = []
    n = 8
    for k in range(0, image.shape[2], 3):
        for i in range(0, image.shape[0] - n, n):
            for j in range(0, image.shape[1] - n, n):
                if region[i:i + n, j:j + n, k].all():
                    patch = residual[i:i + n, j:j + n, k]
                    spectra.append(np.abs(np.fft.fft2(patch - patch.mean())) ** 2)
    nps = np.mean(spectra, axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")) / spacing_mm
    return level, float((nps * f).sum() / nps.sum())


def edge_width(image: np.ndarray, spacing_mm: float) -> float:
    """10-90 % width (mm) of the body-air edge: jump / steepest in-plane gradient * 0.8 (Gaussian edge ~ 2.56 sigma)."""
    smooth = image.astype(np.float32)
    gx, gy = np.gradient(smooth, axis=(0, 1))
    grad = np.hypot(gx, gy) / spacing_mm
    body = image > -500
    boundary = body ^ ndimage.binary_erosion(body)
    steep = np.percentile(grad[boundary], 90)
    jump = np.median(image[ndimage.binary_erosion(body, iterations=4) & (image < 200) & (image > -200)]) - np.median(image[~ndimage.binary_dilation(body, iterations=4)])
    sigma = jump / (steep * np.sqrt(2 * np.pi))
    return float(2.563 * sigma)


def window(slice_hu: np.ndarray, lo: float = -160, hi: float = 240) -> Image.Image:
    picture = Image.fromarray((np.clip((np.rot90(slice_hu) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8))
    return picture.resize((2 * picture.width, 2 * picture.height), Image.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anatomy", default="../shared/real-anatomy", type=Path)
    parser.add_argument("--out", default="docs", type=Path)
    args = parser.parse_args()
    folder = args.anatomy / "calibration-ct"
    table = LabelMapClasses.from_json(args.anatomy / "totalsegmentator" / "classes.json")
    rows, panels = [], []
    for case, phase in CASES:
        real_image = nib.load(str(folder / f"{case}_ct.nii.gz"))
        real = np.asanyarray(real_image.dataobj).astype(np.int16)
        labels = np.asanyarray(nib.load(str(folder / f"{case}_labels.nii.gz")).dataobj)
        spacing = float(real_image.header.get_zooms()[0])
        anatomy = Anatomy.from_array(case, labels.astype(np.uint8), real_image.affine, table)
        renders = [render_on_grid(anatomy, real.shape, real_image.affine, seed, phase)[0] for seed in range(SEEDS)]
        measured_real = tissue_medians(real, labels, table)
        measured = [tissue_medians(r, labels, table) for r in renders]
        for group, value in measured_real.items():
            values = [m[group] for m in measured if group in m]
            rows.append((case, group, value, float(np.median(values)), min(values), max(values), "HU"))
        level_real, nps_real = noise(real, labels, table, spacing)
        levels = [noise(r, labels, table, spacing) for r in renders]
        rows.append((case, "noise level", level_real, float(np.median([l[0] for l in levels])),
                     min(l[0] for l in levels), max(l[0] for l in levels), "HU"))
        rows.append((case, "NPS centroid", nps_real, float(np.median([l[1] for l in levels])),
                     min(l[1] for l in levels), max(l[1] for l in levels), "cycles/mm"))
        widths = [edge_width(r, spacing) for r in renders]
        rows.append((case, "skin-air edge 10-90 %", edge_width(real, spacing), float(np.median(widths)),
                     min(widths), max(widths), "mm"))
        body_ids = [c for c, t in table.tissue.items() if t in ("muscle", "lung", "artery")]
        k = int(np.argmax(np.isin(labels, body_ids).sum(axis=(0, 1))))  # neck or chest, not the skull
        panels.append((case, window(real[:, :, k]), window(renders[0][:, :, k])))
    lines = ["| CT | measure | real | rendered (median of %d seeds) | rendered range | difference |" % SEEDS,
             "|---|---|--:|--:|--:|--:|"]
    for case, name, real_value, rendered, lo, hi, unit in rows:
        diff = rendered - real_value
        rel = f" ({100 * diff / real_value:+.0f} %)" if unit != "HU" or name == "noise level" else ""
        lines.append(f"| {case} | {name} ({unit}) | {real_value:.4g} | {rendered:.4g} | {lo:.4g} .. {hi:.4g} | "
                     f"{diff:+.4g}{rel} |")
    header = ["# Renderer calibration: real CT vs CT rendered from its own label map", "",
              "Written by `python scripts/anatomy_ct_calibration.py` (TotalSegmentator calibration CTs s0002, neck, "
              "contrast-enhanced, rendered in the portal-venous phase; s0003, neck and upper chest, non-contrast; "
              "CC BY 4.0, Wasserthal et al. 2023). Estimators in the script's docstring. Figure: "
              "[anatomy_ct_calibration.png](anatomy_ct_calibration.png).", ""]
    (args.out / "anatomy_ct_calibration.md").write_text("\n".join(header + lines) + "\n")
    print("\n".join(lines))
    width = sum(p[1].width for p in panels) + 10 * len(panels)
    height = max(p[1].height for p in panels) * 2 + 40
    figure = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(figure)
    x = 0
    for case, real_panel, rendered_panel in panels:
        figure.paste(real_panel, (x, 20))
        figure.paste(rendered_panel, (x, 40 + real_panel.height))
        draw.text((x + 4, 4), f"{case}: real CT", fill=0)
        draw.text((x + 4, 24 + real_panel.height), f"{case}: rendered from its label map", fill=0)
        x += real_panel.width + 10
    figure.save(args.out / "anatomy_ct_calibration.png")


if __name__ == "__main__":
    main()
