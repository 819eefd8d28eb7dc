"""The test-time views of the paper (section 4.3): flips and right-angle rotations, with their inverses."""

from __future__ import annotations

import torch

__all__ = ["VIEWS", "apply_view", "invert_view"]

# name -> (forward, inverse) on the last two (spatial) dims
VIEWS = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")


def apply_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """Transform ``(..., H, W)`` by ``view``: ``hflip`` mirrors columns, ``vflip`` rows, ``rotK`` turns K degrees
    counter-clockwise."""
    if view == "identity":
        return x
    if view == "hflip":
        return x.flip(-1)
    if view == "vflip":
        return x.flip(-2)
    if view in ("rot90", "rot180", "rot270"):
        return torch.rot90(x, int(view[3:]) // 90, dims=(-2, -1))
    raise ValueError(f"unknown view '{view}'; choose from {VIEWS}.")


def invert_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """Undo :func:`apply_view` (flips are their own inverse; a K-degree turn is undone by -K)."""
    if view in ("rot90", "rot180", "rot270"):
        return torch.rot90(x, -(int(view[3:]) // 90), dims=(-2, -1))
    return apply_view(x, view)
