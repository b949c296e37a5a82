"""PNG previews of images with label overlays, for checking data and predictions by eye.

:func:`save_overlay_png` draws a 3-D volume as axial, coronal and sagittal slices (through the
centroid of the labelled voxels, or given indices) in radiological display convention (patient
right on the left of axial and coronal views, anterior up in axial views, anterior on the left of
sagittal views) with the physical aspect ratio of anisotropic voxels, labels overlaid in distinct
colours and a legend. 2-D images (grey or RGB) are drawn side by side with and without overlay.
Matplotlib's Agg canvas is used directly, so no display or pyplot state is needed; matplotlib is
imported only when a preview is drawn. The PNG is written atomically
(:func:`monai_attn.io.atomic.atomic_path`), so readers never see a partial file.

For the 2-D bundles (retina, cells), whose label PNGs hold small values (0-2) that look black
in an image viewer, two image-sized outputs: :func:`save_label_overlay_png` writes the image
with its labels blended in their colours (a preview beside the label PNG), and
:func:`save_palette_label_png` writes the label map as a palette PNG whose pixel values stay
the label values 0..N while viewers show each in its colour. Colours come from
:mod:`monai_attn.io.label_colours` (or a ``label_colours`` mapping, e.g. a bundle's), the same
as in the figures and DICOM SEG.

Example::

    save_overlay_png(image_hu, label, "case.png", affine=affine,
                     label_names={1: "spleen", 2: "kidney", 3: "pancreas"})
    save_label_overlay_png(fundus_rgb, disc_cup, "case_overlay.png")
    save_palette_label_png(disc_cup, "case_labels.png")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from monai_attn.io.provenance import PNG_KEY
from monai_attn.io.atomic import atomic_path
from monai_attn.io.label_colours import label_colour as palette_colour
from monai_attn.io.label_colours import label_colours as resolve_colours

if TYPE_CHECKING:
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from PIL import Image

#: Figure size (inches) at :data:`DPI` for 3-D (three views) and 2-D (two panels) previews.
FIGSIZE_3D = (15.0, 5.6)
FIGSIZE_2D = (10.0, 5.6)
#: Top of the panels (a fraction of the figure's height), leaving room for a figure title or not.
TOP_WITH_TITLE, TOP_WITHOUT_TITLE = 0.86, 0.92
#: 2-D outlines are the picture's larger side / this wide (at least one pixel).
OUTLINE_FRACTION = 250
DPI = 100

def label_colour(value: int) -> tuple[float, float, float]:
    """RGB colour (0-1, as matplotlib takes it) of label ``value`` (> 0) in every preview:
    :func:`monai_attn.io.label_colours.label_colour` scaled to 0-1."""
    return tuple(c / 255.0 for c in palette_colour(value))


def save_overlay_png(
    image,
    label=None,
    path: str | os.PathLike = "preview.png",
    spacing_mm: Sequence[float] | None = None,
    display_window: tuple[float, float] | None = None,
    label_names: Mapping[int, str] | None = None,
    *,
    affine: np.ndarray | None = None,
    slice_indices: Sequence[int] | None = None,
    title: str | None = None,
    alpha: float = 0.45,
) -> Path:
    """Write a PNG preview of ``image`` with ``label`` overlaid; returns the path written.

    ``image``: a 3-D volume (X, Y, Z), e.g. in HU, or a 2-D image (rows, cols) or
    (rows, cols, 3) RGB; channel-first MONAI ``MetaTensor``/torch tensors, (1, X, Y, Z) or
    (C, W, H) as MONAI loads them, are accepted too (a volume's ``affine`` is used).
    ``label``: integer array on the same grid, or None. 3-D arrays are taken as RAS-ordered
    (axis 0 toward the patient's right, 1 anterior, 2 superior) unless an ``affine`` (voxel to
    RAS mm) is given, in which case they are reoriented to RAS for display and the voxel size is
    read from it; otherwise ``spacing_mm`` (default 1 mm) sets the aspect. ``display_window``
    (low, high) is the display window for 3-D images (a bundle's intensity window; None: the
    volume's 1st-99th percentile). ``slice_indices`` (i, j, k) in the input's
    voxel indices choose the sagittal, coronal and axial slices; by default they pass through
    the centroid of the labelled voxels (or the volume centre). ``label_names`` maps label
    values to legend names. Volumes get their labels filled (``alpha``); 2-D pictures get each
    label's outline in full colour, which stays visible on any background (a red fundus).
    """
    image, image_affine = _as_array(image)
    label = None if label is None else _as_array(label)[0]
    affine = image_affine if affine is None else np.asarray(affine, dtype=np.float64)
    if label is not None and label.shape != image.shape[: label.ndim]:
        raise ValueError(f"label shape {label.shape} does not match image shape {image.shape}")
    rgb = image.ndim == 3 and image.shape[-1] == 3 and (label is None or label.ndim == 2)
    top = TOP_WITH_TITLE if title else TOP_WITHOUT_TITLE  # room above the panels' own titles
    if image.ndim == 3 and not rgb:
        window = display_window if display_window is not None else tuple(float(v) for v in np.percentile(image, (1, 99)))
        figure = _figure_3d(image, label, spacing_mm, affine, window, label_names, slice_indices, alpha, top)
    elif image.ndim == 2 or rgb:
        figure = _figure_2d(image, label, label_names, top)
    else:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {image.shape}")
    if title:
        figure.suptitle(title, y=0.985, fontsize=11)
    return _save_atomically(figure, Path(path))


def _as_array(data) -> tuple[np.ndarray, np.ndarray | None]:
    """A NumPy array in the layout :func:`save_overlay_png` draws, and the affine of a MetaTensor.

    Torch tensors and MetaTensors are channel-first in MONAI's order: (1, X, Y, Z) volumes lose
    the channel axis; (C, W, H) 2-D images become (H, W) or (H, W, C) with their pixel-grid
    affine dropped. NumPy arrays are used as they are.
    """
    if not hasattr(data, "detach"):
        return np.asarray(data), None
    affine = getattr(data, "affine", None)
    affine = None if affine is None else np.asarray(affine.detach().cpu(), dtype=np.float64)
    array = data.detach().cpu().numpy()
    if array.ndim == 4 and array.shape[0] == 1:
        return array[0], affine
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = array.transpose(2, 1, 0)
        return (array[..., 0] if array.shape[-1] == 1 else array), None
    raise ValueError(f"expected a channel-first tensor (1, X, Y, Z), (1, W, H) or (3, W, H), got {tuple(array.shape)}")


def _reorient(
    image: np.ndarray,
    label: np.ndarray | None,
    affine: np.ndarray | None,
    spacing_mm: Sequence[float] | None,
    indices: Sequence[int] | None,
):
    """Arrays in RAS axis order, their voxel size (mm) and the slice indices mapped accordingly."""
    if indices is None:
        if label is not None and np.any(label > 0):
            indices = np.rint(np.argwhere(label > 0).mean(axis=0)).astype(int)
        else:
            indices = (np.asarray(image.shape) - 1) // 2
    indices = np.asarray(indices, dtype=int)
    if affine is None:
        spacing = np.ones(3) if spacing_mm is None else np.asarray(spacing_mm, dtype=np.float64)
        return image, label, spacing, indices
    ornt = nib.orientations.io_orientation(affine)
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    spacing, mapped = np.empty(3), np.empty(3, dtype=int)
    for axis, (target, flip) in enumerate(ornt.astype(int)):
        spacing[target] = norms[axis]
        mapped[target] = indices[axis] if flip == 1 else image.shape[axis] - 1 - indices[axis]
    image = nib.orientations.apply_orientation(image, ornt)
    if label is not None:
        label = nib.orientations.apply_orientation(label, ornt)
    return image, label, spacing, mapped


def _display(plane: np.ndarray) -> np.ndarray:
    """A slice with axes (horizontal-in-patient, vertical-in-patient) as a display image:
    rows run from the high end of the vertical axis, columns from the high end of the horizontal."""
    return np.ascontiguousarray(plane[::-1, ::-1].T)


def _figure_3d(image, label, spacing_mm, affine, display_window, label_names, indices, alpha, top) -> Figure:
    image, label, spacing, (i, j, k) = _reorient(image, label, affine, spacing_mm, indices)
    sx, sy, sz = spacing
    views = [  # (title, image plane, label plane, pixel height / width)
        (f"axial  k={k}", image[:, :, k], None if label is None else label[:, :, k], sy / sx),
        (f"coronal  j={j}", image[:, j, :], None if label is None else label[:, j, :], sz / sx),
        (f"sagittal  i={i}", image[i, :, :], None if label is None else label[i, :, :], sz / sy),
    ]
    widths = [image.shape[0] * sx, image.shape[0] * sx, image.shape[1] * sy]
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE_3D, dpi=DPI)
    grid = figure.add_gridspec(1, 3, width_ratios=widths, left=0.01, right=0.99, top=top, bottom=0.1, wspace=0.03)
    values = _label_values(label, label_names)
    cmap = _label_cmap(values)
    for column, (name, plane, overlay, aspect) in enumerate(views):
        axes = figure.add_subplot(grid[0, column])
        axes.imshow(
            _display(plane), cmap="gray", vmin=display_window[0], vmax=display_window[1], aspect=aspect, interpolation="nearest"
        )
        if overlay is not None:
            _overlay(axes, _display(overlay), values, cmap, alpha, aspect)
        axes.set_title(name, fontsize=10)
        axes.set_axis_off()
    _legend(figure, values, label_names)
    return figure


def _figure_2d(image, label, label_names, top) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE_2D, dpi=DPI)
    grid = figure.add_gridspec(1, 2, left=0.01, right=0.99, top=top, bottom=0.1, wspace=0.03)
    values = _label_values(label, label_names)
    cmap = _label_cmap(values)
    if image.ndim == 2:
        low, high = (0, 255) if image.dtype == np.uint8 else (float(image.min()), float(image.max()))
        kwargs = {"cmap": "gray", "vmin": low, "vmax": high}
    else:
        kwargs = {}
        if image.dtype != np.uint8:
            image = np.clip((image - image.min()) / max(float(np.ptp(image)), 1e-6), 0, 1)
    for column, name in enumerate(("image", "labels")):
        axes = figure.add_subplot(grid[0, column])
        axes.imshow(image, interpolation="nearest", **kwargs)
        if column == 1 and label is not None:
            _outline_overlay(axes, label, values, cmap)
        axes.set_title(name, fontsize=10)
        axes.set_axis_off()
    _legend(figure, values, label_names)
    return figure


def outlines(label: np.ndarray, width: int) -> np.ndarray:
    """``label`` kept only within ``width`` pixels inside each label's border (0 elsewhere)."""
    from scipy import ndimage

    edges = np.zeros_like(label)
    for value in np.unique(label[label > 0]):
        mask = label == value
        rim = mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=1)
        edges[rim] = value
    return edges


def _outline_overlay(axes, label: np.ndarray, values: list[int], cmap: ListedColormap) -> None:
    """Each label's outline in its colour, between two white lines (visible on any picture, a
    red fundus included)."""
    from matplotlib.colors import ListedColormap
    from scipy import ndimage

    width = max(1, round(max(label.shape) / OUTLINE_FRACTION))
    edges = outlines(label, width)
    halo = ndimage.binary_dilation(edges > 0, iterations=max(1, width // 2)) & (edges == 0)
    axes.imshow(np.ma.masked_where(~halo, halo), cmap=ListedColormap([(1.0, 1.0, 1.0)]), interpolation="nearest")
    _overlay(axes, edges, values, cmap, 1.0, 1.0)


def _label_values(label: np.ndarray | None, label_names: Mapping[int, str] | None) -> list[int]:
    present = set() if label is None else {int(v) for v in np.unique(label) if v > 0}
    named = {int(k) for k in (label_names or {}) if int(k) > 0}
    return sorted(present | named)


def _label_cmap(values: list[int]) -> ListedColormap:
    from matplotlib.colors import ListedColormap

    return ListedColormap([label_colour(v) for v in values] or [(0, 0, 0)])


def _overlay(axes, plane: np.ndarray, values: list[int], cmap: ListedColormap, alpha: float, aspect: float) -> None:
    """Draw labelled pixels of ``plane`` in their colours; background stays transparent."""
    if not values:
        return
    lookup = np.full(int(max(values, default=0)) + 1, -1, dtype=np.int64)
    lookup[values] = np.arange(len(values))
    codes = lookup[np.clip(plane.astype(np.int64), 0, len(lookup) - 1)]
    codes[plane <= 0] = -1
    masked = np.ma.masked_less(codes, 0)
    axes.imshow(
        masked, cmap=cmap, vmin=-0.5, vmax=len(values) - 0.5, alpha=alpha, aspect=aspect, interpolation="nearest"
    )


def _legend(figure: Figure, values: list[int], label_names: Mapping[int, str] | None) -> None:
    if not values:
        return
    from matplotlib.patches import Patch as LegendPatch

    names = {int(k): v for k, v in (label_names or {}).items()}
    handles = [LegendPatch(color=label_colour(v), label=f"{v} {names.get(v, '')}".strip()) for v in values]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, fontsize=10)


def _save_atomically(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=DPI)
    return path


def _as_2d(data, what: str) -> np.ndarray:
    """A 2-D image (rows, cols) or (rows, cols, 3) as :func:`_as_array` lays it out."""
    array = _as_array(data)[0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3):
        return array
    raise ValueError(f"{what}: expected a 2-D image (rows, cols) or (rows, cols, 3), got shape {array.shape}")


def _labels_2d(label) -> np.ndarray:
    """A 2-D integer label map (rows, cols) with values 0..255."""
    label = _as_2d(label, "label")
    if label.ndim != 2:
        raise ValueError(f"label: expected (rows, cols), got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        if not np.array_equal(label, np.rint(label)):
            raise ValueError("label: values must be whole numbers")
    label = label.astype(np.int64)
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label: values must be 0..255, got {label.min()}..{label.max()}")
    return label


def label_overlay_rgb(
    image,
    label,
    label_colours: Mapping[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """The image with each labelled pixel blended with its label's colour: (rows, cols, 3) uint8.

    ``image``: (rows, cols) grey or (rows, cols, 3) RGB, as a PNG holds it (uint8 kept as is,
    other types scaled min..max to 0..255), or a channel-first MONAI tensor (C, W, H).
    ``label``: integer label map on the same pixels (0 = background, left unchanged).
    ``label_colours``: label value -> RGB 0-255 (others from the shared palette); ``alpha``:
    weight of the label colour (0..1).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be 0..1, got {alpha}")
    image = _as_2d(image, "image")
    label = _labels_2d(label)
    if label.shape != image.shape[:2]:
        raise ValueError(f"label shape {label.shape} does not match image shape {image.shape}")
    if image.dtype != np.uint8:
        low, span = float(image.min()), float(np.ptp(image))
        image = np.clip(np.rint((image - low) / max(span, 1e-12) * 255.0), 0, 255).astype(np.uint8)
    rgb = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image.copy()
    values = [int(v) for v in np.unique(label) if v > 0]
    colours = resolve_colours(values, label_colours)
    for value in values:
        mask = label == value
        blended = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(colours[value], dtype=np.float64)
        rgb[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return rgb


def save_label_overlay_png(
    image,
    label,
    path: str | os.PathLike,
    label_colours: Mapping[int, tuple[int, int, int]] | None = None,
    alpha: float = 0.5,
) -> Path:
    """Write :func:`label_overlay_rgb` as an RGB PNG the size of the image; returns the path."""
    from PIL import Image

    rgb = label_overlay_rgb(image, label, label_colours, alpha)
    return _save_image_atomically(Image.fromarray(rgb), Path(path))


#: PIL transposes that undo ``ImageOps.exif_transpose`` for each EXIF orientation (2-8).
_UNDO_EXIF = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
              7: "TRANSVERSE", 8: "ROTATE_270"}


def save_palette_label_png(
    label,
    path: str | os.PathLike,
    label_colours: Mapping[int, tuple[int, int, int]] | None = None,
    exif_orientation: int = 1,
    provenance: str | None = None,
) -> Path:
    """Write a label map (values 0..255) as a palette ("P" mode) PNG; returns the path.

    Pixel values are the label values, so tools that read the PNG as an array (PIL,
    ``monai.transforms.LoadImage``, scikit-image) get the labels unchanged, while image viewers
    show label 0 black and every other label in its colour (``label_colours`` or the shared
    palette). ``label`` is upright; with the input photograph's ``exif_orientation`` (2-8) the
    pixels are stored as the photograph's are, with the same EXIF tag, so the two overlay both
    in EXIF-aware viewers and as raw arrays. ``provenance`` (JSON text) goes into a text chunk
    (:data:`monai_attn.io.provenance.PNG_KEY`).
    """
    from PIL import Image, PngImagePlugin

    label = _labels_2d(label)
    top = int(label.max()) if label.size else 0
    colours = resolve_colours(range(top + 1), label_colours)
    palette = [channel for value in range(top + 1) for channel in colours[value]]
    image = Image.fromarray(label.astype(np.uint8))  # mode "L"; putpalette makes it "P"
    image.putpalette(palette + [0, 0, 0] * (256 - top - 1))
    exif = None
    if exif_orientation in _UNDO_EXIF:
        image = image.transpose(getattr(Image.Transpose, _UNDO_EXIF[exif_orientation]))
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
    text = None
    if provenance is not None:
        text = PngImagePlugin.PngInfo()
        text.add_text(PNG_KEY, provenance)
    return _save_image_atomically(image, Path(path), exif, text)


def _save_image_atomically(image: Image.Image, path: Path, exif=None, text=None) -> Path:
    options = {**({"exif": exif} if exif is not None else {}), **({"pnginfo": text} if text is not None else {})}
    with atomic_path(path) as partial:
        image.save(partial, format="PNG", **options)
    return path
