"""The factorized up block (inference rewrite of the decoder): same function as the folded UpBlock."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import SMALL_NET, with_trained_statistics
from monai_mtt.networks import FactorizedUpBlock, MTTransUNet, UpBlock, fuse_for_inference
from monai_mtt.networks.backends import build_backend
from monai_mtt.networks.factorized_up import shifted_upsampling_matrix


@pytest.mark.parametrize("n", [1, 2, 5, 14])
def test_matrix_is_torch_upsampling_shifted_by_each_tap(n):
    """Column x of the upsampling is F.interpolate of the unit vector e_x; tap k reads fine row X + k - 1
    (zero outside, the convolution's padding)."""
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, 1, n)
    up = F.interpolate(eye, size=(1, 2 * n), mode="bilinear", align_corners=True)[:, 0, 0].T  # (2n, n)
    padded = F.pad(up, (0, 0, 1, 1))  # fine rows -1 and 2n are zero
    want = torch.stack([padded[k : k + 2 * n] for k in range(3)], dim=1)  # (2n, 3 taps, n)
    like = torch.zeros((), dtype=torch.float64)
    torch.testing.assert_close(shifted_upsampling_matrix(n, like, tap_major=True), want.reshape(2 * n, 3 * n))
    torch.testing.assert_close(
        shifted_upsampling_matrix(n, like, tap_major=False), want.transpose(1, 2).reshape(2 * n, 3 * n)
    )


def _folded_block(in_ch: int, skip_ch: int, out_ch: int) -> UpBlock:
    torch.manual_seed(0)
    block = with_trained_statistics(UpBlock(in_ch, skip_ch, out_ch))
    return fuse_for_inference(block)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_factorized_block_equals_the_folded_block(size, channels_last):
    block = _folded_block(24, 16, 12)
    fact = FactorizedUpBlock(block)
    h, w = size
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 24, h, w, dtype=torch.float64).contiguous(memory_format=fmt)
    skip = torch.randn(2, 16, 2 * h, 2 * w, dtype=torch.float64).contiguous(memory_format=fmt)
    with torch.no_grad():
        want = block.double()(x, skip)
        got = fact.double()(x, skip)
    assert got.shape == want.shape == (2, 12, 2 * h, 2 * w)
    assert (want > 0).any() and (want == 0).any()  # the ReLU clips some, so both sides of it are compared
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)  # float64: the rewrite is exact algebra


def test_factorized_block_refuses_unfolded_and_skipless_blocks():
    with pytest.raises(ValueError, match="run fuse_for_inference first"):
        FactorizedUpBlock(UpBlock(8, 4, 4))  # BatchNorm still there
    with pytest.raises(ValueError, match="skip connection"):
        FactorizedUpBlock(fuse_for_inference(UpBlock(8, 0, 4)))


def test_backends_factorize_the_skip_blocks_and_file_exports_do_not():
    net = with_trained_statistics(MTTransUNet(**SMALL_NET)).eval()
    fused = build_backend(net, "fused")
    kinds = [type(b) for b in fused.decoder.blocks]
    n_skip = len(net.resnet.skip_channels)
    assert kinds == [FactorizedUpBlock] * n_skip + [UpBlock] * (len(kinds) - n_skip)
    assert all(type(b) is UpBlock for b in fuse_for_inference(net).decoder.blocks)  # default: plain graph
    assert all(type(b) is UpBlock for b in net.decoder.blocks)  # the source network is untouched
    x = torch.rand(2, 3, 48, 80)
    with torch.no_grad():
        want, got = net.outputs(x, True), fused.outputs(x, True)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-4)
