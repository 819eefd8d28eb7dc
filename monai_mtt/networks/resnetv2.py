"""The ResNet-50 (BiT ResNetV2) part of the R50+ViT-B/16 hybrid encoder.

Weight-standardised convolutions with GroupNorm, as in Big Transfer (Kolesnikov et al., 2020) and
the R50 hybrid used by ViT-B/16 and TransUNet, so Google's ImageNet ``R50+ViT-B_16.npz`` weights load
unchanged (see :mod:`monai_mtt.networks.pretrained`). Only the first three stages are used; the
encoder returns the 1/16 feature map plus the skip features at 1/2, 1/4 and 1/8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["StdConv2d", "BottleneckUnit", "ResNetV2Stage", "ResNetV2Encoder", "pad_to"]


class StdConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel is standardised (zero mean, unit variance per output channel) on use.

    Args:
        eps: added to the per-channel variance before the square root (1e-5 as in BiT).
        other args: as ``nn.Conv2d``.
    """

    def __init__(self, *args, eps: float = 1e-5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight
        var, mean = torch.var_mean(w, dim=[1, 2, 3], keepdim=True, unbiased=False)
        return (w - mean) / torch.sqrt(var + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


def _gn(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class BottleneckUnit(nn.Module):
    """BiT bottleneck unit: 1x1 -> 3x3 (stride) -> 1x1, each StdConv + GroupNorm, ReLU after the residual add.

    Args:
        in_channels: input channels.
        out_channels: output channels (4x ``mid_channels`` in ResNet-50).
        mid_channels: bottleneck width.
        stride: stride of the 3x3 convolution (and of the projection shortcut).
        norm_groups: GroupNorm groups (32).

    Shape:
        ``(B, in_channels, H, W) -> (B, out_channels, H/stride, W/stride)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, mid_channels: int, stride: int = 1, norm_groups: int = 32
    ) -> None:
        super().__init__()
        self.conv1 = StdConv2d(in_channels, mid_channels, 1, bias=False)
        self.gn1 = _gn(mid_channels, norm_groups)
        self.conv2 = StdConv2d(mid_channels, mid_channels, 3, stride=stride, padding=1, bias=False)
        self.gn2 = _gn(mid_channels, norm_groups)
        self.conv3 = StdConv2d(mid_channels, out_channels, 1, bias=False)
        self.gn3 = _gn(out_channels, norm_groups)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: StdConv2d | None = None
        self.gn_proj: nn.GroupNorm | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = StdConv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            # BiT's projection norm: one group per channel
            self.gn_proj = nn.GroupNorm(out_channels, out_channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        if self.downsample is not None and self.gn_proj is not None:
            residual = self.gn_proj(self.downsample(x))
        y = self.relu(self.gn1(self.conv1(x)))
        y = self.relu(self.gn2(self.conv2(y)))
        y = self.gn3(self.conv3(y))
        # in place on the norm's fresh output (GroupNorm's backward does not need it)
        return self.relu(y.add_(residual))


class ResNetV2Stage(nn.Sequential):
    """``depth`` bottleneck units; the first one changes width and applies ``stride``."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, stride: int, norm_groups: int = 32) -> None:
        mid = out_channels // 4
        units = [BottleneckUnit(in_channels, out_channels, mid, stride, norm_groups)]
        units += [BottleneckUnit(out_channels, out_channels, mid, 1, norm_groups) for _ in range(depth - 1)]
        super().__init__(*units)


class ResNetV2Encoder(nn.Module):
    """The convolutional half of the R50 hybrid encoder (root + three stages).

    Args:
        in_channels: image channels (3 for RGB dermoscopy).
        root_channels: width of the 7x7/2 root convolution.
        depths: bottleneck units per stage; (3, 4, 9) is the R50 hybrid of ViT-B/16.
        widths: output channels per stage.
        norm_groups: GroupNorm groups (32); every width and width/4 must be divisible by it.

    As in the authors' code (TransUNet's ResNetV2), the 3x3/2 max-pool has no padding, so for a side
    ``S`` divisible by 16 the first stage runs at ``S/4 - 1`` (55 for 224); its output is zero-padded
    at the bottom and right to ``S/4`` for the 1/4 skip only, and the second stage strides the unpadded
    map down to exactly ``S/8``. Each side is handled on its own, so non-square inputs work too.

    Shape:
        input ``(B, C, H, W)``; returns ``(features, skips)`` with features ``(B, widths[-1], H/16, W/16)``
        and skips ``[(B, widths[1], H/8, W/8), (B, widths[0], H/4, W/4), (B, root, H/2, W/2)]``,
        deepest first (the order the decoder consumes them).
    """

    def __init__(
        self,
        in_channels: int = 3,
        root_channels: int = 64,
        depths: Sequence[int] = (3, 4, 9),
        widths: Sequence[int] = (256, 512, 1024),
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f"depths {tuple(depths)} and widths {tuple(widths)} must have the same length.")
        self.conv_root = StdConv2d(in_channels, root_channels, 7, stride=2, padding=3, bias=False)
        self.gn_root = _gn(root_channels, norm_groups)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=0)
        stages = []
        cin = root_channels
        for i, (depth, width) in enumerate(zip(depths, widths)):
            stages.append(ResNetV2Stage(cin, width, depth, 1 if i == 0 else 2, norm_groups))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = cin
        self.skip_channels = [*reversed(list(widths[:-1])), root_channels]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.relu(self.gn_root(self.conv_root(x)))
        skips = [x]
        x = self.pool(x)
        n = len(self.stages)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < n - 1:
                skips.append(x)
        # only the 1/4 map is short (S/4 - 1 after the unpadded pool); the stride-2 stages round up
        skips[1] = pad_to(skips[1], skips[0].shape[-2] // 2, skips[0].shape[-1] // 2)
        skips.reverse()
        return x, skips


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad ``x`` at the bottom and right to ``height x width`` (no-op when it is that size already).

    Shape:
        ``(B, C, h, w) -> (B, C, height, width)`` with ``h <= height`` and ``w <= width``.
    """
    dh, dw = height - x.shape[-2], width - x.shape[-1]
    if dh < 0 or dw < 0:
        raise ValueError(f"cannot pad a {x.shape[-2]}x{x.shape[-1]} map to {height}x{width}.")
    if dh == 0 and dw == 0:
        return x
    return F.pad(x, (0, dw, 0, dh))
