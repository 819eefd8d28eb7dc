"""Contour overlays (ground truth / prediction on the image) and attention heat maps as RGB arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from monai_mtt.utils import to_numpy

__all__ = [
    "to_uint8_rgb",
    "contour",
    "overlay_contours",
    "attention_heatmap",
    "concat_images",
    "lesion_panel",
    "save_png",
]

TRUTH_COLOUR = (0, 255, 0)
PRED_COLOUR = (255, 40, 40)


def _plane(x) -> np.ndarray:
    """An ``(H, W)`` array from ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)`` (never squeezes H or W of 1)."""
    a = to_numpy(x)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) map, got shape {a.shape}.")
    return a


def to_uint8_rgb(image) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] (or ``(H, W, 3)`` uint8) -> ``(H, W, 3)`` uint8.

    Float input is channel-first and uint8 input channel-last, as documented, so a 1 or 3 pixel
    wide image is never mistaken for its channel axis.
    """
    a = to_numpy(image)
    channel_first = a.shape[0] in (1, 3) if a.dtype != np.uint8 else a.shape[-1] not in (1, 3)
    if a.ndim == 3 and channel_first:
        a = np.moveaxis(a, 0, -1)
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a


def contour(mask, thickness: int = 1) -> np.ndarray:
    """Boolean outline of a binary ``(H, W)`` mask, ``thickness`` pixels wide (inside the mask)."""
    m = _plane(mask) > 0.5
    if not m.any():
        return m
    edge = m & ~binary_erosion(m, border_value=0)
    if thickness > 1:
        edge = binary_dilation(edge, iterations=thickness - 1) & m
    return edge


def overlay_contours(image, truth=None, pred=None, thickness: int | None = None) -> np.ndarray:
    """The image with the ground-truth outline in green and the predicted outline in red.

    Args:
        image: ``(3, H, W)`` float [0, 1] or ``(H, W, 3)`` uint8.
        truth, pred: optional binary ``(H, W)`` (or ``(1, H, W)``) masks of the image's size.
        thickness: outline width in pixels (default: about 0.4% of the larger side, at least 1).

    Returns:
        ``(H, W, 3)`` uint8.
    """
    rgb = to_uint8_rgb(image).copy()
    t = thickness or max(1, round(max(rgb.shape[:2]) / 250))
    for mask, colour in ((truth, TRUTH_COLOUR), (pred, PRED_COLOUR)):
        if mask is None:
            continue
        edge = contour(mask, t)
        if edge.shape != rgb.shape[:2]:
            raise ValueError(f"mask {edge.shape} and image {rgb.shape[:2]} differ in size.")
        rgb[edge] = colour
    return rgb


def attention_heatmap(image, attn, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a ``(H, W)`` attention map (any non-negative scale) over the image with a colour map."""
    rgb = to_uint8_rgb(image).astype(np.float32)
    a = _plane(attn).astype(np.float32)
    if a.shape != rgb.shape[:2]:
        raise ValueError(f"attention {a.shape} and image {rgb.shape[:2]} differ in size.")
    a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
    heat = colormaps[cmap](a)[..., :3] * 255.0
    return np.clip((1 - alpha) * rgb + alpha * heat, 0, 255).astype(np.uint8)


def concat_images(images: list[np.ndarray], axis: int = 1, gap: int = 4, fill: int = 255) -> np.ndarray:
    """Place ``(H, W, 3)`` uint8 images side by side (``axis=1``) or stacked (``axis=0``).

    Images smaller than the largest across the other axis are padded with ``fill`` at the end;
    ``gap`` pixels of ``fill`` separate neighbours.
    """
    if not images:
        raise ValueError("no images to concatenate.")
    other = 1 - axis
    extent = max(im.shape[other] for im in images)
    parts = []
    for index, im in enumerate(images):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, extent - im.shape[other])
        parts.append(np.pad(im, pad, constant_values=fill))
        if gap and index < len(images) - 1:
            shape = [0, 0, 3]
            shape[axis], shape[other] = gap, extent
            parts.append(np.full(shape, fill, dtype=np.uint8))
    return np.concatenate(parts, axis=axis)


def lesion_panel(image, truth=None, pred=None, attn=None, gap: int = 4) -> np.ndarray:
    """One row to look at: the image | its truth (green) and predicted (red) outlines | the
    cls-attention heat map (when ``attn`` is given), all at the image's size.

    Args:
        image: ``(3, H, W)`` float [0, 1] or ``(H, W, 3)`` uint8.
        truth, pred: optional binary ``(H, W)`` masks.
        attn: optional ``(H, W)`` attention map.
        gap: white pixels between the pictures.

    Returns:
        ``(H, 2 W + gap, 3)`` or, with ``attn``, ``(H, 3 W + 2 gap, 3)`` uint8.
    """
    pictures = [to_uint8_rgb(image), overlay_contours(image, truth=truth, pred=pred)]
    if attn is not None:
        pictures.append(attention_heatmap(image, attn))
    return concat_images(pictures, axis=1, gap=gap)


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W)`` or ``(H, W, 3)`` uint8 array as PNG (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path
