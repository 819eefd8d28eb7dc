"""Inference-time replacement of the per-channel GroupNorms (one group per channel) for channels-last maps.

The ResNet's projection shortcuts normalise each channel on its own (BiT's ``gn_proj``: a ``GroupNorm`` with
as many groups as channels, i.e. an instance norm with affine parameters). For a channels-last input whose
map has fewer than 1024 pixels, PyTorch's CPU ``group_norm`` takes a path that walks each group's values
with a stride of the channel count, one value per step when a group is one channel. Measured on the 2-core
CPU for the TTA's batch of six (torch 2.13): 18.8 ms at 28x28 with 512 channels, 7.9 / 9.8 / 14.4 ms at
14x14 / 16x16 / 18x18 with 1024 channels, where the two-pass reduction of :func:`channel_norm` over the
``(B, H*W, C)`` view took 2.5, 1.2, 1.3 and 1.7 ms; at 1024 pixels and more PyTorch's kernel is the faster
(1.4 vs 3.0 ms at 32x32, 2.2 vs 3.4 ms at 36x36), so it keeps those. Together about 45 ms of a 4.7 s TTA.

Only the ``fused`` backend on a CPU uses it (its convolutions run channels-last); the function is the
``GroupNorm``'s (the tests compare in float64).
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelNorm", "channel_norm", "channel_norms_for_channels_last"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

#: maps with fewer pixels than this take :func:`channel_norm`; larger ones PyTorch's ``group_norm``
#: (where its channels-last kernel changes path; see the module docstring).
SMALL_MAP_PIXELS = 1024


def channel_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Each channel of each image normalised over its pixels (mean 0, variance 1, biased), then ``weight * . +
    bias``: ``F.group_norm(x, C, weight, bias, eps)`` computed on the ``(B, H*W, C)`` view of a channels-last
    ``x`` (mean, then the mean square of the deviations), returned channels-last.

    Shape:
        ``(B, C, H, W)`` channels-last -> the same.
    """
    b, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view for a channels-last x
    mean = v.mean(dim=1, keepdim=True)
    var = (v - mean).square_().mean(dim=1, keepdim=True)
    scale = weight * torch.rsqrt(var + eps)
    return torch.addcmul(bias - mean * scale, v, scale).view(b, h, w, c).permute(0, 3, 1, 2)


class ChannelNorm(nn.Module):
    """A per-channel ``GroupNorm`` (its parameters, shared) that runs :func:`channel_norm` on small
    channels-last maps and ``F.group_norm`` otherwise.

    Args:
        norm: a ``GroupNorm`` with ``num_groups == num_channels`` and affine parameters.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        if norm.num_groups != norm.num_channels or not norm.affine:
            raise ValueError(
                f"ChannelNorm replaces an affine GroupNorm with one group per channel, got {norm.num_groups} "
                f"groups for {norm.num_channels} channels (affine={norm.affine})."
            )
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = x.shape[-2] * x.shape[-1] < SMALL_MAP_PIXELS
        if small and x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
            return channel_norm(x, self.weight, self.bias, self.eps)
        return F.group_norm(x, x.shape[1], self.weight, self.bias, self.eps)


def channel_norms_for_channels_last(module: ModuleT) -> ModuleT:
    """Replace (in place) every affine ``GroupNorm`` in ``module`` that has one group per channel by a
    :class:`ChannelNorm` sharing its parameters; returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.GroupNorm) and child.num_groups == child.num_channels and child.affine:
            setattr(module, name, ChannelNorm(child))
        else:
            channel_norms_for_channels_last(child)
    return module
