"""The display colour of each label value, shared by every output that shows labels.

One palette serves the 3-D and 2-D PNG previews, the colour-mapped label PNGs and the
``RecommendedDisplayCIELabValue`` of DICOM SEG segments, so an organ has the same colour in
our previews, in a PACS viewer and in 3D Slicer. Colours are RGB, 0-255 per channel; label 0
(background) is black. A bundle may give its own colours (``label_colours`` arguments take a
``{label value: (r, g, b)}`` mapping); labels it leaves out fall back to this palette.

Example::

    label_colour(1)            # (230, 25, 25): spleen red
    label_colours([1, 2, 3])   # {1: (230, 25, 25), 2: (25, 204, 51), 3: (51, 102, 255)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: RGB (0-255) of labels 1, 2, 3, ...; repeats after the last entry. Neighbouring entries
#: differ in hue so adjacent organs stay distinguishable.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 25),
    (25, 204, 51),
    (51, 102, 255),
    (255, 217, 0),
    (230, 51, 230),
    (0, 217, 217),
    (255, 128, 0),
    (153, 77, 230),
    (140, 217, 64),
    (255, 140, 179),
)

#: Colour of the background label 0.
BACKGROUND: tuple[int, int, int] = (0, 0, 0)


def label_colour(value: int) -> tuple[int, int, int]:
    """RGB (0-255) of label ``value``: black for 0, else the palette entry ``value - 1`` (cyclic)."""
    value = int(value)
    if value < 0:
        raise ValueError(f"label values are >= 0, got {value}")
    return BACKGROUND if value == 0 else PALETTE[(value - 1) % len(PALETTE)]


def label_colours(
    values: Iterable[int], overrides: Mapping[int, tuple[int, int, int]] | None = None
) -> dict[int, tuple[int, int, int]]:
    """``{value: (r, g, b)}`` for ``values``: ``overrides`` (e.g. a bundle's label table) first,
    then the palette. Raises ValueError for a channel outside 0-255."""
    given = {int(k): tuple(int(c) for c in v) for k, v in (overrides or {}).items()}
    colours = {}
    for value in values:
        colour = given.get(int(value), label_colour(value))
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ValueError(f"colour of label {value} must be three values 0-255, got {colour}")
        colours[int(value)] = colour
    return colours
