"""Load checkpoints saved by the authors' training code (JingyeChen/MT-TransUNet) into :class:`MTTransUNet`.

Their ``engine.py`` saves ``model.state_dict()`` of a ``DataParallel``-wrapped TransUNet variant
(``model/networks/vit_seg_modeling_combine.py``), so the keys carry a ``module.`` prefix and
TransUNet's names (``transformer.embeddings.hybrid_model.body.block1.unit1.conv1.weight``, separate
``query``/``key``/``value`` projections, ``decoder.blocks.0.conv1.0.weight``, ...). The two networks
compute the same function (``benchmarks/compare_authors.py`` measures it), so a checkpoint maps
key by key:

* ``query``, ``key`` and ``value`` of each block are concatenated, in that order, into MONAI's
  fused ``qkv`` projection;
* their cls token sits at index 0 of the token sequence and ours is appended last: with no
  positional embedding, self-attention, the MLP and LayerNorm act on each token (or are
  permutation-equivariant), so the same parameter gives the same outputs;
* dropped: ``position_embeddings`` (created and loaded by their code but never added) and the
  deep-supervision head on the token grid (``deep_supervision_segmentation_head``, weight 0 in their
  loss, not part of the paper's network).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

__all__ = ["convert_authors_state_dict", "is_authors_state_dict", "AUTHORS_DROPPED_KEYS"]

#: authors' keys (after ``module.``) with no counterpart in MTTransUNet; removed by the converter.
AUTHORS_DROPPED_KEYS = re.compile(
    r"^(transformer\.embeddings\.position_embeddings|deep_supervision_segmentation_head\.0\.(weight|bias))$"
)

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_UNIT = r"(conv[123]\.weight|gn[123]\.(weight|bias)|downsample\.weight|gn_proj\.(weight|bias))"
_LAYER_RENAMES = {"attention_norm": "norm1", "ffn_norm": "norm2", "ffn.fc1": "mlp.linear1", "ffn.fc2": "mlp.linear2",
                  "attn.out": "attn.out_proj"}  # fmt: skip

# (pattern on the authors' key, function of the match -> our key); fully anchored, first match wins
_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^transformer\.embeddings\.cls_token$"), lambda m: "cls_token"),
    (re.compile(r"^transformer\.embeddings\.hybrid_model\.root\.conv\.weight$"), lambda m: "resnet.conv_root.weight"),
    (
        re.compile(r"^transformer\.embeddings\.hybrid_model\.root\.gn\.(weight|bias)$"),
        lambda m: f"resnet.gn_root.{m[1]}",
    ),
    (
        re.compile(rf"^transformer\.embeddings\.hybrid_model\.body\.block(\d+)\.unit(\d+)\.{_UNIT}$"),
        lambda m: f"resnet.stages.{int(m[1]) - 1}.{int(m[2]) - 1}.{m[3]}",
    ),
    (re.compile(r"^transformer\.embeddings\.patch_embeddings\.(weight|bias)$"), lambda m: f"patch_embed.{m[1]}"),
    (
        re.compile(
            r"^transformer\.encoder\.layer\.(\d+)\.(attention_norm|ffn_norm|ffn\.fc1|ffn\.fc2|attn\.out)\.(weight|bias)$"
        ),
        lambda m: f"layers.{m[1]}.{_LAYER_RENAMES[m[2]]}.{m[3]}",
    ),
    (re.compile(r"^transformer\.encoder\.encoder_norm\.(weight|bias)$"), lambda m: f"norm.{m[1]}"),
    (re.compile(r"^decoder\.conv_more\.0\.weight$"), lambda m: "decoder.conv_more.conv.weight"),
    (re.compile(rf"^decoder\.conv_more\.1\.{_BN}$"), lambda m: f"decoder.conv_more.adn.N.{m[1]}"),
    (
        re.compile(r"^decoder\.blocks\.(\d+)\.conv([12])\.0\.weight$"),
        lambda m: f"decoder.blocks.{m[1]}.conv{m[2]}.conv.weight",
    ),
    (
        re.compile(rf"^decoder\.blocks\.(\d+)\.conv([12])\.1\.{_BN}$"),
        lambda m: f"decoder.blocks.{m[1]}.conv{m[2]}.adn.N.{m[3]}",
    ),
    (re.compile(r"^segmentation_head\.0\.(weight|bias)$"), lambda m: f"seg_head.{m[1]}"),
    (re.compile(r"^dual_task_segmentation_head\.0\.(weight|bias)$"), lambda m: f"lsf_head.{m[1]}"),
    (re.compile(r"^head\.(weight|bias)$"), lambda m: f"cls_head.{m[1]}"),
]
_QKV = re.compile(r"^transformer\.encoder\.layer\.(\d+)\.attn\.(query|key|value)\.(weight|bias)$")
_LAYER = re.compile(r"^transformer\.encoder\.layer\.(\d+)\.")


def _strip(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def is_authors_state_dict(state: Mapping[str, object]) -> bool:
    """Whether ``state`` has the authors' key names (TransUNet's ``transformer.embeddings...``), not ours."""
    return any(_strip(str(k)).startswith(("transformer.embeddings.", "transformer.encoder.")) for k in state)


def _reference_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Shapes of a default :class:`MTTransUNet` with as many Transformer layers as ``state`` has (meta device)."""
    from monai_mtt.networks.mt_transunet import MTTransUNet

    layers = {int(m[1]) for k in state if (m := _LAYER.match(_strip(k)))}
    with torch.device("meta"):
        net = MTTransUNet(num_layers=max(layers) + 1 if layers else 4)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def convert_authors_state_dict(
    state: Mapping[str, torch.Tensor], network: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Map a state dict saved by the authors' training code to :class:`MTTransUNet`'s keys.

    Args:
        state: the authors' state dict (their key names, with or without the ``module.`` prefix that
            ``DataParallel`` adds).
        network: the network the result is for; its state dict gives the expected keys and shapes.
            Default: an ``MTTransUNet`` with default sizes and as many Transformer layers as ``state``.

    Returns:
        a state dict for ``network`` (``load_state_dict(..., strict=True)`` accepts it).

    Raises:
        ValueError: naming every key of ``state`` that has no counterpart, every key whose shape
            differs from the network's, and every network key that ``state`` does not provide.
    """
    expected = (
        {k: tuple(v.shape) for k, v in getattr(network, "module", network).state_dict().items()}
        if network is not None
        else _reference_shapes(state)
    )
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, tuple[str, torch.Tensor]]] = {}
    unknown: list[str] = []
    misshaped: list[str] = []
    seen: set[str] = set()  # our keys that some authors' key maps to (well-shaped or not)
    for key, value in state.items():
        k = _strip(str(key))
        if AUTHORS_DROPPED_KEYS.match(k):
            continue
        if m := _QKV.match(k):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = (str(key), value)
            continue
        for pattern, rename in _RULES:
            if m := pattern.match(k):
                ours = rename(m)
                break
        else:
            unknown.append(str(key))
            continue
        if ours not in expected:
            unknown.append(f"{key} (-> {ours}, which the network does not have)")
            continue
        seen.add(ours)
        if tuple(value.shape) != expected[ours]:
            misshaped.append(f"{key}: {tuple(value.shape)}, expected {expected[ours]} (for {ours})")
        else:
            out[ours] = value
    missing: list[str] = []
    for (layer, kind), parts in sorted(qkv.items()):
        ours = f"layers.{layer}.attn.qkv.{kind}"
        if ours not in expected:
            unknown += [f"{name} (-> {ours}, which the network does not have)" for name, _ in parts.values()]
            continue
        seen.add(ours)
        part_shape = (expected[ours][0] // 3, *expected[ours][1:])
        bad = [
            f"{n}: {tuple(v.shape)}, expected {part_shape} (for {ours})"
            for n, v in parts.values()
            if tuple(v.shape) != part_shape
        ]
        misshaped += bad
        absent = [p for p in ("query", "key", "value") if p not in parts]
        missing += [f"transformer.encoder.layer.{layer}.attn.{p}.{kind} (for {ours})" for p in absent]
        if not bad and not absent:
            out[ours] = torch.cat([parts[p][1] for p in ("query", "key", "value")], dim=0)
    missing += [f"a value for our key {k}" for k in expected if k not in seen]
    problems = [f"unknown key {u}" for u in unknown] + [f"wrong shape {s}" for s in misshaped]
    problems += [f"missing {m}" for m in missing]
    if problems:
        raise ValueError(
            "this state dict does not fit MTTransUNet as an authors' (JingyeChen/MT-TransUNet, "
            "vit_seg_modeling_combine R50-ViT-B_16) checkpoint; is it from that code, and does the network "
            "have the same num_layers and sizes?\n  " + "\n  ".join(problems)
        )
    return out
