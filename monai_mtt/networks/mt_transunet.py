"""MT-TransUNet (Chen et al., 2022): one Transformer encoder, segmentation tokens and a cls token."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_mtt.keys import OutputKeys
from monai_mtt.networks.decoder import CascadedUpsamplingDecoder
from monai_mtt.networks.resnetv2 import ResNetV2Encoder
from monai_mtt.networks.transformer import ViTLayer

__all__ = ["MTTransUNet", "MTTransUNetInfer"]


class MTTransUNet(nn.Module):
    """Multi-task TransUNet: lesion mask, level-set function and lesion class from one forward.

    The R50 hybrid encoder (ResNetV2 (3, 4, 9) -> 1x1 patch embedding at 1/16) produces the
    segmentation tokens; one zero-initialised learnable ``cls`` token is appended (eq. 1). There is
    no positional embedding, so any input whose sides are multiples of 16 works (224, 256, 288,
    224x320, ...). ``num_layers`` pre-LN Transformer blocks (eq. 2-3) and a final LayerNorm follow.
    The segmentation tokens go through the cascaded upsampling decoder with skips to a mask head
    (2 logits) and a level-set head (tanh); the cls token goes through a linear classifier.

    Class order of ``cls``: 0 nevus, 1 melanoma, 2 seborrheic keratosis.

    Args:
        in_channels: image channels.
        num_classes: classification outputs (3 for ISIC-2017).
        seg_channels: mask-logit channels (2: background, lesion).
        hidden_size: token width D (768).
        num_layers: Transformer blocks N (4; Table 2 ablates 0/2/4/6/8).
        num_heads: attention heads (12).
        mlp_dim: MLP width (3072).
        dropout_rate: token and MLP dropout (0.1; the attention output projection has none, as in the authors' code).
        resnet_depths: bottleneck units per ResNet stage.
        resnet_widths: ResNet stage widths; the first two give the 1/4 and 1/8 skips.
        root_channels: width of the ResNet root (the 1/2 skip).
        resnet_norm_groups: GroupNorm groups in the ResNet (32).
        decoder_head_channels: width of the decoder's first 3x3 convolution.
        decoder_channels: widths of the four x2 up blocks.
        attention_layer: which block's cls attention ``attn`` reports (negative counts from the end).

    Shape:
        ``forward(x)`` with ``x`` of shape ``(B, in_channels, H, W)``, H and W multiples of 16, returns a
        dict: ``seg`` ``(B, 2, H, W)`` logits, ``lsf`` ``(B, 1, H, W)`` in (-1, 1) (not with
        ``return_level_set=False``), ``cls``
        ``(B, num_classes)`` logits and, with ``return_attention=True``, ``attn`` ``(B, H/16, W/16)``:
        the cls token's head-averaged attention over the segmentation tokens, summing to 1 (eq. 9).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 3,
        seg_channels: int = 2,
        hidden_size: int = 768,
        num_layers: int = 4,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        dropout_rate: float = 0.1,
        resnet_depths: Sequence[int] = (3, 4, 9),
        resnet_widths: Sequence[int] = (256, 512, 1024),
        root_channels: int = 64,
        resnet_norm_groups: int = 32,
        decoder_head_channels: int = 512,
        decoder_channels: Sequence[int] = (256, 128, 64, 16),
        attention_layer: int = -1,
    ) -> None:
        super().__init__()
        if len(resnet_depths) != 3:
            raise ValueError(f"resnet_depths must have 3 stages (1/4, 1/8, 1/16), got {tuple(resnet_depths)}.")
        if len(decoder_channels) != 4:
            raise ValueError(f"decoder_channels must have 4 up blocks (1/16 -> 1/1), got {tuple(decoder_channels)}.")
        if num_layers > 0 and not -num_layers <= attention_layer < num_layers:
            raise ValueError(f"attention_layer {attention_layer} is out of range for {num_layers} layers.")
        self.patch_size = 16  # the 1/16 feature map; one token per 16x16 pixels
        self.num_layers = num_layers
        self.attention_layer = attention_layer % num_layers if num_layers > 0 else 0
        self.resnet = ResNetV2Encoder(in_channels, root_channels, resnet_depths, resnet_widths, resnet_norm_groups)
        self.patch_embed = nn.Conv2d(self.resnet.out_channels, hidden_size, kernel_size=1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.dropout = nn.Dropout(dropout_rate)
        self.layers = nn.ModuleList(ViTLayer(hidden_size, mlp_dim, num_heads, dropout_rate) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size, eps=1e-6)
        self.decoder = CascadedUpsamplingDecoder(
            hidden_size, decoder_head_channels, decoder_channels, self.resnet.skip_channels
        )
        self.seg_head = nn.Conv2d(decoder_channels[-1], seg_channels, kernel_size=3, padding=1)
        self.lsf_head = nn.Conv2d(decoder_channels[-1], 1, kernel_size=3, padding=1)
        self.cls_head = nn.Linear(hidden_size, num_classes)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False, return_level_set: bool = True
    ) -> dict[str, torch.Tensor]:
        return self.outputs(x, return_attention, return_level_set)

    @torch.jit.export
    def outputs(
        self, x: torch.Tensor, return_attention: bool = False, return_level_set: bool = True
    ) -> dict[str, torch.Tensor]:
        """The output dict (see the class docstring); ``forward`` of this class, kept callable by name
        so that subclasses with other ``forward`` signatures (and their TorchScript) still offer it.
        ``return_level_set=False`` leaves out ``lsf`` (and its head's work): inference uses the mask and class."""
        h, w = x.shape[-2], x.shape[-1]
        if h % self.patch_size != 0 or w % self.patch_size != 0:
            raise ValueError(
                f"MTTransUNet needs image sides that are multiples of {self.patch_size}, got {h}x{w}: "
                "resize or pad the input (e.g. to 224x224, 256x256 or 288x288)."
            )
        feats, skips = self.resnet(x)
        emb = self.patch_embed(feats)  # (B, D, h, w)
        bsz, d, gh, gw = emb.shape
        tokens = emb.flatten(2).transpose(1, 2)  # (B, N, D)
        z = torch.cat([tokens, self.cls_token.expand(bsz, -1, -1)], dim=1)  # cls appended, eq. (1)
        z = self.dropout(z)
        attn = torch.empty(0)
        for i, layer in enumerate(self.layers):
            if return_attention and i == self.attention_layer:
                # (a ModuleList yields nn.Module to mypy; these are ViTLayers, and TorchScript has no cast)
                z, a = layer.forward_with_cls_attention(z)  # type: ignore[operator]
                attn = a.view(bsz, gh, gw)
            else:
                z = layer(z)
        z = self.norm(z)
        seg_tokens = z[:, :-1].transpose(1, 2).reshape(bsz, d, gh, gw)
        y = self.decoder(seg_tokens, skips)
        # ``.value``: TorchScript compiles these to plain string keys (it has no str-Enum dict keys)
        out = {OutputKeys.SEG.value: self.seg_head(y), OutputKeys.CLS.value: self.cls_head(z[:, -1])}
        if return_level_set:
            out[OutputKeys.LSF.value] = torch.tanh(self.lsf_head(y))
        if return_attention:
            if self.num_layers == 0:
                raise ValueError("return_attention needs at least one Transformer layer (num_layers > 0).")
            out[OutputKeys.ATTN.value] = attn
        return out


class MTTransUNetInfer(MTTransUNet):
    """:class:`MTTransUNet` with a single-tensor (or fixed-tuple) output, for MONAI tools and export.

    ``verify_net_in_out``, MONAI Label and MONAI Deploy read ``output.shape[1]`` as the segmentation
    channels: this class returns the softmax mask probabilities ``(B, 2, H, W)``. With
    ``with_classes=True`` it returns the fixed tuple ``(seg probabilities, class probabilities)`` used
    for TorchScript / ONNX export. It is a subclass with the same parameters and state-dict keys, so a
    training checkpoint loads into it unchanged; the inferers call the multi-output
    ``MTTransUNet.forward`` on it directly.

    Args:
        with_classes: also return the softmax class probabilities ``(B, num_classes)``.
        kwargs: :class:`MTTransUNet` arguments.
    """

    __constants__ = ("with_classes",)

    def __init__(self, with_classes: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.with_classes = with_classes

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        out = self.outputs(x, False, False)
        seg = out[OutputKeys.SEG.value].softmax(dim=1)
        if self.with_classes:
            return seg, out[OutputKeys.CLS.value].softmax(dim=1)
        return seg
