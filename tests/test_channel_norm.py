"""The per-channel GroupNorms' channels-last replacement (inference rewrite): the GroupNorm's function."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SMALL_NET
from monai_mtt.networks import MTTransUNet, fuse_for_inference
from monai_mtt.networks import channel_norm as cn
from monai_mtt.networks.backends import build_backend


def _norm(channels: int) -> nn.GroupNorm:
    norm = nn.GroupNorm(channels, channels, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    return norm


def _channels_last(*shape: int) -> torch.Tensor:
    # per-channel offsets and scales far from 0 / 1, so a missing centring or scaling would show
    x = torch.randn(*shape, dtype=torch.float64) * torch.linspace(0.5, 4.0, shape[1]).view(1, -1, 1, 1).double()
    return (x + torch.linspace(-3.0, 3.0, shape[1]).view(1, -1, 1, 1).double()).contiguous(
        memory_format=torch.channels_last
    )


def test_channel_norm_equals_group_norm_with_a_group_per_channel():
    norm = _norm(8)
    x = _channels_last(3, 8, 5, 7)  # each image its own statistics
    got = cn.channel_norm(x, norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(got, norm(x.contiguous()), rtol=0, atol=1e-12)
    assert got.is_contiguous(memory_format=torch.channels_last)
    # by hand for one image and channel: biased variance over its pixels
    v = x[1, 3]
    want = (v - v.mean()) / torch.sqrt(v.var(unbiased=False) + norm.eps) * norm.weight[3] + norm.bias[3]
    torch.testing.assert_close(got[1, 3], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("side,memory_format", [(5, "channels_last"), (40, "channels_last"), (5, "contiguous")])
def test_channel_norm_module_equals_the_group_norm(side, memory_format, monkeypatch):
    """Small channels-last maps take channel_norm, larger ones and NCHW maps PyTorch's group_norm; same values."""
    norm = _norm(6)
    module = cn.ChannelNorm(norm)
    assert module.weight is norm.weight and module.bias is norm.bias  # shared
    x = _channels_last(2, 6, side, side)
    if memory_format == "contiguous":
        x = x.contiguous()
    calls = []
    monkeypatch.setattr(cn, "channel_norm", lambda *a: calls.append(1) or F.group_norm(a[0], 6, *a[1:]))
    with torch.no_grad():
        got = module(x)
    assert len(calls) == (side * side < cn.SMALL_MAP_PIXELS and memory_format == "channels_last")
    torch.testing.assert_close(got, norm(x), rtol=0, atol=1e-12)


def test_channel_norm_rejects_grouped_or_plain_norms():
    with pytest.raises(ValueError, match="one group per channel"):
        cn.ChannelNorm(nn.GroupNorm(2, 8))
    with pytest.raises(ValueError, match="affine=False"):
        cn.ChannelNorm(nn.GroupNorm(8, 8, affine=False))


def test_fused_cpu_backend_replaces_the_projection_norms_only():
    torch.manual_seed(0)
    net = MTTransUNet(**SMALL_NET).eval()
    per_channel = [n for n, m in net.named_modules() if isinstance(m, nn.GroupNorm) and m.num_groups == m.num_channels]
    assert per_channel and all(n.endswith("gn_proj") for n in per_channel)  # BiT's projection shortcuts
    fused = build_backend(net, "fused")
    replaced = [n for n, m in fused.named_modules() if isinstance(m, cn.ChannelNorm)]
    assert replaced == per_channel
    assert not any(isinstance(m, cn.ChannelNorm) for m in fuse_for_inference(net).modules())  # the export path
    assert not any(isinstance(m, cn.ChannelNorm) for m in net.modules())  # the source is not changed
    # the whole network's outputs (small maps take the new path here) stay the eager network's
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        want, got = net.outputs(x, True), fused.outputs(x, True)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
