"""The decoder's high-resolution blocks run image by image (inference rewrite): same outputs as the batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import SMALL_NET, with_trained_statistics
from monai_mtt.networks import CascadedUpsamplingDecoder, MTTransUNet, fuse_for_inference
from monai_mtt.networks.backends import build_backend
from monai_mtt.networks.per_image_tail import FIRST_PER_IMAGE_BLOCK, PerImageTailDecoder, per_image_tail


def _network() -> MTTransUNet:
    torch.manual_seed(0)
    return with_trained_statistics(MTTransUNet(**SMALL_NET))


def _decoder_inputs(net: MTTransUNet, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    captured: list = []
    hook = net.decoder.register_forward_pre_hook(lambda module, args: captured.extend(args))
    with torch.no_grad():
        net.outputs(x)
    hook.remove()
    return captured[0], captured[1]


@pytest.mark.parametrize("first", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("factorized", [False, True])
def test_per_image_decoder_equals_the_batch_decoder(first, factorized):
    """Three different images (the batch's images must not mix): every split point, plain and factorized."""
    net = fuse_for_inference(_network(), factorize_upsampling=factorized).double()  # float64: exact comparison
    x = torch.rand(3, 3, 48, 80, dtype=torch.float64)
    tokens, skips = _decoder_inputs(net, x)
    tail = PerImageTailDecoder(net.decoder, first)
    assert tail.blocks is net.decoder.blocks and tail.conv_more is net.decoder.conv_more  # shared, not copied
    with torch.no_grad():
        want = net.decoder(tokens, skips)
        got = tail(tokens, skips)
        alone = [net.decoder(tokens[j : j + 1], [s[j : j + 1] for s in skips]) for j in range(3)]
    assert got.shape == want.shape == (3, net.decoder.out_channels, 48, 80)
    assert not torch.allclose(want[0], want[1])  # the images differ, so a mix-up would show
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, torch.cat(alone), rtol=1e-12, atol=1e-12)


def test_per_image_decoder_refuses_a_split_outside_the_blocks():
    decoder = CascadedUpsamplingDecoder()
    with pytest.raises(ValueError, match=r"first must be in 0\.\.4"):
        PerImageTailDecoder(decoder, 5)
    with pytest.raises(ValueError, match=r"first must be in 0\.\.4"):
        PerImageTailDecoder(decoder, -1)


def test_fused_cpu_backend_runs_the_tail_per_image_and_exports_do_not():
    net = with_trained_statistics(MTTransUNet(**SMALL_NET)).eval()
    fused = build_backend(net, "fused")
    assert isinstance(fused.decoder, PerImageTailDecoder) and fused.decoder.first == FIRST_PER_IMAGE_BLOCK
    assert type(fuse_for_inference(net, factorize_upsampling=True).decoder) is CascadedUpsamplingDecoder  # ONNX
    assert type(net.decoder) is CascadedUpsamplingDecoder  # the source network is untouched
    replaced = per_image_tail(nn.Sequential(CascadedUpsamplingDecoder()), first=3)
    assert isinstance(replaced[0], PerImageTailDecoder) and replaced[0].first == 3


def test_fused_relus_work_in_place_and_the_source_keeps_its_own():
    """Folding leaves each decoder ReLU fed by its convolution's fresh output, so it may overwrite it."""
    net = with_trained_statistics(MTTransUNet(**SMALL_NET)).eval()
    fused = fuse_for_inference(net)
    relus = [m for m in fused.decoder.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    assert not any(m.inplace for m in net.decoder.modules() if isinstance(m, nn.ReLU))
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        want, got = net.outputs(x), fused.outputs(x)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-4)
