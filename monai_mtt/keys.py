"""The one definition of the names that travel between modules: network outputs and batch entries.

Like MONAI's ``CommonKeys`` and its multi-branch output enums, these are ``StrEnum`` members, so
``out[OutputKeys.SEG]`` and ``out["seg"]`` are the same lookup and config files may keep the plain
strings.
"""

from __future__ import annotations

from monai.utils import StrEnum

__all__ = ["OutputKeys", "BatchKeys"]


class OutputKeys(StrEnum):
    """Entries of the dict :meth:`monai_mtt.networks.MTTransUNet.forward` returns.

    * ``SEG``: mask logits ``(B, 2, H, W)`` (after an inferer: probabilities).
    * ``LSF``: level-set function ``(B, 1, H, W)`` in (-1, 1).
    * ``CLS``: class logits ``(B, C)`` (after an inferer: probabilities).
    * ``ATTN``: the cls token's attention over the segmentation tokens ``(B, H/16, W/16)``.
    """

    SEG = "seg"
    LSF = "lsf"
    CLS = "cls"
    ATTN = "attn"


class BatchKeys(StrEnum):
    """Entries of a data dictionary / batch, as the transforms, trainer, losses and writers use them.

    * ``IMAGE``: RGB image ``(3, H, W)``; ``LABEL``: binary mask ``(1, H, W)``;
    * ``LSF``: ground-truth level set ``(1, H, W)`` (from :class:`~monai_mtt.transforms.LevelSetd`);
    * ``CLASS``: class index (0 nevus, 1 melanoma, 2 seborrheic keratosis; -1 unknown);
    * ``PRED``: an engine's mask prediction (MONAI's ``CommonKeys.PRED``).
    """

    IMAGE = "image"
    LABEL = "label"
    LSF = "lsf"
    CLASS = "class"
    PRED = "pred"
