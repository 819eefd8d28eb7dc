"""Inference-time rewrite of the decoder's up blocks: the first 3x3 convolution's upsampled part at the
coarse resolution.

An :class:`~monai_mtt.networks.UpBlock` upsamples ``x`` (x2, bilinear, ``align_corners=True``), concatenates
the skip and convolves (3x3). The convolution splits over the concatenation, and for the upsampled part the
channel mixing commutes with the upsampling (which acts on each channel alike), so with ``W_k`` the kernel's
tap ``k = (ky, kx)`` and ``U`` the upsampling::

    conv3x3(U(x)) = sum_k shift_k(U(W_k x))

Each ``W_k x`` is a 1x1 convolution at the COARSE resolution (a quarter of the multiply-adds), and
``U`` followed by the shifts and the sum is separable: one small matrix product along the width (taps
``kx``) and one along the height (taps ``ky``) with :func:`shifted_upsampling_matrix`. Same function
(float rounding differs, ~1e-6 relative), 27/36 of the block's largest convolution removed.

Measured on the 2-core CPU (batch 6, the TTA's scales 224-288; ``benchmarks/bench_up_blocks.py``, and
``benchmarks/bench_inference.py`` for the whole TTA, 0.90-0.92x): the first two blocks take 0.60-0.80x the
time of the folded original in PyTorch (channels-last), the third 0.84-1.0x, and 0.54-1.0x in ONNX Runtime.
The skip-less last block works at full resolution with few channels in, where the matrix products cost
more than they save (1.2-1.8x in PyTorch), so it is left as it is.
"""

from __future__ import annotations

from typing import cast

import torch
from monai.networks.blocks import Convolution
from torch import nn

from monai_mtt.networks.decoder import UpBlock

__all__ = ["FactorizedUpBlock", "factorize_up_blocks", "shifted_upsampling_matrix"]


def shifted_upsampling_matrix(n: int, like: torch.Tensor, tap_major: bool) -> torch.Tensor:
    """The x2 ``align_corners=True`` bilinear upsampling of a length-``n`` axis, for the three taps of a
    3x3 convolution along it: ``(2n, 3n)``, row ``X``, column ``(k, x)`` (``k * n + x`` when ``tap_major``,
    else ``x * 3 + k``) = weight of coarse position ``x`` in the upsampled value at fine position
    ``X + k - 1`` (zero where that falls outside, the convolution's zero padding).

    Built from tensor operations on ``n`` (bilinear weights are the hat function ``max(0, 1 - |s - x|)`` of
    the source coordinate ``s``), so an ONNX export keeps it a function of the input's shape.
    """
    m = 2 * n
    device, dtype = like.device, like.dtype
    fine = torch.arange(m, device=device, dtype=dtype).unsqueeze(1) + torch.arange(-1, 2, device=device, dtype=dtype)
    inside = ((fine >= 0) & (fine <= m - 1)).to(dtype)  # fine positions X + k - 1, (2n, 3)
    source = fine * ((n - 1) / (m - 1))  # align_corners=True: fine 0 and 2n-1 sit on coarse 0 and n-1
    coarse = torch.arange(n, device=device, dtype=dtype)
    weights = (1 - (source.unsqueeze(-1) - coarse).abs()).clamp(min=0) * inside.unsqueeze(-1)  # (2n, 3, n)
    return (weights if tap_major else weights.transpose(1, 2)).reshape(m, 3 * n)


class FactorizedUpBlock(nn.Module):
    """An inference copy of a folded :class:`~monai_mtt.networks.UpBlock` (with a skip) that runs the
    upsampled part of its first convolution at the coarse resolution (see the module docstring).

    Args:
        block: an ``UpBlock`` with ``skip_channels > 0`` whose first convolution has no normalisation left
            (:func:`~monai_mtt.networks.fuse_for_inference` folds it); its weights are copied.

    Shape:
        ``x`` ``(B, in_channels, h, w)``, ``skip`` ``(B, skip_channels, 2h, 2w)`` -> ``(B, out_channels, 2h, 2w)``,
        as the block's (channels-last memory order).
    """

    def __init__(self, block: UpBlock) -> None:
        super().__init__()
        conv1 = block.conv1
        conv = conv1.conv if isinstance(conv1, Convolution) else None
        adn = getattr(conv1, "adn", None)
        if not block.skip_channels:
            raise ValueError("FactorizedUpBlock needs an UpBlock with a skip connection.")
        if (
            not isinstance(conv, nn.Conv2d)
            or conv.bias is None
            or not isinstance(adn, nn.Module)
            or not isinstance(getattr(adn, "N", None), nn.Identity)
        ):
            raise ValueError("FactorizedUpBlock needs a folded UpBlock: run fuse_for_inference first.")
        cin, cout = block.in_channels, conv.out_channels
        weight, bias = conv.weight.detach(), conv.bias.detach()
        self.out_channels = cout
        # the 9 taps of the upsampled part as one linear map, output channels ordered (kx, ky, out)
        self.taps = nn.Linear(cin, 9 * cout, bias=False)
        self.skip_conv = nn.Conv2d(block.skip_channels, cout, kernel_size=3, padding=1)
        with torch.no_grad():
            self.taps.weight.copy_(weight[:, :cin].permute(3, 2, 0, 1).reshape(9 * cout, cin))
            self.skip_conv.weight.copy_(weight[:, cin:])
            cast(torch.Tensor, self.skip_conv.bias).copy_(bias)  # made with bias=True
        self.act = adn  # the first convolution's activation (ReLU)
        self.conv2 = block.conv2

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        c = self.out_channels
        taps = self.taps(x.permute(0, 2, 3, 1)).reshape(b * h, 3 * w, 3 * c)  # rows (x, kx), cols (ky, out)
        rows = torch.matmul(shifted_upsampling_matrix(w, x, tap_major=False), taps)  # (b h, 2w, (ky, out))
        rows = rows.reshape(b, h, 2 * w, 3, c).permute(0, 3, 1, 2, 4).reshape(b, 3 * h, 2 * w * c)
        up = torch.matmul(shifted_upsampling_matrix(h, x, tap_major=True), rows)  # (b, 2h, 2w c)
        up = up.reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
        return self.conv2(self.act(self.skip_conv(skip).add_(up)))  # the sum in the convolution's output


def factorize_up_blocks(module: nn.Module) -> nn.Module:
    """Replace (in place) every folded :class:`~monai_mtt.networks.UpBlock` with a skip in ``module`` by a
    :class:`FactorizedUpBlock`; returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, UpBlock) and child.skip_channels:
            setattr(module, name, FactorizedUpBlock(child))
        else:
            factorize_up_blocks(child)
    return module
