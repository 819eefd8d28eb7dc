"""Report pictures: the per-image panel (image | outlines | attention)."""

from __future__ import annotations

import numpy as np

from monai_mtt.visualize import lesion_panel
from monai_mtt.visualize.overlay import TRUTH_COLOUR


def test_lesion_panel_places_image_outlines_and_attention_side_by_side() -> None:
    image = np.full((10, 12, 3), 100, dtype=np.uint8)
    truth = np.zeros((10, 12), bool)
    truth[2:8, 3:9] = True
    attn = np.zeros((10, 12))
    attn[0, 0] = 1.0
    panel = lesion_panel(image, truth=truth, pred=None, attn=attn, gap=2)
    assert panel.shape == (10, 3 * 12 + 2 * 2, 3)
    assert (panel[:, :12] == 100).all() and (panel[:, 12:14] == 255).all()  # the image, then a white gap
    outline = panel[:, 14:26]
    assert (outline[2, 3] == TRUTH_COLOUR).all() and (outline[5, 5] == 100).all()  # outline only, inside kept
    assert not (panel[:, 28:] == 100).all()  # the heat map is blended in
    assert lesion_panel(image, truth=truth).shape == (10, 2 * 12 + 4, 3)  # no attention: two pictures
