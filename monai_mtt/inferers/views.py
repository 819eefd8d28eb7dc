"""The test-time views of the paper (section 4.3): flips and right-angle rotations, with their inverses.

A view is one entry of :data:`VIEW_TRANSFORMS`: its name and the ``(forward, inverse)`` pair acting on
the last two (spatial) dimensions. Adding an entry adds a view everywhere (TTA, configs, apps).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

__all__ = ["VIEWS", "VIEW_TRANSFORMS", "apply_view", "check_view", "invert_view"]

ViewFn = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _flip(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.flip(dim)


def _rot(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """``quarter_turns`` x 90 degrees counter-clockwise (negative: clockwise)."""
    return torch.rot90(x, quarter_turns, dims=(-2, -1))


#: name -> (forward, inverse) on ``(..., H, W)``: ``hflip`` mirrors columns, ``vflip`` rows,
#: ``rotK`` turns K degrees counter-clockwise (undone by turning back); flips are their own inverse.
VIEW_TRANSFORMS: dict[str, tuple[ViewFn, ViewFn]] = {
    "identity": (_identity, _identity),
    "hflip": (partial(_flip, dim=-1), partial(_flip, dim=-1)),
    "vflip": (partial(_flip, dim=-2), partial(_flip, dim=-2)),
    "rot90": (partial(_rot, quarter_turns=1), partial(_rot, quarter_turns=-1)),
    "rot180": (partial(_rot, quarter_turns=2), partial(_rot, quarter_turns=-2)),
    "rot270": (partial(_rot, quarter_turns=3), partial(_rot, quarter_turns=-3)),
}

#: the view names, in table order (the paper's six).
VIEWS = tuple(VIEW_TRANSFORMS)


def check_view(view: str) -> tuple[ViewFn, ViewFn]:
    """The ``(forward, inverse)`` pair of ``view``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return VIEW_TRANSFORMS[view]
    except (KeyError, TypeError):
        raise ValueError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}.") from None


def apply_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """Transform ``(..., H, W)`` by ``view`` (see :data:`VIEW_TRANSFORMS`)."""
    return check_view(view)[0](x)


def invert_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """Undo :func:`apply_view`."""
    return check_view(view)[1](x)
