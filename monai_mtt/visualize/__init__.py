"""Pictures people look at: contour overlays and cls-attention heat maps."""

from monai_mtt.visualize.overlay import (
    attention_heatmap,
    concat_images,
    contour,
    lesion_panel,
    overlay_contours,
    save_png,
    to_uint8_rgb,
)

__all__ = [
    "overlay_contours",
    "attention_heatmap",
    "concat_images",
    "contour",
    "lesion_panel",
    "to_uint8_rgb",
    "save_png",
]
