"""Load Google's ImageNet ``R50+ViT-B_16.npz`` (the file TransUNet uses) into :class:`MTTransUNet`.

The file is never downloaded here: pass the path of a local copy (for example
``imagenet21k_R50+ViT-B_16.npz`` from the ViT release). Loaded: the ResNet root and every
``block{i}/unit{j}``, the patch embedding, the first ``num_layers`` Transformer encoder blocks and the
final encoder norm. Not loaded (no counterpart, or trained from scratch as in the paper): the cls
token, the positional embedding, the decoder and the heads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from monai_mtt.networks.mt_transunet import MTTransUNet
from monai_mtt.networks.resnetv2 import BottleneckUnit, ResNetV2Stage
from monai_mtt.networks.transformer import ViTLayer

__all__ = ["load_pretrained", "npz_key_map", "PretrainedWeightsError"]


class PretrainedWeightsError(RuntimeError):
    """The weight file is missing, lacks keys, or has arrays of the wrong shape."""


def _hwio_to_oihw(a: np.ndarray) -> np.ndarray:
    return a.transpose(3, 2, 0, 1)


def _dense_t(a: np.ndarray) -> np.ndarray:
    """Flax kernels are (in, ..., out): flatten to (in, out) and transpose to torch's (out, in)."""
    return a.reshape(a.shape[0], -1).T if a.ndim == 2 else a.reshape(-1, a.shape[-1]).T


def _attn_in_t(a: np.ndarray) -> np.ndarray:
    """query/key/value kernel (D, heads, d_head) -> torch (heads*d_head, D)."""
    return a.reshape(a.shape[0], -1).T


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


Entry = tuple[str, torch.Tensor, Callable[[np.ndarray], np.ndarray]]


def _unit_entries(prefix: str, unit: BottleneckUnit) -> Iterator[Entry]:
    for i, (conv, gn) in enumerate(((unit.conv1, unit.gn1), (unit.conv2, unit.gn2), (unit.conv3, unit.gn3)), 1):
        yield f"{prefix}/conv{i}/kernel", conv.weight, _hwio_to_oihw
        yield f"{prefix}/gn{i}/scale", gn.weight, _flat
        yield f"{prefix}/gn{i}/bias", gn.bias, _flat
    if unit.downsample is not None and unit.gn_proj is not None:
        yield f"{prefix}/conv_proj/kernel", unit.downsample.weight, _hwio_to_oihw
        yield f"{prefix}/gn_proj/scale", unit.gn_proj.weight, _flat
        yield f"{prefix}/gn_proj/bias", unit.gn_proj.bias, _flat


def npz_key_map(net: MTTransUNet) -> Iterator[Entry]:
    """Every ``(npz key, target tensor, converter)`` that :func:`load_pretrained` copies.

    The qkv projection of each block is one combined tensor in MONAI's ``SABlock``; its query, key
    and value slices are yielded as separate targets (views into it).
    """
    r = net.resnet
    yield "conv_root/kernel", r.conv_root.weight, _hwio_to_oihw
    yield "gn_root/scale", r.gn_root.weight, _flat
    yield "gn_root/bias", r.gn_root.bias, _flat
    for b, stage in enumerate(r.stages, 1):
        for u, unit in enumerate(cast(ResNetV2Stage, stage), 1):
            yield from _unit_entries(f"block{b}/unit{u}", cast(BottleneckUnit, unit))
    yield "embedding/kernel", net.patch_embed.weight, _hwio_to_oihw
    yield "embedding/bias", cast(torch.Tensor, net.patch_embed.bias), _flat  # Conv2d(bias=True)
    for i, layer in enumerate(cast(Iterable[ViTLayer], net.layers)):
        root = f"Transformer/encoderblock_{i}"
        d = layer.norm1.normalized_shape[0]
        # MONAI types these ``Linear | Identity``; a ViTLayer always has both projections
        qkv, out_proj = cast(nn.Linear, layer.attn.qkv), cast(nn.Linear, layer.attn.out_proj)
        qkv_w, qkv_b = qkv.weight, qkv.bias
        for j, name in enumerate(("query", "key", "value")):
            yield f"{root}/MultiHeadDotProductAttention_1/{name}/kernel", qkv_w[j * d : (j + 1) * d], _attn_in_t
            yield f"{root}/MultiHeadDotProductAttention_1/{name}/bias", qkv_b[j * d : (j + 1) * d], _flat
        yield (
            f"{root}/MultiHeadDotProductAttention_1/out/kernel",
            out_proj.weight,
            lambda a: a.reshape(-1, a.shape[-1]).T,
        )
        yield f"{root}/MultiHeadDotProductAttention_1/out/bias", out_proj.bias, _flat
        yield f"{root}/LayerNorm_0/scale", layer.norm1.weight, _flat
        yield f"{root}/LayerNorm_0/bias", layer.norm1.bias, _flat
        yield f"{root}/LayerNorm_2/scale", layer.norm2.weight, _flat
        yield f"{root}/LayerNorm_2/bias", layer.norm2.bias, _flat
        yield f"{root}/MlpBlock_3/Dense_0/kernel", layer.mlp.linear1.weight, _dense_t
        yield f"{root}/MlpBlock_3/Dense_0/bias", layer.mlp.linear1.bias, _flat
        yield f"{root}/MlpBlock_3/Dense_1/kernel", layer.mlp.linear2.weight, _dense_t
        yield f"{root}/MlpBlock_3/Dense_1/bias", layer.mlp.linear2.bias, _flat
    yield "Transformer/encoder_norm/scale", net.norm.weight, _flat
    yield "Transformer/encoder_norm/bias", net.norm.bias, _flat


def load_pretrained(net: nn.Module, path: str | os.PathLike) -> list[str]:
    """Copy ImageNet R50+ViT-B/16 weights from a local ``.npz`` into ``net`` in place.

    Args:
        net: an :class:`MTTransUNet` (or a ``DistributedDataParallel`` / ``DataParallel`` around one).
        path: local path of ``R50+ViT-B_16.npz`` (Google's ViT release; no download happens).

    Returns:
        the npz keys that were loaded.

    Raises:
        PretrainedWeightsError: the file does not exist or cannot be read, or any expected key is
            missing or has a different number of values than its target (all problems listed).
    """
    model = getattr(net, "module", net)
    if not isinstance(model, MTTransUNet):
        raise TypeError(f"load_pretrained expects an MTTransUNet, got {type(model).__name__}.")
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(
            f"Pretrained weight file not found: '{path}'. Download Google's ImageNet 'R50+ViT-B_16.npz' "
            "(note the '+'; TransUNet's instructions name it imagenet21k/R50+ViT-B_16.npz) on a machine with "
            "internet access and pass its local path as `pretrained_path`."
        )
    try:
        weights = np.load(path)
        keys = set(weights.files)
    except Exception as e:  # zipfile/pickle errors vary
        raise PretrainedWeightsError(f"Cannot read '{path}' as an .npz archive ({e}); is the download complete?") from e
    entries = list(npz_key_map(model))
    problems = []
    for key, target, convert in entries:
        if key not in keys:
            problems.append(f"missing key '{key}'")
            continue
        arr = convert(np.asarray(weights[key]))
        if arr.size != target.numel() or (arr.ndim == target.ndim and tuple(arr.shape) != tuple(target.shape)):
            problems.append(f"key '{key}' has shape {tuple(weights[key].shape)}, expected {tuple(target.shape)}")
    if problems:
        raise PretrainedWeightsError(
            f"'{path}' does not match MTTransUNet (R50+ViT-B/16 expected; ViT-B/16 without R50, or "
            f"L/16 files have other keys):\n  " + "\n  ".join(problems)
        )
    with torch.no_grad():
        for key, target, convert in entries:
            arr = convert(np.asarray(weights[key]))
            target.copy_(torch.from_numpy(np.ascontiguousarray(arr)).reshape(target.shape).to(target.dtype))
    return [key for key, _, _ in entries]
