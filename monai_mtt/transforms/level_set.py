"""The ground-truth level-set function of eq. (4), built on MONAI's unsigned distance transform."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import DistanceTransformEDT, MapTransform, Transform
from monai.utils import convert_to_dst_type, ensure_tuple
from scipy.ndimage import binary_erosion

from monai_mtt.keys import BatchKeys
from monai_mtt.utils import to_numpy

__all__ = ["LevelSet", "LevelSetd"]


class LevelSet(Transform):
    """Signed, normalised level set of a binary mask: negative inside, 0 on the boundary, positive outside.

    Inside pixels get ``-d_in / max(d_in)``, outside pixels ``d_out / max(d_out)``, where ``d_in`` is
    the Euclidean distance of a lesion pixel to the nearest background pixel and ``d_out`` that of a
    background pixel to the nearest lesion pixel (MONAI's ``DistanceTransformEDT``, channel-wise).
    The inner boundary (lesion pixels touching the background) is set to 0. Each side is therefore in
    [-1, 0] and (0, 1], the range of the network's tanh head. An empty mask gives all +1, a full mask
    all -1: never NaN.

    Input: a ``(C, H, W)`` (or ``(C, H, W, D)``) mask, non-zero = lesion. Output: float32, same shape.
    """

    def __init__(self) -> None:
        self.edt = DistanceTransformEDT()

    def __call__(self, mask: NdarrayOrTensor) -> NdarrayOrTensor:
        m = to_numpy(mask) > 0.5
        out = np.empty(m.shape, dtype=np.float32)
        for c in range(m.shape[0]):
            out[c] = self._one(m[c])
        result, *_ = convert_to_dst_type(
            out, mask, dtype=torch.float32 if isinstance(mask, torch.Tensor) else np.float32
        )
        return result

    def _one(self, fg: np.ndarray) -> np.ndarray:
        if not fg.any():
            return np.ones(fg.shape, np.float32)
        if fg.all():
            return -np.ones(fg.shape, np.float32)
        d_in = np.asarray(self.edt(fg[None].astype(np.float32)))[0]  # lesion pixels: distance to background
        d_out = np.asarray(self.edt((~fg)[None].astype(np.float32)))[0]  # background: distance to lesion
        lsf = d_out / d_out.max() - d_in / d_in.max()
        inner_boundary = fg & ~binary_erosion(fg, border_value=1)
        lsf[inner_boundary] = 0.0
        return lsf.astype(np.float32)


class LevelSetd(MapTransform):
    """Dictionary wrapper of :class:`LevelSet`: writes the level set of ``keys`` to ``output_keys``.

    Args:
        keys: mask keys (``"label"``).
        output_keys: where to write the level sets (``"lsf"``), one per key.
        allow_missing_keys: skip items without a mask (classification-only data).
    """

    def __init__(
        self,
        keys: KeysCollection = BatchKeys.LABEL,
        output_keys: KeysCollection = BatchKeys.LSF,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = list(ensure_tuple(output_keys))
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"one output key per mask key: {self.keys} vs {self.output_keys}.")
        self.level_set = LevelSet()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, out_key in self.key_iterator(d, self.output_keys):
            lsf = self.level_set(d[key])
            if isinstance(lsf, MetaTensor) and hasattr(d[key], "meta"):
                lsf = lsf.as_tensor()
            d[out_key] = lsf
        return d
