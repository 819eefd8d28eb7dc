"""Inferers: plain whole-image inference and the paper's multi-scale test-time augmentation."""

from monai_mtt.inferers.tta import MTTSimpleInferer, MultiScaleTTAInferer
from monai_mtt.inferers.views import VIEWS, apply_view, invert_view

__all__ = ["MTTSimpleInferer", "MultiScaleTTAInferer", "VIEWS", "apply_view", "invert_view"]
