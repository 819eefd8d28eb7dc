"""Inference-time folding: fixed-weight copies of the convolutions that do redundant work per call.

* :class:`~monai_mtt.networks.resnetv2.StdConv2d` re-standardises its kernel on every forward; for
  inference the standardised kernel is computed once and stored in a plain ``nn.Conv2d``.
* Conv -> BatchNorm pairs (the decoder's ``Convolution`` blocks) are folded into one convolution, and the
  ReLU after each works in place on its output (no new tensor per activation).
* Optionally (``factorize_upsampling``), the decoder's up blocks with a skip run the upsampled part of
  their first convolution at the coarse resolution (:mod:`monai_mtt.networks.factorized_up`).

The result computes the same function as the eval-mode original (up to float rounding) and is
meant for inference only: training it would train different parameters.
"""

from __future__ import annotations

import copy
from typing import TypeVar, cast

import torch
from monai.networks.blocks import Convolution
from torch import nn

from monai_mtt.networks.factorized_up import factorize_up_blocks
from monai_mtt.networks.resnetv2 import StdConv2d

__all__ = ["fuse_for_inference", "fold_conv_bn", "freeze_std_conv"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _conv_like(conv: nn.Conv2d, bias: bool) -> nn.Conv2d:
    """A new ``nn.Conv2d`` with ``conv``'s geometry (channels, kernel, stride, padding, ...)."""
    # torch types these as ``tuple[int, ...]`` on the N-d base class; a Conv2d's are 2-tuples
    return nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=bias,
    )


def freeze_std_conv(conv: StdConv2d) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` holding ``conv``'s standardised kernel."""
    out = _conv_like(conv, bias=conv.bias is not None)
    with torch.no_grad():
        out.weight.copy_(conv.standardized_weight())
        if conv.bias is not None and out.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One ``nn.Conv2d`` equal to ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_conv_bn needs a BatchNorm with running statistics (track_running_stats=True).")
    out = _conv_like(conv, bias=True)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        out.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        cast(torch.Tensor, out.bias).copy_((bias - bn.running_mean) * scale + bn.bias)  # made with bias=True
    return out


def _fuse_in_place(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, StdConv2d):
            setattr(module, name, freeze_std_conv(child))
        elif isinstance(child, Convolution) and isinstance(adn := getattr(child, "adn", None), nn.Module):
            conv = child.conv
            norm = getattr(adn, "N", None)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                child.conv = fold_conv_bn(conv, norm)
                adn.N = nn.Identity()
                if isinstance(act := getattr(adn, "A", None), nn.ReLU):
                    act.inplace = True  # its input is now the convolution's own fresh output
        else:
            _fuse_in_place(child)


def fuse_for_inference(network: ModuleT, factorize_upsampling: bool = False) -> ModuleT:
    """An eval-mode copy of ``network`` with standardised kernels frozen and Conv+BN folded.

    Args:
        network: an :class:`~monai_mtt.networks.MTTransUNet` (or anything containing its blocks).
        factorize_upsampling: also replace the decoder's up blocks with a skip by
            :class:`~monai_mtt.networks.factorized_up.FactorizedUpBlock` (fewer multiply-adds, same function;
            the inference backends do; file exports keep the plain graph, which quantizes as it is).

    Returns:
        a new module in eval mode; ``network`` itself is not changed.
    """
    fused = copy.deepcopy(network).eval()
    _fuse_in_place(fused)
    if factorize_upsampling:
        factorize_up_blocks(fused)
    return fused
