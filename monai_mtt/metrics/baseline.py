"""A segmentation that learned nothing: Otsu's threshold on the grey image, the largest dark
component, holes filled. Evaluation reports print it next to the trained model (computed on the
same images), so a reader sees what the training bought.

The method: grey = ITU-R BT.601 luma of the RGB image; the threshold maximises the between-class
variance of the grey-level histogram (Otsu 1979, 256 bins over the image's range); lesions are
darker than skin, so the pixels below it form the candidate mask; the largest 8-connected
component is kept and its holes are filled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from monai_mtt.utils import to_numpy

__all__ = ["BASELINE_NAME", "otsu_threshold", "otsu_lesion_mask"]

BASELINE_NAME = "Otsu threshold (no learning)"
"""Label of the baseline in the report tables."""

_LUMA = np.array([0.299, 0.587, 0.114])


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the bin edge that maximises the between-class variance of ``values``.

    Args:
        values: any array of grey levels (flattened).
        bins: histogram bins over ``[min, max]``.

    Returns:
        ``t`` such that ``values < t`` is the darker class (a histogram bin edge); for a constant
        array, its value (nothing is darker).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)[:-1].astype(np.float64)  # class 0 = bins 0..i = values < edges[i + 1]
    w1 = v.size - w0
    s0 = np.cumsum(counts * centres)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = (float((counts * centres).sum()) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:-1][int(np.argmax(between))])


def _grey(image) -> np.ndarray:
    a = to_numpy(image, np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3:
        a = a[..., 0] if a.shape[-1] == 1 else a[..., :3] @ _LUMA
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W), (H, W, C) or (C, H, W) image, got shape {a.shape}")
    return a


def otsu_lesion_mask(image) -> np.ndarray:
    """The baseline lesion mask of one image.

    Args:
        image: ``(3, H, W)`` / ``(H, W, 3)`` RGB or ``(H, W)`` grey, any value range.

    Returns:
        ``(H, W)`` bool: the largest 8-connected component of ``grey < otsu_threshold(grey)``,
        holes filled; all False for a constant image.
    """
    grey = _grey(image)
    dark = grey < otsu_threshold(grey)
    labels, n = ndimage.label(dark, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return dark
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(largest)
