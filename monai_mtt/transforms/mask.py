"""The one rule for what a binary lesion mask is, and how it becomes ``{0, 1}``.

The loader (:class:`~monai_mtt.transforms.LoadDermoscopyd`), data validation
(``monai-mtt prepare`` and every reader) and scoring (``monai-mtt score seg``) all call
:func:`binarize_mask`, so a mask one of them accepts is accepted, and read the same way, by all.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

__all__ = ["MASK_FIX", "MaskError", "binarize_mask", "binary_levels"]

MASK_FIX = (
    "save the mask losslessly as a single-channel PNG with 0 = background and 255 = lesion "
    "(threshold at half range; never save masks as JPEG)"
)
"""What to do about a mask that :func:`binarize_mask` refuses."""

_GREY_MODES = {"L": 255, "I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I": 65535, "F": 1}
"""Single-channel modes and their full-scale value (PIL opens 16-bit PNG / TIFF as ``I;16`` or ``I``)."""


class MaskError(ValueError):
    """A mask with no binary meaning under :func:`binarize_mask`.

    Attributes:
        name: the file (or array) concerned.
        detail: what is wrong, e.g. ``"3 grey levels (0, 128, 255); expected ..."``.
        fix: what the user should do about it.
    """

    def __init__(self, name: str, detail: str, fix: str = MASK_FIX) -> None:
        self.name, self.detail, self.fix = name, detail, fix
        super().__init__(f"{name}: not a binary mask: {detail}. Fix: {fix}.")


def binary_levels(arr: np.ndarray, full_scale: float, name: str = "mask") -> np.ndarray:
    """Boolean lesion mask from an array of grey levels: ``{0, 1}`` or ``{0, full_scale}``, nothing else.

    Args:
        arr: grey levels, any shape and numeric dtype.
        full_scale: the depth's largest value (255 for 8-bit, 65535 for 16-bit).
        name: the mask's name in the error message.

    Returns:
        ``arr != 0`` as a boolean array of the same shape.

    Raises:
        MaskError: when the distinct values are neither a subset of ``{0, 1}`` nor of ``{0, full_scale}``.
    """
    if arr.dtype == np.bool_:
        return arr.copy()
    if arr.dtype == np.uint8:  # counting is much faster than sorting
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        values = np.unique(arr)
    if np.all(np.isin(values, (0, 1))) or np.all(np.isin(values, (0, full_scale))):
        return arr != 0
    shown = ", ".join(f"{v:g}" for v in values[:8].tolist()) + (", ..." if values.size > 8 else "")
    raise MaskError(name, f"{values.size} grey levels ({shown}); expected two levels {{0, {full_scale:g}}} or {{0, 1}}")


def binarize_mask(img: Image.Image, name: str | None = None) -> np.ndarray:
    """The mask rule: a PIL image (as opened from its file) to a ``(H, W)`` uint8 array of ``{0, 1}``.

    * EXIF orientation is applied first, as for the image itself, so mask and image stay aligned.
    * 1-bit images: as stored (set pixels are lesion).
    * Greyscale (8-bit ``L``, 16-bit ``I;16``/``I``, float ``F``): the values must be ``{0, 1}`` or
      ``{0, full scale}`` (255 for 8-bit, 65535 for 16-bit, 1 for float); non-zero is lesion.
    * Palette, ``LA``, ``RGB``, ``RGBA``: the palette's colours are used and alpha is ignored; the colour
      channels must be equal everywhere (a grey image stored as colour) and then follow the 8-bit rule.
      A truly coloured mask is refused.

    Anything else (three or more grey levels, e.g. a JPEG-compressed or anti-aliased mask; a coloured
    mask) has no binary meaning and raises :class:`MaskError`, naming the file and the fix.

    Args:
        img: the opened mask image (decoded here).
        name: the file named in errors; defaults to the image's ``filename``.

    Returns:
        ``(H, W)`` uint8 array, 1 = lesion, in the EXIF-displayed orientation.

    Raises:
        MaskError: the mask is not binary under this rule.
    """
    name = name or getattr(img, "filename", None) or "mask"
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=np.uint8)
    if mode in _GREY_MODES:
        return binary_levels(np.asarray(img), _GREY_MODES[mode], name).astype(np.uint8)
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
    arr = np.asarray(img)
    if arr.ndim != 3 or mode not in ("P", "PA", "LA", "RGB", "RGBA", "RGBX"):
        raise MaskError(name, f"unsupported image mode {mode}")
    channels = arr[..., :1] if mode == "LA" else arr[..., :3]
    if not (channels == channels[..., :1]).all():
        raise MaskError(name, f"a colour image (mode {mode}) whose channels differ")
    return binary_levels(channels[..., 0], 255, name).astype(np.uint8)
