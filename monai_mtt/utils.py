"""Small helpers shared across the package: arrays from tensors, JSON-safe numbers, option lists."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["nan_to_none", "parse_list", "to_numpy"]


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A numpy array from a tensor (detached, on the CPU) or anything ``np.asarray`` takes.

    Args:
        x: tensor, array, list or number.
        dtype: the array's dtype; None keeps the input's (bfloat16, which numpy lacks, becomes float32).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(x, dtype=dtype)


def nan_to_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf) replaced by None, for strict JSON.

    Dicts (their keys become strings), lists and tuples (both become lists) are walked recursively;
    anything else is returned as it is.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj


def parse_list(value: Any, cast: Callable[[Any], Any] = str) -> list:
    """An option such as ``--views`` / ``--scales`` as a list: ``"224,256"``, ``"224 256"``, ``224``, ``[224, "256"]``.

    Strings are split at commas, semicolons and white space (empty parts dropped); lists and tuples
    are flattened; None is ``[]``.

    Args:
        value: the option's value.
        cast: applied to every element (e.g. ``int`` for scales).
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [cast(p) for p in re.split(r"[,;\s]+", value) if p]
    if isinstance(value, (list, tuple)):
        return [item for v in value for item in parse_list(v, cast)]
    return [cast(value)]
