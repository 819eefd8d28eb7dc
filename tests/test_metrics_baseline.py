"""The no-learning Otsu baseline on hand-made images with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_mtt.metrics import otsu_lesion_mask, otsu_threshold


def test_otsu_threshold_separates_two_levels() -> None:
    values = np.array([50.0] * 300 + [200.0] * 700)
    t = otsu_threshold(values)
    assert 50.0 < t <= 200.0  # "values < t" is exactly the darker level
    assert ((values < t) == (values == 50.0)).all()
    # two noisy modes: the threshold lies in the gap and splits them (nearly) perfectly
    rng = np.random.default_rng(0)
    low, high = rng.normal(60, 5, 4000), rng.normal(180, 5, 6000)
    t = otsu_threshold(np.concatenate([low, high]))
    assert (low < t).mean() > 0.99 and (high >= t).all()
    assert otsu_threshold(np.full(10, 7.0)) == 7.0


def test_largest_dark_component_with_holes_filled() -> None:
    """Skin at 200, a dark disc (60) with a bright hole (200) inside, and a smaller dark square apart."""
    h, w = 64, 80
    yy, xx = np.mgrid[:h, :w]
    grey = np.full((h, w), 200.0)
    disc = (yy - 30) ** 2 + (xx - 30) ** 2 <= 14**2
    grey[disc] = 60.0
    hole = (yy - 30) ** 2 + (xx - 30) ** 2 <= 3**2
    grey[hole] = 200.0
    grey[5:10, 65:70] = 40.0  # darker, but smaller: not the lesion
    expected = disc.copy()  # the hole filled in, the square left out
    rgb = np.repeat(grey[..., None], 3, axis=-1)

    assert (otsu_lesion_mask(grey) == expected).all()
    assert (otsu_lesion_mask(rgb.astype(np.uint8)) == expected).all()  # (H, W, 3) uint8
    chw = torch.as_tensor(np.moveaxis(rgb, -1, 0) / 255.0, dtype=torch.float32)  # (3, H, W) in [0, 1]
    assert (otsu_lesion_mask(chw) == expected).all()


def test_diagonal_touching_pixels_are_one_component_and_constant_image_is_empty() -> None:
    grey = np.full((20, 20), 255.0)
    grey[4:8, 4:8] = 0.0
    grey[8:12, 8:12] = 0.0  # touches the first block only at a corner (8-connectivity)
    grey[15:18, 1:4] = 0.0  # 9 pixels, apart
    mask = otsu_lesion_mask(grey)
    assert mask.sum() == 32 and mask[4:12, 4:12].sum() == 32
    assert not otsu_lesion_mask(np.full((8, 8, 3), 90, dtype=np.uint8)).any()
    with pytest.raises(ValueError, match="image"):
        otsu_lesion_mask(np.zeros((2, 3, 4, 5)))

