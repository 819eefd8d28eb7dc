"""Engines: the semi-supervised two-stream trainer and the two-output evaluator."""

from monai_mtt.engines.evaluator import MTTEvaluator
from monai_mtt.engines.precision import mixed_precision_pays, resolve_amp
from monai_mtt.engines.trainer import SemiSupervisedTrainer
from monai_mtt.engines.two_stream import TwoStreamLoader

__all__ = ["SemiSupervisedTrainer", "MTTEvaluator", "TwoStreamLoader", "mixed_precision_pays", "resolve_amp"]
