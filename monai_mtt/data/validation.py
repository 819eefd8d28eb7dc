"""Validation of dermoscopy data sets: every reader collects *all* problems before failing.

A reader builds its datalist, gathers the structural problems it saw (missing label rows, empty
folders, ...) and then calls :func:`validate_items`, which opens every image and mask. The result is
one :class:`DataValidationError` listing every problem as ``path: problem — fix``, so a user can
repair a data set in one go instead of one error per run.

Cost: ``check_pixels=True`` fully decodes every image (the only way to detect a truncated JPEG/PNG)
and every mask (to check that it is binary by the mask rule); on 2 CPU cores that is roughly 10-40 ms per
full-resolution ISIC image. ``check_pixels=False`` reads only file headers (size, mode, EXIF) and
is about 100x faster, but cannot see truncation or non-binary masks.

Validation only ever opens files for reading; it never writes into the data folder.

Image sizes are compared *after* EXIF orientation (``ImageOps.exif_transpose``), which is what the
transforms' loader applies, so an EXIF-rotated JPEG whose mask is stored upright is fine.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from monai_mtt.keys import BatchKeys
from monai_mtt.transforms.io import (
    MAX_IMAGE_PIXELS_ENV,
    ImageTooLargeError,
    _bomb_size,
    check_image_pixels,
    max_image_pixels,
)
from monai_mtt.transforms.mask import MaskError, binarize_mask

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataProblem",
    "DataValidationError",
    "is_image_file",
    "oriented_size",
    "check_image",
    "check_mask",
    "validate_items",
    "raise_for_problems",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
"""File suffixes (lower case) that readers treat as images; everything else is ignored."""

_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


@dataclass(frozen=True)
class DataProblem:
    """One problem found in a data set.

    Args:
        path: the file or folder concerned.
        problem: what is wrong, in words.
        fix: what the user should do about it.
    """

    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} — {self.fix}"


class DataValidationError(Exception):
    """Raised when a data set has problems; the message lists every one of them.

    Args:
        problems: all problems found (at least one).
        what: short description of what was validated, e.g. ``"ISIC-2017 data set at /data/isic"``.

    Attributes:
        problems: the list of :class:`DataProblem`.
    """

    def __init__(self, problems: Sequence[DataProblem], what: str = "data set") -> None:
        self.problems = list(problems)
        self.what = what
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} found in {what}:"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def raise_for_problems(problems: Sequence[DataProblem], what: str) -> None:
    """Raise :class:`DataValidationError` if ``problems`` is not empty.

    Args:
        problems: problems collected so far.
        what: description of the validated data set, used in the message.

    Raises:
        DataValidationError: listing every problem.
    """
    if problems:
        raise DataValidationError(problems, what)


def _link_problem(path: Path, kind: str) -> DataProblem:
    return DataProblem(
        str(path),
        f"{kind} is a broken or looping symbolic link",
        "point the link at the real file, or replace it with the file",
    )


def real_path(path: str | os.PathLike) -> str:
    """The absolute path with links resolved where possible (a broken or looping link stays as it is).

    ``Path.resolve()`` raises on a link loop; this never does, so a reader can list such a file as
    a problem instead of crashing.
    """
    return os.path.realpath(path)


def exit_for_problems(problems: Sequence[DataProblem], what: str) -> None:
    """In a bundle workflow: print every problem and exit with status 2 (no traceback) if there are any.

    ``SystemExit`` passes through MONAI's config evaluation (which wraps other errors in a
    ``RuntimeError`` with a traceback), so ``python -m monai.bundle run`` ends with this message.

    Args:
        problems: problems collected so far.
        what: description of the validated data set, used in the message.
    """
    if problems:
        print(f"error: {DataValidationError(problems, what)}", file=sys.stderr, flush=True)
        raise SystemExit(2)


def index_images(paths: Iterable[Path], problems: list[DataProblem]) -> dict[str, Path]:
    """Image files among ``paths`` by id (file stem); a second file with the same id is a problem."""
    images: dict[str, Path] = {}
    for path in paths:
        if path.is_symlink() and not path.exists():
            if is_image_name(path):
                problems.append(_link_problem(path, "image"))  # listed, not dropped silently
            continue
        if not is_image_file(path):
            continue
        if path.stem in images:
            problems.append(
                DataProblem(
                    str(path), f"duplicate id {path.stem!r}: also {images[path.stem]}", "keep one file per image id"
                )
            )
            continue
        images[path.stem] = path
    return images


def rows_without_images(
    label_ids: Iterable[str], image_ids: Container[str], csv_path: Path, where: str
) -> list[DataProblem]:
    """One problem for every label-CSV row whose image is missing from ``where``."""
    return [
        DataProblem(str(csv_path), f"label row {case_id} has no image {where}", "add the image or delete the row")
        for case_id in label_ids
        if case_id not in image_ids
    ]


def is_image_file(path: Path) -> bool:
    """Whether a directory entry is a dermoscopy image the readers should consider.

    Hidden files (``.DS_Store``, macOS ``._name.jpg`` resource forks), ISIC ``*_superpixels.png``
    files and non-image suffixes (CSV metadata, ``Thumbs.db``, ...) are not.

    Args:
        path: the entry.

    Returns:
        True for a regular, visible file with an image suffix that is not a superpixel map.
    """
    return is_image_name(path) and path.is_file()


def is_image_name(path: Path) -> bool:
    """:func:`is_image_file` from the name alone (visible, image suffix, not a superpixel map)."""
    return (
        not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.stem.endswith("_superpixels")
    )


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an image after ``ImageOps.exif_transpose`` would be applied.

    Args:
        img: an opened PIL image (pixels need not be loaded, except for PNG whose EXIF may follow
            the pixel data, where PIL loads it).

    Returns:
        The displayed size, with width and height swapped for EXIF orientations 5-8.
    """
    width, height = img.size
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF: exif_transpose would ignore it too
        orientation = 1
    if orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def _open_problem(path: Path, exc: BaseException, kind: str) -> DataProblem:
    if isinstance(exc, Image.DecompressionBombError):
        pil_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else max_image_pixels()
        exc = ImageTooLargeError(str(path), _bomb_size(exc), min(pil_limit, max_image_pixels()))
    if isinstance(exc, ImageTooLargeError):
        size = f"{exc.size[0]} x {exc.size[1]}, " if exc.size else ""
        return DataProblem(
            str(path),
            f"{kind} is too large ({size}{exc.pixels / 1e6:.1f} megapixels; the limit is {exc.limit / 1e6:.1f}): "
            "a decompression bomb or a very large scan",
            f"downscale the file, or set {MAX_IMAGE_PIXELS_ENV}=<pixels> if it is genuine",
        )
    if isinstance(exc, UnidentifiedImageError):
        return DataProblem(
            str(path),
            f"{kind} cannot be identified as an image (corrupt, empty or not an image format)",
            "replace it with the original file from the download",
        )
    return DataProblem(
        str(path),
        f"{kind} cannot be decoded ({type(exc).__name__}: {exc}); the file is probably truncated or corrupt",
        "re-download or re-extract this file",
    )


@contextmanager
def _open_checked(path: Path) -> Iterator[tuple[Image.Image, tuple[int, int]]]:
    """Open an image file refused above the pixel limit (before decoding; PIL's own bomb warning silenced)
    and give it with its EXIF-oriented ``(width, height)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            check_image_pixels(img, str(path))
            yield img, oriented_size(img)


def check_image(path: str | Path, *, check_pixels: bool = True) -> tuple[tuple[int, int] | None, list[DataProblem]]:
    """Check that an image file can be opened (and, optionally, fully decoded).

    Greyscale, RGBA, palette, 16-bit and EXIF-rotated images are fine: the loader converts them.
    Images above PIL's decompression-bomb warning threshold (``Image.MAX_IMAGE_PIXELS``, 89 MP by
    default, so a 6000x4000 dermoscope image is fine) are accepted silently; only those above PIL's
    hard limit (twice that) are reported.

    Args:
        path: image file.
        check_pixels: fully decode the pixels, which detects truncated files (slow); otherwise
            read the header only.

    Returns:
        ``(size, problems)`` where ``size`` is the EXIF-oriented ``(width, height)`` or None when
        the file cannot be opened.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return None, [_link_problem(path, "image")]
    if not path.is_file():
        return None, [DataProblem(str(path), "image file does not exist", "restore the file or remove its entry")]
    try:
        with _open_checked(path) as (img, size):
            if check_pixels:
                img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, [_open_problem(path, exc, "image")]
    return size, []


def check_mask(
    path: str | Path,
    image_size: tuple[int, int] | None,
    *,
    image_path: str | Path | None = None,
    check_pixels: bool = True,
) -> list[DataProblem]:
    """Check a segmentation mask: exists, decodes, is binary, and matches its image's size.

    Binary is the loader's and scoring's rule, :func:`monai_mtt.transforms.mask.binarize_mask`
    (e.g. 0/255 or 0/1 PNG, 1-bit BMP as PH2's, 16-bit 0/65535, grey stored as RGB): a mask is a
    problem here exactly when that function refuses it. Sizes are compared after EXIF orientation
    on both sides.

    Args:
        path: mask file.
        image_size: EXIF-oriented ``(width, height)`` of the image, or None to skip the size check.
        image_path: the image this mask belongs to, named in the messages.
        check_pixels: also decode the pixels to check the values (needs a full decode).

    Returns:
        The problems found (empty when the mask is fine).
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return [_link_problem(path, "segmentation mask")]
    if not path.is_file():
        return [
            DataProblem(
                str(path),
                f"segmentation mask is missing{f' for image {image_path}' if image_path else ''}",
                "add the mask (8-bit PNG, 0 = background, 255 = lesion, same size as the image) or drop the image",
            )
        ]
    problems: list[DataProblem] = []
    not_binary = None
    try:
        with _open_checked(path) as (img, size):
            if check_pixels:
                img.load()
                try:
                    binarize_mask(img, str(path))
                except MaskError as exc:
                    not_binary = DataProblem(str(path), f"mask is not binary: {exc.detail}", exc.fix)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return [_open_problem(path, exc, "mask")]
    if image_size is not None and size != image_size:
        problems.append(
            DataProblem(
                str(path),
                f"mask is {size[0]}x{size[1]} but its image{f' {image_path}' if image_path else ''} is "
                f"{image_size[0]}x{image_size[1]} (width x height, after EXIF orientation)",
                "use the mask that belongs to this image, or resize it with nearest-neighbour "
                "interpolation to the image size",
            )
        )
    if not_binary is not None:
        problems.append(not_binary)
    return problems


def validate_items(
    items: Iterable[Mapping[str, Any]],
    *,
    check_pixels: bool = True,
) -> list[DataProblem]:
    """Check the files of datalist items: images decode, masks exist/binary/same size, ids unique.

    Args:
        items: datalist items (``"image"``, optional ``"label"``, optional ``"id"``). Items of
            several splits may be passed together, which also detects ids repeated across splits.
        check_pixels: fully decode images and masks (see the module docstring for the cost).

    Returns:
        Every problem found, in item order (empty when all is fine).
    """
    problems: list[DataProblem] = []
    by_id: dict[str, list[str]] = defaultdict(list)
    for item in items:
        image = item.get(BatchKeys.IMAGE)
        if not image:
            problems.append(
                DataProblem(str(item.get("id", item)), "datalist item has no 'image'", "add the image path")
            )
            continue
        size, image_problems = check_image(image, check_pixels=check_pixels)
        problems += image_problems
        if item.get(BatchKeys.LABEL):
            problems += check_mask(item[BatchKeys.LABEL], size, image_path=image, check_pixels=check_pixels)
        if "id" in item:
            by_id[str(item["id"])].append(str(image))
    for case_id, paths in by_id.items():
        if len(paths) > 1:
            problems.append(
                DataProblem(
                    paths[0],
                    f"duplicate id {case_id!r}: {len(paths)} items share it ({', '.join(paths)})",
                    "keep one file per id (remove copies in other formats or splits)",
                )
            )
    return problems
