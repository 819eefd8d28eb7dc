"""Per-image lesion segmentation scores as defined by the ISIC 2017 challenge (Part 1).

The ISIC 2017 segmentation task scores every test image separately on its binary mask at the
**original image resolution** and then averages the per-image scores over the test set
(Codella et al., arXiv:1710.05006). With ``TP, FP, TN, FN`` the pixel counts of one image:

=================  ======================================  ==========================================
key                definition                              MONAI name (``compute_confusion_matrix_metric``)
=================  ======================================  ==========================================
``JA``             ``TP / (TP + FP + FN)``  (Jaccard)       ``"threat score"``
``DI``             ``2TP / (2TP + FP + FN)``  (Dice)        ``"f1 score"``
``AC``             ``(TP + TN) / (TP + FP + TN + FN)``     ``"accuracy"``
``SE``             ``TP / (TP + FN)``                      ``"sensitivity"``
``SP``             ``TN / (TN + FP)``                      ``"specificity"``
``JA_thresholded`` ``JA`` if ``JA >= 0.65`` else ``0``     (ISIC 2018 "thresholded Jaccard")
=================  ======================================  ==========================================

Conventions for the cases where a denominator is zero (MONAI returns NaN there; these scores
never do, so that means over a test set stay defined):

* both masks empty (``TP + FP + FN == 0``): ``JA = DI = 1`` (a perfect prediction of "no lesion");
* empty truth (``TP + FN == 0``): ``SE = 1`` (there is no lesion pixel that could be missed),
  whatever the prediction; false positives are still penalised by ``JA``, ``DI``, ``AC`` and ``SP``;
* truth covering the whole image (``TN + FP == 0``): ``SP = 1`` by the same reasoning;
* ``AC`` is always defined because a mask has at least one pixel (an empty array is an error).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, Union

import numpy as np
import torch
from monai.metrics import compute_confusion_matrix_metric

from monai_mtt.transforms.mask import binary_levels
from monai_mtt.utils import to_numpy

__all__ = [
    "SEGMENTATION_KEYS",
    "JACCARD_THRESHOLD",
    "MaskLike",
    "as_binary_mask",
    "confusion_counts",
    "scores_from_counts",
    "segmentation_scores",
    "SegmentationReport",
]

MaskLike = Union[np.ndarray, torch.Tensor]

#: Keys of the dictionaries returned by :func:`segmentation_scores`, in report order.
SEGMENTATION_KEYS: tuple[str, ...] = ("JA", "DI", "AC", "SE", "SP", "JA_thresholded")

#: Per-image Jaccard below this value counts as 0 in ``JA_thresholded``.
JACCARD_THRESHOLD: float = 0.65

# key -> MONAI confusion-matrix metric name giving its definition
_MONAI_NAMES: dict[str, str] = {
    "JA": "threat score",
    "DI": "f1 score",
    "AC": "accuracy",
    "SE": "sensitivity",
    "SP": "specificity",
}


def as_binary_mask(mask: MaskLike, name: str = "mask") -> np.ndarray:
    """Convert a 2D binary mask given in any of the usual encodings to a boolean ``HxW`` array.

    Accepted encodings: ``bool``; numbers whose distinct values are a subset of ``{0, 1}``
    (any dtype, e.g. ``0.0/1.0``); numbers whose distinct values are a subset of ``{0, 255}``
    (8-bit PNG masks): the levels part of the package's mask rule,
    :func:`monai_mtt.transforms.mask.binary_levels`. Non-zero means lesion. A single leading or
    trailing channel axis of size 1 (``1xHxW``, ``HxWx1``, ``1x1xHxW``) is squeezed.

    Args:
        mask: numpy array or torch tensor.
        name: what to call the mask in error messages (e.g. ``"pred"`` or a file name).

    Returns:
        a boolean numpy array of shape ``(H, W)``.

    Raises:
        ValueError: if the mask is not 2D after squeezing singleton channel axes, is empty, or holds
            values other than the two levels of one of the accepted encodings.
    """
    arr = to_numpy(mask)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2D HxW mask, got shape {tuple(np.shape(mask))}.")
    if arr.size == 0:
        raise ValueError(f"{name}: mask is empty (shape {tuple(arr.shape)}).")
    return binary_levels(arr, 255, name)


def confusion_counts(pred: MaskLike, truth: MaskLike) -> tuple[int, int, int, int]:
    """Count the pixel-wise confusion matrix of one predicted mask against its ground truth.

    Args:
        pred: predicted mask (see :func:`as_binary_mask` for accepted encodings).
        truth: ground-truth mask of the same ``HxW`` size.

    Returns:
        ``(TP, FP, TN, FN)`` as Python ints (same order as ``monai.metrics.get_confusion_matrix``).

    Raises:
        ValueError: if either input is not a binary mask or the two sizes differ.
    """
    p = as_binary_mask(pred, "pred")
    t = as_binary_mask(truth, "truth")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and truth masks differ in size: pred has shape {tuple(p.shape)} (HxW), "
            f"truth has shape {tuple(t.shape)} (HxW); score at the original resolution of the truth."
        )
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    tn = int(p.size) - tp - fp - fn
    return tp, fp, tn, fn


def scores_from_counts(
    tp: int, fp: int, tn: int, fn: int, jaccard_threshold: float = JACCARD_THRESHOLD
) -> dict[str, float]:
    """Segmentation scores from pixel counts, with the edge-case conventions of this module.

    Args:
        tp: true-positive pixels.
        fp: false-positive pixels.
        tn: true-negative pixels.
        fn: false-negative pixels.
        jaccard_threshold: per-image Jaccard below this counts as 0 in ``JA_thresholded``.

    Returns:
        dict with the keys of :data:`SEGMENTATION_KEYS`, plain Python floats in ``[0, 1]``.
    """
    if min(tp, fp, tn, fn) < 0 or tp + fp + tn + fn == 0:
        raise ValueError(f"invalid pixel counts TP={tp} FP={fp} TN={tn} FN={fn}.")
    cm = torch.tensor([tp, fp, tn, fn], dtype=torch.float64)
    out: dict[str, float] = {}
    for key, monai_name in _MONAI_NAMES.items():
        out[key] = float(compute_confusion_matrix_metric(monai_name, cm).reshape(-1)[0])
    # zero-denominator conventions (MONAI gives NaN there)
    if tp + fp + fn == 0:
        out["JA"] = out["DI"] = 1.0
    if tp + fn == 0:
        out["SE"] = 1.0
    if tn + fp == 0:
        out["SP"] = 1.0
    out["JA_thresholded"] = out["JA"] if out["JA"] >= jaccard_threshold else 0.0
    return {k: out[k] for k in SEGMENTATION_KEYS}


def segmentation_scores(
    pred: MaskLike, truth: MaskLike, jaccard_threshold: float = JACCARD_THRESHOLD
) -> dict[str, float]:
    """ISIC 2017 segmentation scores of one image.

    Args:
        pred: predicted binary mask, ``HxW`` numpy array or torch tensor (bool, 0/1 or 0/255).
        truth: ground-truth binary mask of the same size, at the original image resolution.
        jaccard_threshold: per-image Jaccard below this counts as 0 in ``JA_thresholded``
            (0.65 in the ISIC challenges).

    Returns:
        ``{"JA", "DI", "AC", "SE", "SP", "JA_thresholded"}`` as floats in ``[0, 1]``; see the module
        docstring for definitions and the empty-mask conventions.

    Raises:
        ValueError: if a mask is not binary or the two sizes differ (the message names both shapes).
    """
    return scores_from_counts(*confusion_counts(pred, truth), jaccard_threshold=jaccard_threshold)


class SegmentationReport:
    """Accumulate per-image segmentation scores over an evaluation set of images of varying size.

    Each image is scored when it is added (so only six floats per image are kept, not the masks)
    and the set score is the unweighted mean of the per-image scores, as in the ISIC challenge.

    Example::

        report = SegmentationReport()
        for image_id, pred, truth in loader:
            report.update(pred, truth, image_id)
        result = report.aggregate()  # {"mean": {"JA": ..., ...}, "per_image": {id: {...}}, "count": n}

    Args:
        jaccard_threshold: per-image Jaccard below this counts as 0 in ``JA_thresholded``.
    """

    def __init__(self, jaccard_threshold: float = JACCARD_THRESHOLD) -> None:
        self.jaccard_threshold = jaccard_threshold
        self._per_image: dict[Hashable, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self._per_image)

    def reset(self) -> None:
        """Forget every image added so far."""
        self._per_image.clear()

    def update(self, pred: MaskLike, truth: MaskLike, image_id: Hashable) -> dict[str, float]:
        """Score one image and remember its scores.

        Args:
            pred: predicted binary mask at the truth's resolution.
            truth: ground-truth binary mask.
            image_id: unique identifier of the image (e.g. ``"ISIC_0000007"``).

        Returns:
            this image's scores (see :func:`segmentation_scores`).

        Raises:
            ValueError: if ``image_id`` was already added, or the masks are invalid.
        """
        if image_id in self._per_image:
            raise ValueError(f"image id {image_id!r} was already added to this report.")
        try:
            scores = segmentation_scores(pred, truth, jaccard_threshold=self.jaccard_threshold)
        except ValueError as e:
            raise ValueError(f"{image_id}: {e}") from e
        self._per_image[image_id] = scores
        return dict(scores)

    def add_scores(self, scores: Mapping[str, float], image_id: Hashable) -> None:
        """Add an image's already computed scores (e.g. gathered from another process).

        Args:
            scores: a mapping with every key of :data:`SEGMENTATION_KEYS`.
            image_id: unique identifier of the image.
        """
        if image_id in self._per_image:
            raise ValueError(f"image id {image_id!r} was already added to this report.")
        missing = [k for k in SEGMENTATION_KEYS if k not in scores]
        if missing:
            raise ValueError(f"{image_id}: scores lack keys {missing}.")
        self._per_image[image_id] = {k: float(scores[k]) for k in SEGMENTATION_KEYS}

    def aggregate(self) -> dict[str, Any]:
        """Mean and per-image scores of every image added so far.

        Returns:
            ``{"mean": {key: float}, "per_image": {image_id: {key: float}}, "count": int}``; with no
            image added the means are NaN.
        """
        n = len(self._per_image)
        mean = {
            k: (math.fsum(s[k] for s in self._per_image.values()) / n if n else float("nan")) for k in SEGMENTATION_KEYS
        }
        per_image = {i: dict(s) for i, s in self._per_image.items()}
        return {"mean": mean, "per_image": per_image, "count": n}
