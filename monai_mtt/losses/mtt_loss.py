"""The MT-TransUNet objective, eq. (5)-(12) of the paper."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from monai_mtt.keys import BatchKeys, OutputKeys

__all__ = ["MTTLoss", "dtc_rampup"]


def dtc_rampup(iteration: int, length: int) -> float:
    """The exponential ramp-up of the DTC weight: ``exp(-5 (1 - t/T)^2)`` for ``t < T``, then 1.

    Args:
        iteration: current iteration ``t`` (0-based).
        length: ramp length ``T`` in iterations (the paper: 40 epochs of 500 iterations = 20,000);
            0 or less disables the ramp (weight 1 from the start).
    """
    if length <= 0 or iteration >= length:
        return 1.0
    phase = 1.0 - max(iteration, 0) / length
    return float(math.exp(-5.0 * phase * phase))


class MTTLoss(nn.Module):
    """Multi-task loss of MT-TransUNet.

    Labeled batches (eq. 11): ``mask + λC·cls + λL·lsf + λD·dtc + λA·arc``;
    classification-only batches (eq. 12): ``λC·cls + λD·dtc + λA·arc``. Terms:

    * ``mask`` (eq. 5): cross-entropy over the class channel of ``seg``, mean over pixels.
    * ``cls``: cross-entropy of ``cls`` against ``class``; samples whose class is unknown
      (``class < 0``) are left out, and a batch without ``class`` gives 0.
    * ``lsf`` (eq. 6): mean squared error between predicted and ground-truth level set.
    * ``dtc`` (eq. 7-8): mean squared error between the foreground probability
      ``softmax(seg)[:, 1]`` and ``sigmoid(-k·lsf)`` (our level set is negative inside, hence the
      minus sign).
    * ``arc`` (eq. 9-10): per sample ``sum_tokens (1 - M↓) · A'``, averaged over the batch, with ``A'``
      the normalised cls attention and ``M↓`` the foreground probability resized bilinearly to the
      token grid. Needs ``attn`` in the outputs; without it the term is 0.

    ``lambda_dtc`` is the maximum weight; the ramp factor ``dtc_ramp`` (0..1) multiplies it and is
    set between iterations (see :class:`monai_mtt.handlers.DTCRampHandler`). A weight of 0 switches
    a term off (it is then not computed), so the paper's Table 1 settings are configs.

    Two streams (one labeled, one classification-only batch) are combined by :meth:`two_streams`
    according to ``stream_reduction``:

    * ``"batch_mean"`` (default, the authors' code): the terms computed on both streams (``cls``,
      ``dtc``, ``arc``) are averaged over the combined batch, i.e. each image counts once (for
      ``cls``, each image of known class); ``mask`` and ``lsf`` are means over the labeled images.
      With 4 + 4 images the shared terms thus weigh the same relative to ``mask`` and ``lsf`` as in
      the authors' training.
    * ``"sum"``: eq. (11) on the labeled batch plus eq. (12) on the unlabeled batch, each a mean
      over its own stream; the shared terms then weigh twice as much (two means summed).

    Args:
        lambda_mask: weight of the mask term (1; 0 for the classification-only setting (2)).
        lambda_cls: λC (0.25).
        lambda_lsf: λL (5.0).
        lambda_dtc: λD after the ramp (1.0).
        lambda_arc: λA (1.0).
        k: sharpness of the level-set-to-mask transform (1500).
        dtc_ramp: initial ramp factor.
        stream_reduction: ``"batch_mean"`` or ``"sum"`` (see above); used by :meth:`two_streams`.
    """

    stream_reductions = ("batch_mean", "sum")
    shared_terms = ("cls", "dtc", "arc")

    terms = ("mask", "cls", "lsf", "dtc", "arc")

    def __init__(
        self,
        lambda_mask: float = 1.0,
        lambda_cls: float = 0.25,
        lambda_lsf: float = 5.0,
        lambda_dtc: float = 1.0,
        lambda_arc: float = 1.0,
        k: float = 1500.0,
        dtc_ramp: float = 1.0,
        stream_reduction: str = "batch_mean",
    ) -> None:
        super().__init__()
        self.lambda_mask = lambda_mask
        self.lambda_cls = lambda_cls
        self.lambda_lsf = lambda_lsf
        self.lambda_dtc = lambda_dtc
        self.lambda_arc = lambda_arc
        self.k = k
        self.dtc_ramp = dtc_ramp
        if stream_reduction not in self.stream_reductions:
            raise ValueError(f"stream_reduction must be one of {self.stream_reductions}, got {stream_reduction!r}.")
        self.stream_reduction = stream_reduction

    def weights(self, labeled: bool) -> dict[str, float]:
        """The current weight of each term for a labeled (eq. 11) or unlabeled (eq. 12) batch."""
        return {
            "mask": self.lambda_mask if labeled else 0.0,
            "cls": self.lambda_cls,
            "lsf": self.lambda_lsf if labeled else 0.0,
            "dtc": self.lambda_dtc * self.dtc_ramp,
            "arc": self.lambda_arc,
        }

    @staticmethod
    def mask_loss(seg: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(seg, label.squeeze(1).long())

    @staticmethod
    def cls_loss(logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        if target is None:
            return logits.sum() * 0.0
        target = target.reshape(-1).long()
        known = target >= 0
        if not bool(known.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits[known], target[known])

    @staticmethod
    def lsf_loss(lsf: torch.Tensor, lsf_gt: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(lsf, lsf_gt.to(lsf.dtype))

    def dtc_loss(self, seg: torch.Tensor, lsf: torch.Tensor) -> torch.Tensor:
        fg = seg.softmax(dim=1)[:, 1:2]
        return F.mse_loss(fg, torch.sigmoid(-self.k * lsf))

    @staticmethod
    def arc_loss(seg: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        fg = seg.softmax(dim=1)[:, 1:2]
        fg_tokens = F.interpolate(fg, size=attn.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return ((1.0 - fg_tokens) * attn).flatten(1).sum(dim=1).mean()

    def forward(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], labeled: bool = True
    ) -> dict[str, torch.Tensor]:
        """Compute every active term and ``total``.

        Args:
            outputs: the network dict: ``seg`` (B, 2, H, W), ``lsf`` (B, 1, H, W), ``cls`` (B, C) and
                optionally ``attn`` (B, h, w).
            batch: ``class`` (B,) (optional; -1 marks unknown), and for labeled batches ``label``
                (B, 1, H, W) in {0, 1} and ``lsf`` (B, 1, H, W).
            labeled: eq. (11) if True, eq. (12) otherwise.

        Returns:
            dict with ``mask``, ``cls``, ``lsf``, ``dtc``, ``arc`` (unweighted; 0 where inactive) and
            ``total`` (weighted sum).
        """
        w = self.weights(labeled)
        seg, lsf = outputs[OutputKeys.SEG], outputs[OutputKeys.LSF]
        zero = seg.new_zeros(())
        parts = dict.fromkeys(self.terms, zero)
        if w["mask"]:
            if BatchKeys.LABEL not in batch:
                raise KeyError("a labeled batch needs 'label' (B, 1, H, W) masks for the mask loss.")
            parts["mask"] = self.mask_loss(seg, batch[BatchKeys.LABEL])
        if w["cls"]:
            parts["cls"] = self.cls_loss(outputs[OutputKeys.CLS], batch.get(BatchKeys.CLASS))
        if w["lsf"]:
            if BatchKeys.LSF not in batch:
                raise KeyError("a labeled batch needs 'lsf' ground-truth level sets (add LevelSetd to the transforms).")
            parts["lsf"] = self.lsf_loss(lsf, batch[BatchKeys.LSF])
        if w["dtc"]:
            parts["dtc"] = self.dtc_loss(seg, lsf)
        if w["arc"] and OutputKeys.ATTN in outputs:
            parts["arc"] = self.arc_loss(seg, outputs[OutputKeys.ATTN])
        total = zero
        for name in self.terms:
            if w[name]:
                total = total + w[name] * parts[name]
        return {**parts, "total": total}

    @staticmethod
    def _counts(batch: Mapping[str, torch.Tensor], n_images: int) -> dict[str, int]:
        """How many samples of a stream each shared term averages over."""
        target = batch.get(BatchKeys.CLASS)
        n_known = 0 if target is None else int((target.reshape(-1) >= 0).sum())
        return {"cls": n_known, "dtc": n_images, "arc": n_images}

    def two_streams(
        self,
        outputs: Mapping[str, torch.Tensor],
        labeled_batch: Mapping[str, torch.Tensor],
        unlabeled_batch: Mapping[str, torch.Tensor] | None,
        n_labeled: int,
    ) -> dict[str, dict[str, torch.Tensor] | torch.Tensor]:
        """The loss of one concatenated forward over a labeled and a classification-only batch.

        Args:
            outputs: the network dict over the concatenated batch, labeled images first.
            labeled_batch: the labeled batch (see :meth:`forward`).
            unlabeled_batch: the classification-only batch (``class``), or None.
            n_labeled: number of labeled images (the first ``n_labeled`` rows of ``outputs``).

        Returns:
            ``{"lab": terms, "unl": terms, "total": tensor}``: ``terms`` are :meth:`forward`'s
            per-stream (unweighted) dicts (``"unl"`` absent without an unlabeled batch) and
            ``total`` is combined by ``stream_reduction``: with ``"sum"`` the two per-stream totals
            added; with ``"batch_mean"`` ``λM·mask + λL·lsf`` (labeled means) plus, for each shared
            term, its weight times ``(n_lab·t_lab + n_unl·t_unl) / (n_lab + n_unl)``, where ``n``
            counts the images (the images of known class for ``cls``) of each stream.
        """
        lab = self({k: v[:n_labeled] for k, v in outputs.items()}, labeled_batch, labeled=True)
        parts: dict = {"lab": lab}
        if unlabeled_batch is None:
            parts["total"] = lab["total"]
            return parts
        unl = self({k: v[n_labeled:] for k, v in outputs.items()}, unlabeled_batch, labeled=False)
        parts["unl"] = unl
        if self.stream_reduction == "sum":
            parts["total"] = lab["total"] + unl["total"]
            return parts
        n_unlabeled = next(iter(outputs.values())).shape[0] - n_labeled
        n_lab, n_unl = self._counts(labeled_batch, n_labeled), self._counts(unlabeled_batch, n_unlabeled)
        w = self.weights(labeled=True)
        total = lab["total"].new_zeros(())
        for name in ("mask", "lsf"):
            if w[name]:
                total = total + w[name] * lab[name]
        for name in self.shared_terms:
            n = n_lab[name] + n_unl[name]
            if w[name] and n:
                total = total + w[name] * (n_lab[name] * lab[name] + n_unl[name] * unl[name]) / n
        parts["total"] = total
        return parts
