"""Training augmentation of section 4.3: the multi-scale centre crop (flips are MONAI's ``RandFlipd``)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform, RandScaleCropd, SpatialCrop

__all__ = ["RandMultiScaleCropd", "AUTHORS_MARGIN_STEP"]

AUTHORS_MARGIN_STEP = 30.0 / 896.0
"""The authors' 30 px margin step relative to the mean side ``(W + H) / 2`` of a 1024x768 ISIC image."""


class RandMultiScaleCropd(RandomizableTransform, MapTransform):
    """With probability ``prob`` crop a centred window off every key alike (paper: "crop the images
    from the central at multiple scales").

    The same draw applies to all keys, so image, mask and level set stay aligned; resize to the
    training size afterwards (``Resized``, bilinear/area for images, nearest for masks). Two modes:

    * ``"authors"`` (default, the authors' ``dataset.py``): cut the same margin ``m`` off every side,
      ``m = round(k · margin_step · s)`` pixels with ``s = (W + H) / 2`` the mean side of the image at
      hand and ``k`` uniform in ``{1, ..., K}``, ``K`` the number of multiples of ``margin_step`` strictly
      below ``max_margin``. The authors cut ``m ∈ {30, 60, ...} px < (W + H) / 8`` off the original
      image; ``(W + H) / 8 = s / 4`` gives ``max_margin = 1/4``, and ``margin_step = 30 / 896``
      (:data:`AUTHORS_MARGIN_STEP`) is their 30 px on a 1024x768 ISIC image, where the draws are
      exactly theirs (30, 60, ..., 210 px). On larger originals their fixed 30 px step is finer
      relative to the image (more, smaller steps up to the same cap); set ``margin_step = 30 / s``
      to match a given size ``s``. On a square image every side keeps ``1 - 2 k · margin_step``:
      with the defaults between 0.53 (k = 7) and 0.97 (k = 1). Applied to an image already resized
      to a square (the bundle crops its cached ``image_size · cache_scale`` copy), the margin is
      relative to that square; the authors crop the original, so their short side loses relatively
      more.
    * ``"centred_scale"``: keep a random fraction in ``[min_scale, 1]`` of each side, centred
      (``RandScaleCropd`` with ``random_size``).

    Args:
        keys: keys to crop together (``["image", "label"]``).
        prob: probability of cropping (0.5).
        mode: ``"authors"`` or ``"centred_scale"``.
        margin_step: ``"authors"``: the margin step as a fraction of the mean side.
        max_margin: ``"authors"``: the exclusive margin cap as a fraction of the mean side, in (0, 0.5).
        min_scale: ``"centred_scale"``: smallest kept fraction of each side (0.75).
        allow_missing_keys: tolerate items without a mask.
    """

    modes = ("authors", "centred_scale")

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        mode: str = "authors",
        margin_step: float = AUTHORS_MARGIN_STEP,
        max_margin: float = 0.25,
        min_scale: float = 0.75,
        allow_missing_keys: bool = True,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)
        if mode not in self.modes:
            raise ValueError(f"mode (crop_mode) must be one of {self.modes}, got {mode!r}.")
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}.")
        if not 0 < max_margin < 0.5:
            raise ValueError(f"max_margin must be in (0, 0.5) (a fraction of the mean side), got {max_margin}.")
        if not 0 < margin_step < max_margin:
            raise ValueError(f"margin_step must be in (0, max_margin={max_margin}), got {margin_step}.")
        self.mode = mode
        self.margin_step = margin_step
        self.max_margin = max_margin
        # k · step < max_margin, k >= 1 (exclusive like the authors' range(30, cap, 30))
        self.num_margins = math.ceil(max_margin / margin_step - 1e-9) - 1
        self._k = 0
        self.cropper = RandScaleCropd(
            keys,
            roi_scale=min_scale,
            max_roi_scale=1.0,
            random_center=False,
            random_size=True,
            allow_missing_keys=allow_missing_keys,
        )

    def set_random_state(self, seed=None, state=None):
        super().set_random_state(seed, state)
        self.cropper.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if self._do_transform and self.mode == "authors":
            self._k = int(self.R.randint(1, self.num_margins + 1))

    def margin(self, height: int, width: int) -> int:
        """The margin in pixels cut off every side of a ``height`` x ``width`` image for the current draw."""
        m = math.floor(self._k * self.margin_step * (height + width) / 2 + 0.5)
        return min(m, (min(height, width) - 1) // 2)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize(None)
        if not self._do_transform:
            return dict(data)
        if self.mode == "centred_scale":
            return self.cropper(data)
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        height, width = d[keys[0]].shape[-2:]
        m = self.margin(int(height), int(width))
        crop = SpatialCrop(roi_start=(m, m), roi_end=(int(height) - m, int(width) - m))
        for key in keys:
            if tuple(d[key].shape[-2:]) != (height, width):
                raise ValueError(
                    f"RandMultiScaleCropd: '{key}' is {tuple(d[key].shape[-2:])} but '{keys[0]}' is "
                    f"{(int(height), int(width))}; crop keys must share one spatial size."
                )
            d[key] = crop(d[key])
        return d
