"""Transforms: loading, the level-set target (eq. 4) and the paper's augmentation."""

from monai_mtt.transforms.augment import RandMultiScaleCropd
from monai_mtt.transforms.io import EnsureClassd, LoadDermoscopyd, pil_to_mask, pil_to_rgb
from monai_mtt.transforms.level_set import LevelSet, LevelSetd

__all__ = [
    "LoadDermoscopyd",
    "EnsureClassd",
    "pil_to_rgb",
    "pil_to_mask",
    "LevelSet",
    "LevelSetd",
    "RandMultiScaleCropd",
]
