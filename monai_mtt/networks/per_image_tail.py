"""Inference-time rewrite of the decoder: its high-resolution up blocks run one image at a time.

The TTA's forward is a batch of six views. At the coarse end of the decoder a batch keeps the matrix
products large, which pays; at the fine end it only makes every intermediate six times larger. There, in
a batch of six at 288 px, the upsampled inputs, the factorized blocks' tap maps and their outputs are
30-120 MiB each: above glibc's largest ``mmap`` threshold (32 MiB), so each call maps fresh memory and
page-faults it in, and no tensor of a block stays in cache between its operations. One image at a time
the same blocks allocate a sixth as much. Measured on the 2-core CPU: the decoder and mask head at the
TTA's three scales took 0.88x the whole-batch time with the last two blocks image by image (paired median
of 25 rounds; 0.91x from the second block on, 0.96x for the last block alone), the whole 18-view TTA
0.92-0.97x in four paired runs from the second or third block on (0.99x in a fifth; the VM's noise is of that
size), and one TTA call on a 3000x2000 image added 348-445 MB to the peak resident
memory in three runs instead of 620 MB. The function is unchanged: every image goes through the same operations alone
(equal bit for bit in those runs; the tests compare in float64).

Only the ``fused`` backend on a CPU uses it: an accelerator wants the whole batch, and an exported graph
(ONNX) would record the loop for the batch size it was traced with.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

from monai_mtt.networks.decoder import CascadedUpsamplingDecoder, skip_for

__all__ = ["FIRST_PER_IMAGE_BLOCK", "PerImageTailDecoder", "per_image_tail"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

#: the default split: the decoder's up blocks from this one on (2: the last two, H/4 -> H) run image by image,
#: the choice measured best in the module docstring.
FIRST_PER_IMAGE_BLOCK = 2


class PerImageTailDecoder(nn.Module):
    """A :class:`~monai_mtt.networks.CascadedUpsamplingDecoder` (its modules, not copies) whose up blocks from
    ``first`` on run one image at a time; the earlier ones, and ``conv_more``, on the whole batch.

    Args:
        decoder: the decoder to run (folded and factorized or not); its modules are shared.
        first: index of the first up block run image by image (0 .. number of blocks).

    Shape:
        as the decoder's: ``(B, in_channels, H/16, W/16)`` and skips -> ``(B, out_channels, H, W)``.
    """

    def __init__(self, decoder: CascadedUpsamplingDecoder, first: int = FIRST_PER_IMAGE_BLOCK) -> None:
        super().__init__()
        if not 0 <= first <= len(decoder.blocks):
            raise ValueError(f"first must be in 0..{len(decoder.blocks)} (the decoder's up blocks), got {first}.")
        self.conv_more = decoder.conv_more
        self.blocks = decoder.blocks
        self.n_skip = decoder.n_skip
        self.out_channels = decoder.out_channels
        self.first = first

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv_more(x)
        for i in range(self.first):
            x = self.blocks[i](x, skip_for(skips, i, self.n_skip))
        images = list(x.split(1))
        for i in range(self.first, len(self.blocks)):
            block, skip = self.blocks[i], skip_for(skips, i, self.n_skip)
            images = [block(y, None if skip is None else skip[j : j + 1]) for j, y in enumerate(images)]
        return torch.cat(images)


def per_image_tail(module: ModuleT, first: int = FIRST_PER_IMAGE_BLOCK) -> ModuleT:
    """Replace (in place) every :class:`~monai_mtt.networks.CascadedUpsamplingDecoder` in ``module`` by a
    :class:`PerImageTailDecoder` running its blocks from ``first`` on image by image; returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, CascadedUpsamplingDecoder):
            setattr(module, name, PerImageTailDecoder(child, first))
        else:
            per_image_tail(child, first)
    return module
