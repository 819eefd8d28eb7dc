"""Sliding-free inference: the whole image at once, plain or with the paper's multi-scale TTA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from monai.inferers import Inferer

from monai_mtt.inferers.views import VIEWS, apply_view, check_view, invert_view
from monai_mtt.keys import OutputKeys
from monai_mtt.networks.mt_transunet import MTTransUNet

__all__ = ["MTTSimpleInferer", "MultiScaleTTAInferer", "TTA_ENSEMBLES", "network_probabilities"]

#: how :class:`MultiScaleTTAInferer` combines its views: ours (default) or the authors'.
TTA_ENSEMBLES = ("probabilities", "authors")

ImageBatch = Union[torch.Tensor, Sequence[torch.Tensor]]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


def _as_list(images: ImageBatch) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(images.shape)}.")
        return list(images)
    return list(images)


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_tensor() if hasattr(x, "as_tensor") else x


def _group_by_size(images: list[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault((int(img.shape[-2]), int(img.shape[-1])), []).append(i)
    return groups


def network_probabilities(
    network: Callable[..., Any], x: torch.Tensor, return_attention: bool = False
) -> dict[str, Any]:
    """One forward: class and mask probabilities (and attention, and logits where given) from any network form.

    An :class:`~monai_mtt.networks.MTTransUNet` (or subclass, eager or TorchScript) is called
    through ``outputs``, which returns logits (also returned, as ``seg_logits`` and
    ``cls_logits``); a single-output export (``MTTransUNetInfer``'s ``(seg probabilities, class
    probabilities)`` tuple, e.g. a ``ckpt_export`` TorchScript or ONNX) is used as is, without
    attention or logits.
    """
    if isinstance(network, MTTransUNet):  # eager or folded: the level-set head is not needed here
        out = network.outputs(x, return_attention, False)
    else:
        outputs = getattr(network, "outputs", None)
        out = outputs(x, return_attention) if outputs is not None else network(x)
    if isinstance(out, dict):
        seg, cls = out[OutputKeys.SEG].float(), out[OutputKeys.CLS].float()
        probs = {
            OutputKeys.SEG: seg.softmax(dim=1),
            OutputKeys.CLS: cls.softmax(dim=1),
            "seg_logits": seg,
            "cls_logits": cls,
        }
        if OutputKeys.ATTN in out:
            probs[OutputKeys.ATTN] = out[OutputKeys.ATTN].float()
        return probs
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return {OutputKeys.SEG: out[0].float(), OutputKeys.CLS: out[1].float()}
    raise TypeError(
        "the network must be an MTTransUNet or return (seg probabilities, class probabilities); "
        f"got {type(out).__name__}."
    )


def _per_size(inputs: ImageBatch, same_size: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Run ``same_size`` on a ``(B, C, H, W)`` batch, or on each group of equal-size images of a list.

    A list's results come back as lists (``seg``, ``attn``) in input order; ``cls`` is concatenated.
    """
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        return same_size(_plain(inputs))
    images = [_plain(i) for i in _as_list(inputs)]
    results: list[dict[str, torch.Tensor]] = [{} for _ in images]  # each filled below
    for _, idx in _group_by_size(images).items():
        out = same_size(torch.stack([images[i] for i in idx]))
        for j, i in enumerate(idx):
            results[i] = {k: v[j : j + 1] for k, v in out.items()}
    merged: dict[str, Any] = {
        OutputKeys.SEG: [r[OutputKeys.SEG][0] for r in results],
        OutputKeys.CLS: torch.cat([r[OutputKeys.CLS] for r in results]),
    }
    if all(OutputKeys.ATTN in r for r in results):
        merged[OutputKeys.ATTN] = [r[OutputKeys.ATTN][0] for r in results]
    return merged


class MultiScaleTTAInferer(Inferer):
    """The paper's test-time augmentation: every scale x every view, ensembled at the ORIGINAL size.

    For each image, at each square ``scale`` the image is resized (bilinear, antialiased when
    shrinking), the views (identity, flips, rotations) are stacked into one batch and passed through
    the network in a single forward. The views are then combined by ``ensemble``:

    * ``"probabilities"`` (default; the paper does not say how): each view's softmax mask
      probabilities are mapped back by the inverse view, averaged over views, resized to the
      original image size and averaged over scales; softmax class probabilities are averaged over
      all views and scales. (Resizing the per-scale mean equals the mean of the resized views, since
      both are linear.) Kept as default because the ISIC challenge scores at the original resolution.
    * ``"authors"`` (their ``utils/validate.py``, for side-by-side numbers): each view's mask LOGITS
      are resized (bicubic) to ``ensemble_size`` (224, their training size), inverse-transformed and
      summed over views and scales; the mask is the softmax (so the argmax) of that sum at 224,
      brought to the original size by nearest neighbour (the 224 decision unchanged; they scored at
      224 against the resized ground truth). Class: logits summed over scales, averaged over views,
      softmax. Needs a network that returns logits (an :class:`~monai_mtt.networks.MTTransUNet`).

    Images of equal size share forwards; images of different sizes can come as a list.

    Args:
        scales: network input sizes (224, 256, 288); each a multiple of 16.
        views: subset of ``identity, hflip, vflip, rot90, rot180, rot270``.
        return_attention: also return the cls-attention map, mapped back and averaged like the mask
            and normalised to sum 1 over the original pixels (the same for both ensembles).
        ensemble: ``"probabilities"`` or ``"authors"`` (:data:`TTA_ENSEMBLES`).
        ensemble_size: the side the ``"authors"`` ensemble sums mask logits at.

    Returns (``__call__(images, network)``):
        dict with ``seg`` lesion probabilities ``(B, 2, H, W)`` (a list for mixed sizes), ``cls`` class
        probabilities ``(B, C)`` and optionally ``attn`` ``(B, 1, H, W)`` (or a list).
    """

    def __init__(
        self,
        scales: Sequence[int] = (224, 256, 288),
        views: Sequence[str] = VIEWS,
        return_attention: bool = False,
        ensemble: str = "probabilities",
        ensemble_size: int = 224,
    ) -> None:
        super().__init__()
        if ensemble not in TTA_ENSEMBLES:
            raise ValueError(f"ensemble must be one of {TTA_ENSEMBLES}, got {ensemble!r}.")
        for s in scales:
            if s % 16:
                raise ValueError(f"scale {s} is not a multiple of 16.")
        for v in views:
            check_view(v)
        if not scales or not views:
            raise ValueError("need at least one scale and one view.")
        self.scales = tuple(int(s) for s in scales)
        self.views = tuple(views)
        self.return_attention = return_attention
        self.ensemble = ensemble
        self.ensemble_size = int(ensemble_size)

    @torch.no_grad()
    def _same_size(self, network: Callable[..., Any], x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``(B, C, H, W)`` images of one size."""
        b, _, h, w = x.shape
        nv = len(self.views)
        authors = self.ensemble == "authors"
        seg_sum = None
        attn_sum = None
        cls_sum = None
        for s in self.scales:
            xs = _resize(x, (s, s))
            batch = torch.cat([apply_view(xs, v) for v in self.views], dim=0)  # (V*B, C, s, s), view-major
            out = network_probabilities(network, batch, self.return_attention)
            if authors and "seg_logits" not in out:
                raise TypeError(
                    "ensemble='authors' sums logits: the network must return them (an MTTransUNet, eager or "
                    "TorchScript of MTTransUNet), not probabilities (MTTransUNetInfer / ONNX exports)."
                )
            if authors:  # logits resized (bicubic) to ensemble_size, mapped back, summed
                e = self.ensemble_size
                lg = F.interpolate(out["seg_logits"], size=(e, e), mode="bicubic", align_corners=False)
                lg = lg.view(nv, b, -1, e, e)
                seg = torch.stack([invert_view(lg[i], v) for i, v in enumerate(self.views)]).sum(0)
                cls = out["cls_logits"].view(nv, b, -1).sum(0)
            else:
                seg = out[OutputKeys.SEG].view(nv, b, -1, s, s)
                seg = torch.stack([invert_view(seg[i], v) for i, v in enumerate(self.views)]).mean(0)
                seg = _resize(seg, (h, w))
                cls = out[OutputKeys.CLS].view(nv, b, -1).sum(0)
            seg_sum = seg if seg_sum is None else seg_sum + seg
            cls_sum = cls if cls_sum is None else cls_sum + cls
            if OutputKeys.ATTN in out:
                a = out[OutputKeys.ATTN].view(nv, b, 1, s // 16, s // 16)
                a = torch.stack([invert_view(a[i], v) for i, v in enumerate(self.views)]).mean(0)
                a = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)
                attn_sum = a if attn_sum is None else attn_sum + a
        if seg_sum is None or cls_sum is None:  # unreachable: __init__ refuses empty scales
            raise ValueError("MultiScaleTTAInferer needs at least one scale.")
        n = len(self.scales)
        result: dict[str, torch.Tensor]
        if authors:
            seg = seg_sum.softmax(dim=1)
            if seg.shape[-2:] != (h, w):
                seg = F.interpolate(seg, size=(h, w), mode="nearest-exact")
            result = {OutputKeys.SEG: seg, OutputKeys.CLS: (cls_sum / nv).softmax(dim=1)}
        else:
            result = {OutputKeys.SEG: seg_sum / n, OutputKeys.CLS: cls_sum / (n * nv)}
        if attn_sum is not None:
            result[OutputKeys.ATTN] = attn_sum / attn_sum.sum(dim=(1, 2, 3), keepdim=True)
        return result

    def __call__(self, inputs: ImageBatch, network: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        return _per_size(inputs, lambda x: self._same_size(network, x))


class MTTSimpleInferer(Inferer):
    """One forward per image: no test-time augmentation, at ``size`` (or the input size when None).

    Inputs whose sides are not multiples of 16 need a ``size``. Outputs as
    :class:`MultiScaleTTAInferer` (mask probabilities resized back to, and attention normalised
    over, the input resolution).

    Args:
        size: network input size (square side), or None to feed images as they are.
        return_attention: also return the cls-attention map.
    """

    def __init__(self, size: int | None = None, return_attention: bool = False) -> None:
        super().__init__()
        self.size = size
        self.return_attention = return_attention

    @torch.no_grad()
    def _same_size(self, network: Callable[..., Any], x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        xs = x if self.size is None else _resize(x, (self.size, self.size))
        out = network_probabilities(network, xs, self.return_attention)
        result: dict[str, torch.Tensor] = {
            OutputKeys.SEG: _resize(out[OutputKeys.SEG], (h, w)),
            OutputKeys.CLS: out[OutputKeys.CLS],
        }
        if OutputKeys.ATTN in out:
            a = F.interpolate(out[OutputKeys.ATTN][:, None], size=(h, w), mode="bilinear", align_corners=False)
            result[OutputKeys.ATTN] = a / a.sum(dim=(1, 2, 3), keepdim=True)  # sums to 1 over the input pixels
        return result

    def __call__(self, inputs: ImageBatch, network: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        return _per_size(inputs, lambda x: self._same_size(network, x))
