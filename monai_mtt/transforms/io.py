"""Loading dermoscopy images and lesion masks through MONAI's ``LoadImaged`` (PIL reader).

Orientation: MONAI's PIL reader reverses the axes by default (an H x W file loads as W x H). Here the
reader is created with ``reverse_indexing=False``, so every array in this package is channel-first
``(C, H, W)`` in the file's own row/column order, and a mask saved with PIL overlays its image.

Image modes are normalised by PIL converters applied right after decoding: EXIF orientation is
applied, greyscale / palette / RGBA / CMYK become RGB, 16-bit images are scaled to 8 bits; masks
become one channel with values {0, 1} by the one mask rule, :func:`monai_mtt.transforms.mask.binarize_mask`
(0/255 or 0/1 PNG, 1-bit BMP, 16-bit, grey stored as RGB; other masks are refused with the fix).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import PILReader
from monai.transforms import EnsureChannelFirstd, LoadImaged, MapTransform
from PIL import Image, ImageOps

from monai_mtt.keys import BatchKeys
from monai_mtt.transforms.mask import binarize_mask

__all__ = [
    "pil_to_rgb",
    "pil_to_mask",
    "read_binary_mask",
    "LoadDermoscopyd",
    "EnsureClassd",
    "ImageTooLargeError",
    "check_image_pixels",
    "check_image_file",
    "max_image_pixels",
    "DEFAULT_MAX_IMAGE_PIXELS",
]

MAX_IMAGE_PIXELS_ENV = "MONAI_MTT_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's own warning threshold (about 9459 x 9459); ISIC images are <= 31 MP


class ImageTooLargeError(ValueError):
    """An image whose header declares more pixels than the limit (refused before decoding)."""

    def __init__(self, path: str | None, size: tuple[int, int] | int, limit: int) -> None:
        self.path, self.limit = path, int(limit)
        self.size = tuple(size) if isinstance(size, (tuple, list)) else None
        self.pixels = int(size[0]) * int(size[1]) if isinstance(size, (tuple, list)) else int(size)
        shown = f"{self.size[0]} x {self.size[1]} = " if self.size else ""
        super().__init__(
            f"{path or 'image'}: {shown}{self.pixels / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.1f} megapixels (a decompression bomb or a very large scan). If the image is "
            f"genuine, downscale it or set {MAX_IMAGE_PIXELS_ENV}=<pixels> to raise the limit."
        )


def max_image_pixels() -> int:
    """The decoded-size limit in pixels: ``$MONAI_MTT_MAX_IMAGE_PIXELS``, else :data:`DEFAULT_MAX_IMAGE_PIXELS`.

    A limit above PIL's own ``Image.MAX_IMAGE_PIXELS`` raises PIL's to match (the user asked for it);
    otherwise PIL's process-wide setting is left alone.
    """
    env = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(float(env))
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f"{MAX_IMAGE_PIXELS_ENV}={env!r} is not a positive number of pixels (e.g. 200000000).")
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit
    return limit


def check_image_pixels(img: Image.Image, path: str | None = None, limit: int | None = None) -> None:
    """Refuse an opened (not yet decoded) image whose header declares more than ``limit`` pixels.

    Raises:
        ImageTooLargeError: naming the file, its size and how to raise the limit.
    """
    limit = max_image_pixels() if limit is None else int(limit)
    w, h = img.size
    if w * h > limit:
        raise ImageTooLargeError(path or getattr(img, "filename", None) or None, (w, h), limit)


def check_image_file(path: str, limit: int | None = None) -> tuple[int, int]:
    """``(width, height)`` from an image file's header, refusing it (before decoding) above ``limit`` pixels.

    Raises:
        ImageTooLargeError: above the limit (also where PIL's own bomb check fires first).
        OSError / PIL.UnidentifiedImageError: not a readable image.
    """
    limit = max_image_pixels() if limit is None else int(limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                check_image_pixels(img, str(path), limit)
                return img.size
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(str(path), _bomb_size(e), limit) from None


def _bomb_size(exc: Exception) -> int:
    """PIL's bomb message names only the pixel count."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    return int(m.group(1)) if m else 0


def _to_8bit(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if arr.dtype.itemsize > 1 or img.mode in ("I", "F", "I;16", "I;16B", "I;16L"):
        arr = arr.astype(np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr)
    return img


def pil_to_rgb(img: Image.Image) -> Image.Image:
    """EXIF-orient and convert any PIL image to 8-bit RGB (16-bit greyscale is scaled, alpha dropped).

    The pixel count is checked against :func:`max_image_pixels` first, before anything is decoded.
    """
    check_image_pixels(img)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB") if img.mode != "RGB" else img


def pil_to_mask(img: Image.Image) -> Image.Image:
    """A mask image to a mode-"L" image with values {0, 1} by the mask rule (:func:`binarize_mask`).

    The pixel count is checked against :func:`max_image_pixels` first, before anything is decoded.

    Raises:
        MaskError: a mask with no binary meaning (naming the file and the fix).
    """
    check_image_pixels(img)
    return Image.fromarray(binarize_mask(img))


def read_binary_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file by the mask rule: ``(H, W)`` uint8 ``{0, 1}`` in the EXIF-displayed orientation.

    Raises:
        ImageTooLargeError: above :func:`max_image_pixels` (checked before decoding).
        MaskError: not a binary mask (see :func:`binarize_mask`).
        OSError / PIL.UnidentifiedImageError: not a readable image.
    """
    try:
        with Image.open(path) as img:
            check_image_pixels(img, str(path))
            return binarize_mask(img, str(path))
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(str(path), _bomb_size(e), max_image_pixels()) from None


class LoadDermoscopyd(MapTransform):
    """Load an RGB dermoscopy image and (optionally) its lesion mask, channel-first.

    ``image_key`` becomes a float32 ``(3, H, W)`` MetaTensor in [0, 1]; ``label_key`` (when present in
    the data, or always with ``allow_missing_keys=False``) a float32 ``(1, H, W)`` MetaTensor in
    {0, 1}. Both keep MONAI's metadata (``filename_or_obj``, ``spatial_shape``...).

    Args:
        image_key: key of the image path.
        label_key: key of the mask path; ``None`` for image-only data.
        allow_missing_keys: tolerate items without a mask (classification-only data).
    """

    def __init__(
        self,
        image_key: str = BatchKeys.IMAGE,
        label_key: str | None = BatchKeys.LABEL,
        allow_missing_keys: bool = True,
    ) -> None:
        keys = [image_key] + ([label_key] if label_key else [])
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.label_key = image_key, label_key
        self._image_reader = PILReader(reverse_indexing=False, converter=pil_to_rgb)
        # LoadImaged takes a reader instance (documented) though it annotates a class: hence the ignores
        self._load_image = LoadImaged(image_key, reader=self._image_reader, image_only=True)  # type: ignore[arg-type]
        self._image_cf = EnsureChannelFirstd(image_key, channel_dim=-1)
        self._load_mask = None
        if label_key:
            self._mask_reader = PILReader(reverse_indexing=False, converter=pil_to_mask)
            self._load_mask = LoadImaged(label_key, reader=self._mask_reader, image_only=True)  # type: ignore[arg-type]
            self._mask_cf = EnsureChannelFirstd(label_key, channel_dim="no_channel")

    @staticmethod
    def _guarded(load: LoadImaged, reader: PILReader, d: dict, key: Hashable) -> dict:
        """``load(d)`` with our PIL reader only: MONAI's fallback to its other readers (which would decode
        what ours refused, e.g. an image above the pixel limit) is not used, and PIL's own
        decompression-bomb refusal is reported as :class:`ImageTooLargeError` naming the file."""
        try:
            return load(d, reader=reader)
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(str(d.get(key)), _bomb_size(e), max_image_pixels()) from None

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, Any]:
        d: dict[Hashable, Any] = dict(data)
        d = self._image_cf(self._guarded(self._load_image, self._image_reader, d, self.image_key))
        d[self.image_key] = d[self.image_key].to(torch.float32) / 255.0
        if self._load_mask is not None and self.label_key in d and d[self.label_key] is not None:
            d = self._mask_cf(self._guarded(self._load_mask, self._mask_reader, d, self.label_key))
            d[self.label_key] = d[self.label_key].to(torch.float32)
        elif self.label_key and not self.allow_missing_keys:
            raise KeyError(f"item {d.get(self.image_key)!r} has no '{self.label_key}' mask path.")
        return d


class EnsureClassd(MapTransform):
    """Give every item an integer ``class`` (``default`` = -1, "unknown", where absent or None).

    MONAI Label's datalists carry no class; -1 lets them batch with labeled items and makes the
    classification loss skip them.
    """

    def __init__(self, keys: KeysCollection = BatchKeys.CLASS, default: int = -1) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.default = default

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d: dict[Hashable, Any] = dict(data)
        for key in self.keys:
            v = d.get(key)
            d[key] = torch.as_tensor(self.default if v is None else int(v), dtype=torch.long)
        return d
