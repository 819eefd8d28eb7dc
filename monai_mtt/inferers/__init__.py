"""Inferers: plain whole-image inference and the paper's multi-scale test-time augmentation."""

from monai_mtt.inferers.tta import TTA_ENSEMBLES, MTTSimpleInferer, MultiScaleTTAInferer, network_probabilities
from monai_mtt.inferers.views import VIEW_TRANSFORMS, VIEWS, apply_view, invert_view

__all__ = [
    "MTTSimpleInferer",
    "MultiScaleTTAInferer",
    "TTA_ENSEMBLES",
    "VIEWS",
    "VIEW_TRANSFORMS",
    "apply_view",
    "invert_view",
    "network_probabilities",
]
