"""convert_authors_state_dict on the committed manifest of the authors' state-dict keys and shapes.

The manifest (tests/data/authors_state_dict_manifest.json) was written once from their code by
``benchmarks/compare_authors.py --write-manifest``; that script also checks, with their network,
that the converted weights compute the same outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from monai_mtt.networks import (
    MTTransUNet,
    ViTLayer,
    convert_authors_state_dict,
    is_authors_state_dict,
    load_checkpoint,
)

MANIFEST = json.loads((Path(__file__).parent / "data" / "authors_state_dict_manifest.json").read_text())


def _authors_state(prefix: str = "module.", layers: int = 4) -> dict[str, torch.Tensor]:
    """A state dict with their key names and shapes (as saved through DataParallel), distinct random values."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape in MANIFEST["keys"].items():
        if key.startswith("transformer.encoder.layer.") and int(key.split(".")[3]) >= layers:
            continue
        if key.endswith("num_batches_tracked"):
            out[prefix + key] = torch.tensor(7)
        else:
            out[prefix + key] = torch.randn(shape, generator=g)
    return out


@pytest.fixture(scope="module")
def authors_state():
    return _authors_state()


@pytest.fixture(scope="module")
def net():
    return MTTransUNet()


def test_manifest_is_their_saved_network():
    keys = MANIFEST["keys"]
    assert MANIFEST["saved_prefix"] == "module."
    assert len(keys) == 288
    # the authors' parameter count (BatchNorm buffers aside): 48,590,904
    n = sum(torch.Size(s).numel() for k, s in keys.items() if "running_" not in k and "num_batches" not in k)
    assert n == 48_590_904


def test_every_key_maps_with_our_shapes(authors_state, net):
    out = convert_authors_state_dict(authors_state, net)
    ours = net.state_dict()
    assert set(out) == set(ours)  # every one of our keys is provided ...
    assert all(out[k].shape == ours[k].shape for k in ours)
    # ... and every authors' key is used, except the two with no counterpart
    used = sum(v.numel() for v in out.values())
    dropped = {"module.transformer.embeddings.position_embeddings", "module.deep_supervision_segmentation_head.0.weight",
               "module.deep_supervision_segmentation_head.0.bias"}  # fmt: skip
    assert used == sum(v.numel() for k, v in authors_state.items() if k not in dropped)
    net.load_state_dict(out, strict=True)


def test_values_land_where_they_belong(authors_state):
    out = convert_authors_state_dict(authors_state)  # the default network: 4 layers from the keys
    a = {k[len("module.") :]: v for k, v in authors_state.items()}
    layer2 = "transformer.encoder.layer.2."
    qkv = out["layers.2.attn.qkv.weight"]
    assert torch.equal(qkv[:768], a[layer2 + "attn.query.weight"])
    assert torch.equal(qkv[768:1536], a[layer2 + "attn.key.weight"])
    assert torch.equal(qkv[1536:], a[layer2 + "attn.value.weight"])
    assert torch.equal(out["layers.2.attn.qkv.bias"][768:1536], a[layer2 + "attn.key.bias"])
    pairs = {
        "cls_token": "transformer.embeddings.cls_token",
        "resnet.conv_root.weight": "transformer.embeddings.hybrid_model.root.conv.weight",
        "resnet.stages.2.8.conv3.weight": "transformer.embeddings.hybrid_model.body.block3.unit9.conv3.weight",
        "resnet.stages.1.0.gn_proj.bias": "transformer.embeddings.hybrid_model.body.block2.unit1.gn_proj.bias",
        "patch_embed.weight": "transformer.embeddings.patch_embeddings.weight",
        "layers.3.attn.out_proj.weight": "transformer.encoder.layer.3.attn.out.weight",
        "layers.1.norm2.bias": "transformer.encoder.layer.1.ffn_norm.bias",
        "layers.0.mlp.linear2.weight": "transformer.encoder.layer.0.ffn.fc2.weight",
        "norm.weight": "transformer.encoder.encoder_norm.weight",
        "decoder.conv_more.adn.N.running_var": "decoder.conv_more.1.running_var",
        "decoder.blocks.2.conv1.conv.weight": "decoder.blocks.2.conv1.0.weight",
        "seg_head.weight": "segmentation_head.0.weight",
        "lsf_head.bias": "dual_task_segmentation_head.0.bias",
        "cls_head.weight": "head.weight",
    }
    for ours, theirs in pairs.items():
        assert torch.equal(out[ours], a[theirs]), ours


def test_unprefixed_keys_and_fewer_layers():
    state = _authors_state(prefix="", layers=2)
    out = convert_authors_state_dict(state)
    assert {k.split(".")[1] for k in out if k.startswith("layers.")} == {"0", "1"}
    with pytest.raises(ValueError, match=r"missing a value for our key layers\.2\.norm1\.weight"):
        convert_authors_state_dict(state, MTTransUNet(num_layers=3))


def test_error_names_unknown_misshaped_and_missing_keys(authors_state):
    state = dict(authors_state)
    state["module.transformer.encoder.layer.0.attn.extra.weight"] = torch.zeros(3)
    state["module.head.weight"] = torch.zeros(4, 768)
    state["module.transformer.encoder.layer.1.attn.value.weight"] = torch.zeros(768, 700)
    del state["module.transformer.encoder.layer.2.attn.query.bias"]
    del state["module.decoder.blocks.1.conv2.1.running_mean"]
    with pytest.raises(ValueError) as err:
        convert_authors_state_dict(state)
    msg = str(err.value)
    assert "unknown key module.transformer.encoder.layer.0.attn.extra.weight" in msg
    assert "wrong shape module.head.weight: (4, 768), expected (3, 768) (for cls_head.weight)" in msg
    assert "wrong shape module.transformer.encoder.layer.1.attn.value.weight: (768, 700), expected (768, 768)" in msg
    assert "missing transformer.encoder.layer.2.attn.query.bias (for layers.2.attn.qkv.bias)" in msg
    assert "missing a value for our key decoder.blocks.1.conv2.adn.N.running_mean" in msg
    assert msg.count("\n  ") == 5  # nothing else reported


def test_load_checkpoint_detects_and_converts_their_file(tmp_path, authors_state, net):
    path = tmp_path / "best_jaccard.pth"
    torch.save(authors_state, path)  # what their engine.py writes: torch.save(model.state_dict(), ...)
    assert is_authors_state_dict(authors_state) and not is_authors_state_dict(net.state_dict())
    load_checkpoint(net, path)
    assert torch.equal(net.cls_head.weight, authors_state["module.head.weight"])
    bad = dict(authors_state)
    bad["module.head.weight"] = torch.zeros(4, 768)
    torch.save(bad, path)
    with pytest.raises(RuntimeError, match=r"(?s)best_jaccard\.pth' has the authors' key names .* module\.head\.weight"):
        load_checkpoint(net, path)


def test_cls_position_does_not_matter_without_positional_embedding():
    """Why the converter keeps the cls token as is: a block is permutation-equivariant over tokens, so
    their cls-first sequence gives the same outputs as our cls-last one, token for token."""
    layer = ViTLayer(48, 96, 4).eval()
    z = torch.randn(2, 17, 48)  # 16 segmentation tokens + cls last (ours)
    first = torch.cat([z[:, -1:], z[:, :-1]], dim=1)  # cls first (theirs)
    with torch.no_grad():
        out, out_first = layer(z), layer(first)
    torch.testing.assert_close(out_first, torch.cat([out[:, -1:], out[:, :-1]], dim=1))
