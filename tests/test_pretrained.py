"""load_pretrained: an .npz written here with Google's key names and array layouts lands where it belongs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL_NET
from monai_mtt.networks import MTTransUNet, PretrainedWeightsError, load_pretrained


def _google_npz(path, cfg, rng, n_layers_in_file=12):
    """Write an R50+ViT-B/16-style npz for ``cfg`` with the file's own names and (HWIO / in-out) layouts."""
    d, heads, mlp = cfg["hidden_size"], cfg["num_heads"], cfg["mlp_dim"]
    arrays = {}

    def put(key, *shape):
        arrays[key] = rng.standard_normal(shape).astype(np.float32)

    root = cfg["root_channels"]
    put("conv_root/kernel", 7, 7, 3, root)
    put("gn_root/scale", root)
    put("gn_root/bias", root)
    cin = root
    for b, (depth, width) in enumerate(zip(cfg["resnet_depths"], cfg["resnet_widths"]), 1):
        mid = width // 4
        for u in range(1, depth + 1):
            p = f"block{b}/unit{u}"
            put(f"{p}/conv1/kernel", 1, 1, cin, mid)
            put(f"{p}/conv2/kernel", 3, 3, mid, mid)
            put(f"{p}/conv3/kernel", 1, 1, mid, width)
            for i, c in ((1, mid), (2, mid), (3, width)):
                put(f"{p}/gn{i}/scale", c)
                put(f"{p}/gn{i}/bias", c)
            if u == 1:
                put(f"{p}/conv_proj/kernel", 1, 1, cin, width)
                put(f"{p}/gn_proj/scale", width)
                put(f"{p}/gn_proj/bias", width)
            cin = width
    put("embedding/kernel", 1, 1, cin, d)
    put("embedding/bias", d)
    put("Transformer/posembed_input/pos_embedding", 1, 197, d)  # present in the file, unused by us
    put("cls", 1, 1, d)
    for i in range(n_layers_in_file):
        r = f"Transformer/encoderblock_{i}"
        for n in ("query", "key", "value"):
            put(f"{r}/MultiHeadDotProductAttention_1/{n}/kernel", d, heads, d // heads)
            put(f"{r}/MultiHeadDotProductAttention_1/{n}/bias", heads, d // heads)
        put(f"{r}/MultiHeadDotProductAttention_1/out/kernel", heads, d // heads, d)
        put(f"{r}/MultiHeadDotProductAttention_1/out/bias", d)
        for n in ("LayerNorm_0", "LayerNorm_2"):
            put(f"{r}/{n}/scale", d)
            put(f"{r}/{n}/bias", d)
        put(f"{r}/MlpBlock_3/Dense_0/kernel", d, mlp)
        put(f"{r}/MlpBlock_3/Dense_0/bias", mlp)
        put(f"{r}/MlpBlock_3/Dense_1/kernel", mlp, d)
        put(f"{r}/MlpBlock_3/Dense_1/bias", d)
    put("Transformer/encoder_norm/scale", d)
    put("Transformer/encoder_norm/bias", d)
    np.savez(path, **arrays)
    return arrays


def test_round_trip_values_land_in_place(tmp_path):
    cfg = {**SMALL_NET}
    arrays = _google_npz(tmp_path / "R50+ViT-B_16.npz", cfg, np.random.default_rng(0))
    net = MTTransUNet(**cfg)
    decoder_before = {k: v.clone() for k, v in net.decoder.state_dict().items()}
    loaded = load_pretrained(net, tmp_path / "R50+ViT-B_16.npz")
    assert "Transformer/encoderblock_1/MlpBlock_3/Dense_1/kernel" in loaded
    assert "Transformer/encoderblock_2/LayerNorm_0/scale" not in loaded  # only num_layers=2 blocks

    t = lambda a: torch.from_numpy(a)  # noqa: E731
    # conv: HWIO in the file, OIHW in torch: element [kh, kw, cin, cout] -> [cout, cin, kh, kw]
    k = arrays["conv_root/kernel"]
    assert net.resnet.conv_root.weight[5, 2, 6, 1].item() == pytest.approx(float(k[6, 1, 2, 5]))
    k = arrays["block2/unit1/conv_proj/kernel"]
    torch.testing.assert_close(net.resnet.stages[1][0].downsample.weight[:, :, 0, 0], t(k[0, 0]).T)
    torch.testing.assert_close(net.resnet.stages[2][0].gn3.bias, t(arrays["block3/unit1/gn3/bias"]))
    torch.testing.assert_close(net.patch_embed.weight[:, :, 0, 0], t(arrays["embedding/kernel"][0, 0]).T)
    # attention: query kernel (D, heads, dh) -> rows [head*dh + j] of the combined qkv weight
    d, h = cfg["hidden_size"], cfg["num_heads"]
    dh = d // h
    layer = net.layers[1]
    q = arrays["Transformer/encoderblock_1/MultiHeadDotProductAttention_1/query/kernel"]
    v = arrays["Transformer/encoderblock_1/MultiHeadDotProductAttention_1/value/kernel"]
    assert layer.attn.qkv.weight[2 * dh + 3, 7].item() == pytest.approx(float(q[7, 2, 3]))
    assert layer.attn.qkv.weight[2 * d + 1 * dh + 5, 11].item() == pytest.approx(float(v[11, 1, 5]))
    kb = arrays["Transformer/encoderblock_1/MultiHeadDotProductAttention_1/key/bias"]
    torch.testing.assert_close(layer.attn.qkv.bias[d : 2 * d], t(kb.reshape(-1)))
    o = arrays["Transformer/encoderblock_1/MultiHeadDotProductAttention_1/out/kernel"]  # (heads, dh, D)
    assert layer.attn.out_proj.weight[9, 3 * dh + 2].item() == pytest.approx(float(o[3, 2, 9]))
    torch.testing.assert_close(layer.mlp.linear1.weight, t(arrays["Transformer/encoderblock_1/MlpBlock_3/Dense_0/kernel"]).T)
    torch.testing.assert_close(layer.norm2.weight, t(arrays["Transformer/encoderblock_1/LayerNorm_2/scale"]))
    torch.testing.assert_close(net.norm.bias, t(arrays["Transformer/encoder_norm/bias"]))
    # not loaded: cls token stays zero, decoder untouched
    assert torch.count_nonzero(net.cls_token) == 0
    for key, val in net.decoder.state_dict().items():
        torch.testing.assert_close(val, decoder_before[key])


def test_missing_file_names_path_and_fix(tmp_path):
    net = MTTransUNet(**SMALL_NET)
    with pytest.raises(PretrainedWeightsError, match=r"not found.*R50\+ViT-B_16"):
        load_pretrained(net, tmp_path / "nope.npz")


def test_mismatch_lists_every_problem(tmp_path):
    cfg = {**SMALL_NET}
    arrays = _google_npz(tmp_path / "w.npz", cfg, np.random.default_rng(1))
    del arrays["block1/unit1/gn2/scale"]
    arrays["embedding/bias"] = np.zeros(7, np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    net = MTTransUNet(**cfg)
    with pytest.raises(PretrainedWeightsError) as e:
        load_pretrained(net, tmp_path / "bad.npz")
    msg = str(e.value)
    assert "missing key 'block1/unit1/gn2/scale'" in msg
    assert "'embedding/bias' has shape (7,)" in msg


def test_corrupt_file(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(PretrainedWeightsError, match="Cannot read"):
        load_pretrained(MTTransUNet(**SMALL_NET), tmp_path / "c.npz")
