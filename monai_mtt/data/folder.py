"""A plain folder of images to predict on (no labels), with the bad files listed, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

from monai_mtt.data.validation import DataProblem, check_image, is_image_file, is_image_name
from monai_mtt.keys import BatchKeys

__all__ = ["read_image_folder"]


def read_image_folder(input_dir: str | os.PathLike, check_pixels: bool = True) -> tuple[list[dict], list[DataProblem]]:
    """Items ``{"image", "id"}`` for every readable image directly in ``input_dir``, and the problems.

    Unreadable, truncated or non-image files with an image suffix are returned as problems so the
    caller can process the good files and report the bad ones. A missing or empty folder is a
    problem too.

    Args:
        input_dir: folder of JPEG/PNG/BMP/TIFF images.
        check_pixels: fully decode each image (detects truncated files).

    Returns:
        ``(items, problems)``, items sorted by file name.
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        return [], [DataProblem(str(folder), "is not a folder", "pass --input_dir pointing at a folder of images")]
    items, problems = [], []
    seen: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink() and not path.exists() and is_image_name(path):
            problems.extend(check_image(path)[1])  # a broken or looping link: listed, not dropped
            continue
        if not path.is_file() or not is_image_file(path):
            continue
        _, found = check_image(path, check_pixels=check_pixels)
        if found:
            problems.extend(found)
            continue
        if path.stem in seen:
            problems.append(
                DataProblem(str(path), f"has the same id as {seen[path.stem].name}", "rename one of the two files")
            )
            continue
        seen[path.stem] = path
        items.append({BatchKeys.IMAGE: str(path.resolve()), "id": path.stem})
    if not items and not problems:
        problems.append(DataProblem(str(folder), "holds no images (.jpg, .png, .bmp, .tif)", "check --input_dir"))
    return items, problems
