"""Deploy operator that writes one image's results: ``<id>_segmentation.png`` and ``<id>.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from monai.deploy.core import Fragment, Operator, OperatorSpec
from PIL import Image as PILImage

from monai_mtt.apps.deploy.report import RunReport

__all__ = ["DermoscopyWriterOperator"]


class DermoscopyWriterOperator(Operator):
    """Write ``<id>_segmentation.png`` (0/255, the image's size) and ``<id>.json``; record the summary row.

    Input ports ``pred`` (SDK ``Image`` mask) and ``class_probabilities`` (dict).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: str | os.PathLike, report: RunReport, **kwargs):
        self.output_folder = Path(output_folder)
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("pred")
        spec.input("class_probabilities")

    def compute(self, op_input, op_output, context):
        pred = op_input.receive("pred")
        result = op_input.receive("class_probabilities")
        meta = pred.metadata()
        image_id = result["image_id"]
        path = meta.get("filename_or_obj", image_id)
        try:
            mask = np.asarray(pred.asnumpy())
            h, w = mask.shape
            self.output_folder.mkdir(parents=True, exist_ok=True)
            seg_file = self.output_folder / f"{image_id}_segmentation.png"
            PILImage.fromarray((mask > 0).astype(np.uint8) * 255).save(seg_file)
            record = {
                "image_id": image_id,
                "file": str(path),
                "width": int(w),
                "height": int(h),
                "segmentation": seg_file.name,
                "lesion_pixels": int((mask > 0).sum()),
                **{k: result[k] for k in ("probabilities", "predicted_class", "predicted_index", "model_version")},
            }
            (self.output_folder / f"{image_id}.json").write_text(json.dumps(record, indent=2) + "\n")
        except Exception as exc:  # noqa: BLE001
            self.report.bad(path, f"writing the results failed: {exc}", image_id)
            return
        row = {k: v for k, v in record.items() if k not in ("probabilities", "segmentation", "predicted_index")}
        row.update(result["probabilities"])
        self.report.ok(image_id, row)
