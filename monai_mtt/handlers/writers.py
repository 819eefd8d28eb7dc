"""Evaluation and inference writers: ISIC-2017 metrics reports and per-image prediction files."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from monai.utils import min_version, optional_import

from monai_mtt import CLASS_NAMES
from monai_mtt.data.validation import DataProblem
from monai_mtt.keys import BatchKeys, OutputKeys
from monai_mtt.metrics import (
    BASELINE_NAME,
    ClassificationReport,
    SegmentationReport,
    describe_decision,
    otsu_lesion_mask,
)
from monai_mtt.metrics.report import format_tables, plot_roc, plot_score_histogram
from monai_mtt.utils import nan_to_none, to_numpy
from monai_mtt.visualize import attention_heatmap, concat_images, lesion_panel, overlay_contours, save_png

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["ISICReportWriter", "PredictionWriter", "batch_items", "output_path"]

logger = logging.getLogger(__name__)


def _ids(batch: dict, n: int) -> list[str]:
    ids = batch.get("id")
    if ids is not None:
        return [str(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]
    image = batch.get(BatchKeys.IMAGE)
    meta = getattr(image, "meta", None) or {}
    names = meta.get("filename_or_obj")
    if names is not None:
        names = names if isinstance(names, (list, tuple)) else [names]
        return [Path(str(p)).stem for p in names]
    return [f"case_{i}" for i in range(n)]


def batch_items(engine: Engine) -> list[dict[str, Any]]:
    """Split an :class:`~monai_mtt.engines.MTTEvaluator` batch output into per-image dicts.

    Each dict has ``id``, ``image`` (3, H, W), ``prob`` lesion probability (H, W), ``pred_cls`` (C,),
    ``class`` (int, -1 unknown) and, where available, ``label`` (H, W) and ``attn`` (H, W).
    """
    # ignite annotates State.output and State.batch as Optional[int]; an evaluator's are dicts
    out, batch = cast(dict, engine.state.output), cast(dict, engine.state.batch)
    seg = out[BatchKeys.PRED]
    n = len(seg)
    ids = _ids(batch, n)
    items = []
    for i in range(n):
        item = {
            "id": ids[i],
            BatchKeys.IMAGE: out[BatchKeys.IMAGE][i],
            "prob": seg[i][1],
            "pred_cls": out["pred_cls"][i],
            BatchKeys.CLASS: int(out[BatchKeys.CLASS][i]),
        }
        if out.get(BatchKeys.LABEL) is not None:
            item[BatchKeys.LABEL] = out[BatchKeys.LABEL][i][0]
        if out.get(OutputKeys.ATTN) is not None:
            item[OutputKeys.ATTN] = out[OutputKeys.ATTN][i][0]
        items.append(item)
    return items


def output_path(folder: Path, name: str) -> Path:
    """``folder / name`` for a plain file ``name`` built from a data id; refuses one that would leave ``folder``.

    Raises:
        ValueError: the name has a path separator, is ``.``/``..`` or absolute (e.g. an id ``../../x``).
    """
    if not name or Path(name).name != name or name in (".", "..") or "\\" in name or "\x00" in name:
        raise ValueError(f"id-derived file name {name!r} is not a plain name: it would be written outside {folder}")
    return folder / name


class ISICReportWriter:
    """Score every evaluated image at its original resolution and write the paper-style report.

    Per image: JA, DI, pixel AC/SE/SP and thresholded JA of the predicted mask (lesion probability
    > 0.5) against the ground truth; over the set, melanoma / keratosis (or PH2 melanoma-vs-nevus)
    ACC/SE/SP/AUC, the ACC/SE/SP under ``decision`` (named in ``metrics.json`` and ``metrics.md``). With
    ``baselines``, two methods that learned nothing are scored on the same
    images and printed beside the model: :func:`~monai_mtt.metrics.otsu_lesion_mask` for the masks
    and constant uniform class scores (AUC 0.5, accuracy of calling every case negative) for the
    classes. At completion it writes to ``output_dir``: ``metrics.json`` (means and per-image
    values, ``baselines``), ``metrics.md`` (Tables 3/4 or 5/6 layout, also logged), ``roc.png``,
    ``jaccard_hist.png``, and for the first ``num_overlays`` images with masks
    ``overlays/<id>_overlay.png`` (green truth, red prediction, at the image's size) and
    ``overlays/<id>_panel.png`` (image | outlines | cls-attention heat map when the inferer returns
    attention), all panels stacked in ``overlays.png``.

    Args:
        output_dir: report folder (created).
        protocol: ``"isic2017"`` (3 classes) or ``"ph2"`` (melanoma vs nevus).
        num_overlays: how many images to draw.
        decision: classification decision rule, ``"argmax"`` (default, the paper's) or ``"threshold"``
            (one-vs-rest probability >= 0.5); see :mod:`monai_mtt.metrics.classification`.
        overwrite: replace an existing report; otherwise a folder that already holds
            ``metrics.json`` is refused before the run starts.
        settings: how the predictions were made (e.g. TTA scales, views and ensemble), recorded
            under ``settings`` in ``metrics.json`` and as a line of ``metrics.md``.
        baselines: also score the no-learning baselines.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        protocol: str = "isic2017",
        num_overlays: int = 4,
        overwrite: bool = False,
        decision: str = "argmax",
        settings: Mapping[str, Any] | None = None,
        baselines: bool = True,
    ) -> None:
        describe_decision(decision)  # validates it before any image is evaluated
        self.output_dir = Path(output_dir)
        self.decision = decision
        self.settings = dict(settings or {})
        self.protocol = protocol
        self.num_overlays = num_overlays
        self.overwrite = overwrite
        self.baselines = baselines
        self.results: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Engine) -> None:
        if (self.output_dir / "metrics.json").exists() and not self.overwrite:
            raise FileExistsError(
                f"{self.output_dir / 'metrics.json'} exists: choose another output_dir or pass --overwrite true."
            )
        self.seg = SegmentationReport()
        self.cls = ClassificationReport(self.protocol, decision=self.decision)
        self.base_seg = SegmentationReport()
        self.base_cls = ClassificationReport(self.protocol, decision=self.decision)
        self.panels: list[np.ndarray] = []

    def iteration(self, engine: Engine) -> None:
        for item in batch_items(engine):
            pred = to_numpy(item["prob"]) > 0.5
            if BatchKeys.LABEL in item:
                truth = to_numpy(item[BatchKeys.LABEL]) > 0.5
                self.seg.update(pred, truth, item["id"])
                if self.baselines:
                    self.base_seg.update(otsu_lesion_mask(item[BatchKeys.IMAGE]), truth, item["id"])
                if len(self.panels) < self.num_overlays:
                    try:
                        target = output_path(self.output_dir / "overlays", f"{item['id']}_overlay.png")
                        panel_path = output_path(self.output_dir / "overlays", f"{item['id']}_panel.png")
                    except ValueError as e:
                        logger.warning("overlay not written: %s", e)
                    else:
                        save_png(overlay_contours(item[BatchKeys.IMAGE], truth=truth, pred=pred), target)
                        panel = lesion_panel(
                            item[BatchKeys.IMAGE], truth=truth, pred=pred, attn=item.get(OutputKeys.ATTN)
                        )
                        save_png(panel, panel_path)
                        self.panels.append(panel)
            if item[BatchKeys.CLASS] >= 0:
                probs = to_numpy(item["pred_cls"]).astype(np.float64)  # all classes: the argmax rule needs them
                self.cls.update(probs, [item[BatchKeys.CLASS]], [item["id"]])
                if self.baselines:
                    uniform = np.full(len(to_numpy(item["pred_cls"])), 1.0 / len(to_numpy(item["pred_cls"])))
                    self.base_cls.update(uniform, [item[BatchKeys.CLASS]], [item["id"]])

    def completed(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        results: dict[str, Any] = {"protocol": self.protocol}
        if self.settings:
            results["settings"] = self.settings
        if len(self.seg):
            results["segmentation"] = self.seg.aggregate()
            plot_score_histogram(
                [v["JA"] for v in results["segmentation"]["per_image"].values()], self.output_dir / "jaccard_hist.png"
            )
        if len(self.cls):
            results["classification"] = self.cls.aggregate()
            c = results["classification"]["per_image"]
            probs = np.array([v["probs"] for v in c.values()])
            labels = np.array([v["label"] for v in c.values()])
            if self.protocol == "isic2017":
                plot_roc(probs, labels, self.output_dir / "roc.png")
        if "segmentation" not in results and "classification" not in results:
            raise RuntimeError("nothing was evaluated: the data set has neither masks nor class labels.")
        if self.baselines:
            results["baselines"] = []
            if len(self.base_seg):
                results["baselines"].append({"method": BASELINE_NAME, "segmentation": self.base_seg.aggregate()})
            if len(self.base_cls):
                results["baselines"].append(
                    {"method": "constant scores (no learning)", "classification": self.base_cls.aggregate()}
                )
        if self.panels:
            save_png(concat_images(self.panels, axis=0), self.output_dir / "overlays.png")
        table = format_tables(results, dataset=self.protocol)
        if self.settings:
            table += "\nSettings: " + ", ".join(f"{k} = {v}" for k, v in self.settings.items()) + "\n"
        (self.output_dir / "metrics.md").write_text(table)
        (self.output_dir / "metrics.json").write_text(json.dumps(nan_to_none(results), indent=2))
        self.results = results
        logger.info("evaluation report in %s\n%s", self.output_dir, table)


class PredictionWriter:
    """Write, per image, the mask PNG at the original size and pictures; and a class-probability CSV.

    Files in ``output_dir``: ``<id>_segmentation.png`` (0/255), ``<id>_overlay.png`` (red predicted
    outline), ``<id>_attention.png`` (cls-attention heat map, when the inferer returns attention)
    and ``predictions.csv`` in the ISIC format (``image_id,melanoma,seborrheic_keratosis``) plus a
    ``nevus`` column. Existing outputs are never replaced unless ``overwrite``: the check runs before
    any image is processed and lists every file that would be. An image whose files cannot be
    written is recorded in ``problems`` (its partial files removed) and the others are still
    written; the workflow reports ``problems`` at the end and exits non-zero.

    Args:
        output_dir: output folder (created).
        ids: the ids that will be written (to check for existing outputs up front).
        overwrite: allow replacing existing outputs.
        overlays: also write overlay and attention PNGs.
        class_names: CSV column names in class-index order.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        ids: Sequence[str] = (),
        overwrite: bool = False,
        overlays: bool = True,
        class_names: Sequence[str] = CLASS_NAMES,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.ids = list(ids)
        self.overwrite = overwrite
        self.overlays = overlays
        self.class_names = list(class_names)
        self.rows: list[list[Any]] = []
        self.problems: list[DataProblem] = []

    def targets(self, image_id: str) -> list[Path]:
        names = [f"{image_id}_segmentation.png"]
        if self.overlays:
            names += [f"{image_id}_overlay.png", f"{image_id}_attention.png"]
        return [output_path(self.output_dir, n) for n in names]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Engine) -> None:
        existing = []
        for i in self.ids:
            try:
                existing += [p for p in self.targets(i) if p.exists()]
            except ValueError:  # reported (and not written) when the image comes
                continue
        if (self.output_dir / "predictions.csv").exists():
            existing.append(self.output_dir / "predictions.csv")
        if existing and not self.overwrite:
            listing = "\n  ".join(str(p) for p in existing[:20]) + ("\n  ..." if len(existing) > 20 else "")
            raise FileExistsError(
                f"{len(existing)} output file(s) already exist and would be replaced:\n  {listing}\n"
                "Choose another output_dir, or pass --overwrite true to replace them."
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.rows = []
        self.problems = []

    def iteration(self, engine: Engine) -> None:
        for item in batch_items(engine):
            try:
                self._write(item)
            except (ValueError, OSError, RuntimeError) as e:
                try:
                    for path in self.targets(item["id"]):
                        path.unlink(missing_ok=True)
                except (ValueError, OSError):
                    pass
                self.problems.append(
                    DataProblem(
                        item["id"], f"prediction could not be written ({type(e).__name__}: {e})", "check this image"
                    )
                )
                logger.warning("%s: prediction not written (%s)", item["id"], e)

    def _write(self, item: dict[str, Any]) -> None:
        targets = self.targets(item["id"])
        prob = to_numpy(item["prob"])
        mask = ((prob > 0.5) * 255).astype(np.uint8)
        save_png(mask, targets[0])
        if self.overlays:
            save_png(overlay_contours(item[BatchKeys.IMAGE], pred=mask > 0), targets[1])
            if OutputKeys.ATTN in item:
                save_png(attention_heatmap(item[BatchKeys.IMAGE], item[OutputKeys.ATTN]), targets[2])
        p = to_numpy(item["pred_cls"]).astype(float).tolist()
        self.rows.append([item["id"], *p])

    def completed(self, engine: Engine) -> None:
        idx = {n: i for i, n in enumerate(self.class_names)}
        cols = ["melanoma", "seborrheic_keratosis", "nevus"]
        with open(self.output_dir / "predictions.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image_id", *cols])
            for row in self.rows:
                w.writerow([row[0], *(f"{row[1 + idx[c]]:.6f}" for c in cols)])
        logger.info("wrote %d predictions to %s", len(self.rows), self.output_dir)
