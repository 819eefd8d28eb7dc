"""Inferers: plain whole-image inference and the paper's multi-scale test-time augmentation."""

from monai_mtt.inferers.tta import TTA_ENSEMBLES, MTTSimpleInferer, MultiScaleTTAInferer
from monai_mtt.inferers.views import VIEWS, apply_view, invert_view

__all__ = ["MTTSimpleInferer", "MultiScaleTTAInferer", "TTA_ENSEMBLES", "VIEWS", "apply_view", "invert_view"]
