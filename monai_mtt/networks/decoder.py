"""Cascaded upsampling decoder (TransUNet's "CUP") with skip connections."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["conv3x3_bn_relu", "UpBlock", "CascadedUpsamplingDecoder", "skip_for"]


def conv3x3_bn_relu(in_channels: int, out_channels: int) -> Convolution:
    """3x3 convolution (no bias) -> BatchNorm -> ReLU, as MONAI's ``Convolution`` block."""
    return Convolution(2, in_channels, out_channels, kernel_size=3, act="RELU", norm="BATCH", bias=False)


class UpBlock(nn.Module):
    """x2 bilinear upsampling, optional skip concatenation, then two 3x3 conv-BN-ReLU.

    Args:
        in_channels: channels of the incoming (coarser) feature map.
        skip_channels: channels of the skip feature concatenated after upsampling (0 for none).
        out_channels: output channels.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.skip_channels = skip_channels
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv1 = conv3x3_bn_relu(in_channels + skip_channels, out_channels)
        self.conv2 = conv3x3_bn_relu(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


def skip_for(skips: list[torch.Tensor], i: int, n_skip: int) -> torch.Tensor | None:
    """The skip of up block ``i``: ``skips[i]`` for the first ``n_skip`` blocks, none for the later ones."""
    return skips[i] if i < n_skip else None


class CascadedUpsamplingDecoder(nn.Module):
    """3x3 conv on the token map, then one :class:`UpBlock` per entry of ``channels``.

    Args:
        in_channels: token embedding size (768).
        head_channels: width after the first 3x3 convolution (512).
        channels: output widths of the up blocks (256, 128, 64, 16): four x2 steps, 1/16 -> 1/1.
        skip_channels: widths of the skips for the first up blocks, deepest first (512, 256, 64);
            later blocks get none.

    Shape:
        ``(B, in_channels, H/16, W/16)`` and skips -> ``(B, channels[-1], H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 768,
        head_channels: int = 512,
        channels: Sequence[int] = (256, 128, 64, 16),
        skip_channels: Sequence[int] = (512, 256, 64),
    ) -> None:
        super().__init__()
        if len(skip_channels) > len(channels):
            raise ValueError(f"{len(skip_channels)} skips for {len(channels)} up blocks.")
        self.conv_more = conv3x3_bn_relu(in_channels, head_channels)
        skips = list(skip_channels) + [0] * (len(channels) - len(skip_channels))
        ins = [head_channels, *channels[:-1]]
        self.blocks = nn.ModuleList(UpBlock(i, s, o) for i, s, o in zip(ins, skips, channels))
        self.n_skip = len(skip_channels)
        self.out_channels = channels[-1]

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv_more(x)
        for i, block in enumerate(self.blocks):
            x = block(x, skip_for(skips, i, self.n_skip))
        return x
