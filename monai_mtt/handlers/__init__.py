"""Ignite handlers: loss schedules (DTC ramp, ARC switch), crash-safe checkpoints, learning curve,
metric transforms."""

from monai_mtt.handlers.checkpoint import BestCheckpoint, LatestCheckpoint, atomic_save
from monai_mtt.handlers.learning_curve import CURVE_PANELS, LearningCurve
from monai_mtt.handlers.run_dir import claim_output_dir
from monai_mtt.handlers.schedules import ARCHandler, DTCRampHandler
from monai_mtt.handlers.transforms import one_vs_rest
from monai_mtt.handlers.writers import ISICReportWriter, PredictionWriter, batch_items

__all__ = [
    "DTCRampHandler",
    "ARCHandler",
    "LatestCheckpoint",
    "BestCheckpoint",
    "atomic_save",
    "one_vs_rest",
    "LearningCurve",
    "CURVE_PANELS",
    "ISICReportWriter",
    "PredictionWriter",
    "batch_items",
    "claim_output_dir",
]
