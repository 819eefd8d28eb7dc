"""Evaluation metrics of MT-TransUNet: ISIC 2017 / PH2 segmentation and classification scores,
paper-style result tables and ROC plots. The ``monai-mtt score`` command lives in
:mod:`monai_mtt.metrics.scoring` (not imported here).

Segmentation scores follow the ISIC 2017 challenge (per-image scores at the original resolution,
averaged over images); classification scores follow ISIC 2017 Part 3 (melanoma vs rest and
seborrheic keratosis vs rest) and the paper's two-class PH2 protocol.
"""

from __future__ import annotations

from .baseline import BASELINE_NAME, otsu_lesion_mask, otsu_threshold
from .classification import (
    CLASS_NAMES,
    DECISION_RULES,
    ISIC2017_CLASSIFICATION_KEYS,
    PH2_CLASSIFICATION_KEYS,
    ClassificationReport,
    binary_classification_scores,
    describe_decision,
    isic2017_classification_scores,
    ph2_classification_scores,
    roc_auc,
    roc_curve,
    undefined_notes,
)
from .report import (
    METHOD_NAME,
    RocSeries,
    format_classification_table,
    format_segmentation_table,
    format_tables,
    plot_roc,
    plot_score_histogram,
    roc_series,
)
from .segmentation import (
    JACCARD_THRESHOLD,
    SEGMENTATION_KEYS,
    SegmentationReport,
    as_binary_mask,
    confusion_counts,
    scores_from_counts,
    segmentation_scores,
)

__all__ = [
    "BASELINE_NAME",
    "CLASS_NAMES",
    "DECISION_RULES",
    "describe_decision",
    "ISIC2017_CLASSIFICATION_KEYS",
    "PH2_CLASSIFICATION_KEYS",
    "ClassificationReport",
    "binary_classification_scores",
    "isic2017_classification_scores",
    "ph2_classification_scores",
    "roc_auc",
    "roc_curve",
    "undefined_notes",
    "METHOD_NAME",
    "RocSeries",
    "format_classification_table",
    "format_segmentation_table",
    "format_tables",
    "plot_roc",
    "plot_score_histogram",
    "roc_series",
    "JACCARD_THRESHOLD",
    "SEGMENTATION_KEYS",
    "SegmentationReport",
    "as_binary_mask",
    "otsu_lesion_mask",
    "otsu_threshold",
    "confusion_counts",
    "scores_from_counts",
    "segmentation_scores",
]
