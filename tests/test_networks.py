"""MTTransUNet: shapes, parameter count, heads' ranges, attention read-out, export parity, fusing."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import SMALL_NET
from monai_mtt.networks import MTTransUNet, MTTransUNetInfer, ResNetV2Encoder, fuse_for_inference
from monai_mtt.networks.resnetv2 import pad_to


@pytest.fixture(scope="module")
def default_net():
    torch.manual_seed(0)
    return MTTransUNet().eval()


def test_parameter_count_matches_paper(default_net):
    n = sum(p.numel() for p in default_net.parameters())
    # the authors' 48,590,904 less the unused 151,296 positional embedding and the 13,826 deep-supervision head
    assert n == 48_590_904 - 151_296 - 13_826
    assert abs(n - 48.4e6) / 48.4e6 < 0.01


@pytest.mark.parametrize("size", [(224, 224), (256, 256), (288, 288), (224, 320)])
def test_output_shapes_any_multiple_of_16(default_net, size):
    h, w = size
    with torch.no_grad():
        out = default_net(torch.rand(2, 3, h, w), return_attention=True)
    assert out["seg"].shape == (2, 2, h, w)
    assert out["lsf"].shape == (2, 1, h, w)
    assert out["cls"].shape == (2, 3)
    assert out["attn"].shape == (2, h // 16, w // 16)


def test_pad_to_zero_pads_bottom_right_on_hand_made_map():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).view(1, 1, 2, 3)
    expected = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0]]).view(1, 1, 3, 4)
    assert torch.equal(pad_to(x, 3, 4), expected)
    assert pad_to(x, 2, 3) is x
    with pytest.raises(ValueError, match="cannot pad a 2x3 map to 1x3"):
        pad_to(x, 1, 3)


def test_encoder_pools_unpadded_and_pads_the_quarter_skip():
    """As the authors' ResNetV2: 3x3/2 max-pool without padding (55 at 224), the 1/4 skip zero-padded to
    S/4 at the bottom and right, the 1/8 stage strided from the unpadded map; non-square sides each on their own."""
    enc = ResNetV2Encoder(3, 32, (1, 1, 1), (64, 96, 128), norm_groups=8).eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        feats, (s8, s4, s2) = enc(x)
        root = enc.relu(enc.gn_root(enc.conv_root(x)))  # (2, 32, 16, 24)
        pooled = root.unfold(2, 3, 2).unfold(3, 3, 2).amax(dim=(-1, -2))  # 3x3/2 windows, no padding: 7x11
        assert pooled.shape[-2:] == (7, 11)
        quarter = enc.stages[0](pooled)
        eighth = enc.stages[1](quarter)
    assert torch.equal(s2, root)
    assert s4.shape == (2, 64, 8, 12)
    torch.testing.assert_close(s4[..., :7, :11], quarter)
    assert not s4[..., 7, :].any() and not s4[..., :, 11].any()
    assert s8.shape == (2, 96, 4, 6)
    torch.testing.assert_close(s8, eighth)
    assert feats.shape == (2, 128, 2, 3)


def test_rejects_sides_not_multiple_of_16():
    net = MTTransUNet(**SMALL_NET).eval()
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 3, 100, 112))


def test_lsf_in_tanh_range_and_attention_normalised():
    net = MTTransUNet(**SMALL_NET).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 3, 64, 96) * 5, return_attention=True)
    assert out["lsf"].abs().max() < 1.0
    a = out["attn"]
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=(1, 2)), torch.ones(3))


def test_attention_absent_unless_asked():
    net = MTTransUNet(**SMALL_NET).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert set(out) == {"seg", "lsf", "cls"}


def test_level_set_left_out_when_not_asked():
    """Inference asks for mask and class only: no ``lsf``, its head not run, the rest unchanged."""
    net = MTTransUNet(**SMALL_NET).eval()
    calls = []
    net.lsf_head.register_forward_hook(lambda *args: calls.append(1))
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        full = net(x, return_attention=True)
        lean = net.outputs(x, True, False)
    assert len(calls) == 1 and set(lean) == {"seg", "cls", "attn"}
    for key in lean:
        torch.testing.assert_close(lean[key], full[key], rtol=0, atol=0)


def test_block_output_and_cls_attention_from_one_projection():
    """``forward_with_cls_attention`` is the block's forward plus the cls row of ``cls_attention``, computed
    from the attention's own query/key projection (float64, so rounding cannot hide a difference)."""
    torch.manual_seed(0)
    layer = MTTransUNet(**SMALL_NET).layers[1].double().eval()
    calls = []
    layer.attn.qkv.register_forward_hook(lambda *args: calls.append(1))
    z = torch.randn(3, 21, SMALL_NET["hidden_size"], dtype=torch.float64)
    with torch.no_grad():
        out, attn = layer.forward_with_cls_attention(z)
        assert len(calls) == 1  # one projection of the tokens
        want_out, want_attn = layer(z), layer.cls_attention(z)
    torch.testing.assert_close(out, want_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(attn, want_attn, rtol=0, atol=1e-12)
    assert attn.shape == (3, 20)


def test_attention_equals_explicit_softmax_of_cls_row():
    """The cls-row read-out equals the full attention matrix computed by hand (eq. 9)."""
    net = MTTransUNet(**SMALL_NET, attention_layer=0).eval()
    x = torch.rand(2, 3, 64, 80)
    captured = {}
    layer = net.layers[0]
    # the block's input, as its first LayerNorm sees it
    hook = layer.norm1.register_forward_pre_hook(lambda m, args: captured.setdefault("z", args[0]))
    with torch.no_grad():
        out = net(x, return_attention=True)
    hook.remove()
    z = captured["z"]
    d, h = z.shape[-1], layer.attn.num_heads
    with torch.no_grad():
        qkv = layer.attn.qkv(layer.norm1(z)).view(2, -1, 3, h, d // h).permute(2, 0, 3, 1, 4)
        full = (qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(d // h)).softmax(-1)  # (B, h, N+1, N+1)
    a = full[:, :, -1, :].mean(1)[:, :-1]  # cls query is the LAST token; drop a_c
    a = a / a.sum(1, keepdim=True)
    torch.testing.assert_close(out["attn"].flatten(1), a, rtol=1e-5, atol=1e-6)


def test_cls_token_zero_initialised_and_appended():
    net = MTTransUNet(**SMALL_NET)
    assert torch.count_nonzero(net.cls_token) == 0
    # the class logits depend on the image only through attention from the cls token, which sits last
    net.eval()
    with torch.no_grad():
        a = net(torch.rand(1, 3, 64, 64))["cls"]
        b = net(torch.rand(1, 3, 64, 64))["cls"]
    assert not torch.allclose(a, b)
    # the appended position itself: with a distinctive cls token, the sequence entering the first
    # Transformer layer is the 16 patch tokens (64 / 16 = 4 x 4) then that token, and the class
    # head reads the last position of the final sequence
    with torch.no_grad():
        net.cls_token.copy_(torch.linspace(-3.0, 3.0, net.cls_token.numel()).view_as(net.cls_token))
    seen = {}
    first = net.layers[0].register_forward_pre_hook(lambda m, args: seen.setdefault("z_in", args[0].clone()))
    last = net.norm.register_forward_hook(lambda m, args, out: seen.setdefault("z_out", out.clone()))
    try:
        with torch.no_grad():
            out = net(torch.rand(2, 3, 64, 64))
    finally:
        first.remove()
        last.remove()
    z_in, z_out = seen["z_in"], seen["z_out"]
    assert z_in.shape == (2, 16 + 1, SMALL_NET["hidden_size"])
    torch.testing.assert_close(z_in[:, -1], net.cls_token[0].expand(2, -1), rtol=0, atol=0)
    assert not torch.isclose(z_in[:, :-1], net.cls_token).all(dim=-1).any()  # no patch token is the cls token
    torch.testing.assert_close(out["cls"], net.cls_head(z_out[:, -1]), rtol=0, atol=0)
    assert not torch.allclose(out["cls"], net.cls_head(z_out[:, 0]))


def test_eval_is_deterministic():
    net = MTTransUNet(**SMALL_NET).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = net(x), net(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_torchscript_script_and_trace_match_eager():
    net = MTTransUNet(**SMALL_NET).eval()
    x = torch.rand(2, 3, 64, 96)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        ref = net(x, return_attention=True)
        got = scripted(x, True)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-5)
    wrapper = MTTransUNetInfer(with_classes=True, **SMALL_NET).eval()
    wrapper.load_state_dict(net.state_dict())  # same parameters, same keys
    traced = torch.jit.trace(wrapper, x)
    with torch.no_grad():
        seg, cls = traced(x)
    torch.testing.assert_close(seg, ref["seg"].softmax(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cls, ref["cls"].softmax(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(seg.sum(1), torch.ones(2, 64, 96))
    scripted_tuple = torch.jit.script(wrapper)
    with torch.no_grad():
        seg2, cls2 = scripted_tuple(x)
        attn2 = scripted_tuple.outputs(x, True)["attn"]  # the exported multi-output method
    torch.testing.assert_close(seg2, seg, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cls2, cls, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn2, ref["attn"], rtol=1e-5, atol=1e-5)


def test_infer_wrapper_single_output():
    net = MTTransUNetInfer(**SMALL_NET).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = net(x)
        ref = MTTransUNet.forward(net, x)
    assert isinstance(y, torch.Tensor) and y.shape == (1, 2, 64, 64)
    torch.testing.assert_close(y, ref["seg"].softmax(1))
    assert list(net.state_dict()) == list(MTTransUNet(**SMALL_NET).state_dict())


def test_fused_network_matches_eval_original():
    net = MTTransUNet(**SMALL_NET)
    # non-trivial BatchNorm statistics
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(2, 3, 64, 64) * 2)
    net.eval()
    fused = fuse_for_inference(net)
    assert not any(type(m).__name__ in {"StdConv2d", "BatchNorm2d"} for m in fused.modules())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = net(x, return_attention=True), fused(x, return_attention=True)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    assert any(type(m).__name__ == "StdConv2d" for m in net.modules())  # original untouched


def test_zero_layer_ablation_builds():
    net = MTTransUNet(**{**SMALL_NET, "num_layers": 0}).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 32))
    assert out["seg"].shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="at least one Transformer layer"):
        net(torch.rand(1, 3, 32, 32), return_attention=True)
