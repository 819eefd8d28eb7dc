"""Deploy operator that reads the input images: one SDK ``Image`` per readable file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.deploy.core import Fragment, Image, Operator, OperatorSpec
from PIL import Image as PILImage

from monai_mtt.apps.deploy.report import RunReport

__all__ = ["DermoscopyLoaderOperator", "load_rgb", "scan_inputs"]


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of an image file, exactly as the bundle's ``LoadDermoscopyd`` reads them."""
    from monai_mtt.transforms import pil_to_rgb

    with PILImage.open(path) as img:
        img.load()
        return np.ascontiguousarray(np.asarray(pil_to_rgb(img), dtype=np.uint8))


def scan_inputs(input_path: str | os.PathLike, report: RunReport) -> list[dict[str, str]]:
    """Items ``{"image", "id"}`` for a folder of images (or one image file); problems go to ``report``."""
    from monai_mtt.data import check_image, read_image_folder

    path = Path(input_path)
    if path.is_file():
        _, problems = check_image(path)
        items = [] if problems else [{"image": str(path.resolve()), "id": path.stem}]
    else:
        items, problems = read_image_folder(path)
    for p in problems:
        report.bad(p.path, f"{p.problem} ({p.fix})")
    return items


class DermoscopyLoaderOperator(Operator):
    """Source: one SDK ``Image`` per tick, ``(H, W, 3)`` uint8 RGB, metadata ``image_id``, ``filename_or_obj``.

    The array is in the file's own row/column order (EXIF orientation applied, greyscale / RGBA / 16-bit
    converted as :func:`monai_mtt.transforms.pil_to_rgb` does, so the pixels equal those the bundle's
    ``LoadDermoscopyd`` reads). Construct with a ``CountCondition(fragment, len(items))``. A file that
    fails to load is recorded in ``report`` and the next one is tried in the same tick.

    Output port ``image``.
    """

    def __init__(self, fragment: Fragment, *args, items: Sequence[dict[str, str]], report: RunReport, **kwargs):
        self.items = list(items)
        self.report = report
        self._next = 0
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.output("image")

    def compute(self, op_input, op_output, context):
        while self._next < len(self.items):
            item = self.items[self._next]
            self._next += 1
            try:
                arr = load_rgb(item["image"])
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
                self.report.bad(item["image"], f"cannot be read: {exc}", item["id"])
                continue
            meta = {
                "image_id": item["id"],
                "filename_or_obj": item["image"],
                "spatial_shape": np.asarray(arr.shape[:2]),
                "original_channel_dim": -1,
            }
            op_output.emit(Image(arr, metadata=meta), "image")
            return
