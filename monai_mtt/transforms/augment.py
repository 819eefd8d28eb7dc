"""Training augmentation of section 4.3: the multi-scale centre crop (flips are MONAI's ``RandFlipd``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform, RandScaleCropd

__all__ = ["RandMultiScaleCropd"]


class RandMultiScaleCropd(RandomizableTransform, MapTransform):
    """With probability ``prob`` crop a centred window of random scale off every key alike.

    The window keeps a random fraction in ``[min_scale, 1]`` of each side (the same draw for all
    keys, so image, mask and level set stay aligned); resize to the training size afterwards
    (``Resized``, bilinear/area for images, nearest for masks). The paper: "crop the images from the
    central at multiple scales"; the authors' code removes a margin of up to 90 px per side.

    Args:
        keys: keys to crop together (``["image", "label"]``).
        prob: probability of cropping (0.5).
        min_scale: smallest kept fraction of each side (0.75).
        allow_missing_keys: tolerate items without a mask.
    """

    def __init__(
        self, keys: KeysCollection, prob: float = 0.5, min_scale: float = 0.75, allow_missing_keys: bool = True
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}.")
        self.cropper = RandScaleCropd(
            keys, roi_scale=min_scale, max_roi_scale=1.0, random_center=False, random_size=True,
            allow_missing_keys=allow_missing_keys,
        )

    def set_random_state(self, seed=None, state=None):
        super().set_random_state(seed, state)
        self.cropper.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        self.randomize(None)
        if not self._do_transform:
            return dict(data)
        return self.cropper(data)
