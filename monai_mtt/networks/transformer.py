"""The Transformer part of the encoder: pre-LN blocks from MONAI plus the cls-token attention read-out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import TransformerBlock
from torch import nn

__all__ = ["ViTLayer"]


class ViTLayer(TransformerBlock):
    """A ViT-B/16 encoder block (eq. 2-3): ``z' = MSA(LN(z)) + z``, ``z = FFN(LN(z')) + z'``.

    MONAI's :class:`~monai.networks.blocks.TransformerBlock` with fused scaled-dot-product attention
    and three adjustments that it does not expose as arguments:

    * attention-weight dropout and the dropout after the attention output projection are 0, as in
      the authors' code (both use ViT-B/16's ``attention_dropout_rate=0``). MONAI's ``SABlock`` also
      passes its dropout rate to ``scaled_dot_product_attention`` in eval mode, which would make
      inference random; zeroing it fixes both. Only the MLP dropout stays at ``dropout_rate``.
    * LayerNorm eps 1e-6, the value the ImageNet weights were trained with.
    * the unused cross-attention norm is removed, so every parameter is trained.

    Args:
        hidden_size: token width (768).
        mlp_dim: MLP width (3072).
        num_heads: attention heads (12).
        dropout_rate: dropout in the MLP (0.1).
    """

    def __init__(self, hidden_size: int = 768, mlp_dim: int = 3072, num_heads: int = 12, dropout_rate: float = 0.1):
        super().__init__(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias=True, use_flash_attention=True)
        self.attn.dropout_rate = 0.0
        self.attn.drop_weights = nn.Dropout(0.0)
        self.attn.drop_output = nn.Dropout(0.0)
        self.norm1.eps = 1e-6
        self.norm2.eps = 1e-6
        self.norm_cross_attn = nn.Identity()  # type: ignore[assignment]  # MONAI's is a LayerNorm, unused here

    def forward_with_cls_attention(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This block's output and the cls token's attention in it (eq. 9), from one query/key/value projection.

        The same operations as ``forward`` (MONAI's ``TransformerBlock`` and ``SABlock`` for this block's
        settings: one combined qkv projection, fused attention, no mask, no cross-attention); the cls row is
        read from the queries and keys that attention uses instead of projecting the tokens again.

        Args:
            z: the input tokens ``(B, N+1, D)``, cls last.

        Returns:
            ``forward(z)``, and ``(B, N)`` weights as :meth:`cls_attention` returns.
        """
        sa = self.attn
        # (3, B, heads, N+1, d_h); MONAI types qkv as Linear | Identity, ours is a Linear
        qkv = sa.input_rearrange(sa.qkv(self.norm1(z)))
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = F.scaled_dot_product_attention(q, k, v, scale=sa.scale, dropout_p=sa.dropout_rate)
        z = z + sa.drop_output(sa.out_proj(sa.out_rearrange(a)))
        z = z + self.mlp(self.norm2(z))
        return z, self._cls_weights(q[:, :, -1:], k)

    def cls_attention(self, z: torch.Tensor) -> torch.Tensor:
        """The attention of the last token (``cls``) over the other tokens in this block, eq. (9).

        Only the cls query row is computed (no N x N matrix): ``q_cls`` from the cls token, keys
        from all tokens, softmax per head over all N+1 tokens, averaged over heads; then the cls
        entry is discarded and the N segmentation-token weights are renormalised to sum to 1.
        (:meth:`forward_with_cls_attention` gives the same weights with the block's output.)

        Args:
            z: this block's input tokens ``(B, N+1, D)``, cls last.

        Returns:
            ``(B, N)`` non-negative weights summing to 1 per sample.
        """
        d = z.shape[-1]
        x = self.norm1(z)
        # MONAI types qkv as Linear | Identity (TorchScript has no cast); ours is always a Linear
        w: torch.Tensor = self.attn.qkv.weight  # type: ignore[assignment]
        b: torch.Tensor | None = self.attn.qkv.bias  # type: ignore[assignment]
        q_b: torch.Tensor | None = None
        k_b: torch.Tensor | None = None
        if b is not None:
            q_b, k_b = b[:d], b[d : 2 * d]
        q = F.linear(x[:, -1], w[:d], q_b)  # (B, D)
        k = F.linear(x, w[d : 2 * d], k_b)  # (B, N+1, D)
        bsz, n1 = k.shape[0], k.shape[1]
        h: int = self.attn.num_heads
        q = q.view(bsz, h, 1, d // h)
        k = k.view(bsz, n1, h, d // h).transpose(1, 2)  # (B, h, N+1, d_h)
        return self._cls_weights(q, k)

    def _cls_weights(self, q_cls: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` cls weights from the cls query ``(B, h, 1, d_h)`` and all keys ``(B, h, N+1, d_h)``."""
        logits = (q_cls @ k.transpose(-1, -2)).squeeze(2) * self.attn.scale  # (B, h, N+1)
        a = logits.softmax(dim=-1).mean(dim=1)  # average over heads: (B, N+1)
        a_seg = a[:, :-1]  # discard a_c
        return a_seg / a_seg.sum(dim=1, keepdim=True)
