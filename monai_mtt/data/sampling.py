"""Class-balanced sampling for the classification stream (ISIC 2017 is 69% nevus)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch.utils.data import WeightedRandomSampler

from monai_mtt.keys import BatchKeys

__all__ = ["class_balanced_weights", "class_balanced_sampler"]


def class_balanced_weights(items: Sequence[dict], key: str = BatchKeys.CLASS) -> torch.Tensor:
    """Per-item weights ``1 / n_class`` so that every class carries the same total weight.

    Items lacking ``key`` form one group of their own.

    Args:
        items: datalist items.
        key: the class field.

    Returns:
        ``(len(items),)`` float64 weights summing to the number of groups.

    Raises:
        ValueError: ``items`` is empty.
    """
    if not items:
        raise ValueError("class_balanced_weights needs at least one item (is the classification stream empty?).")
    groups = [repr(item.get(key)) for item in items]
    counts = Counter(groups)
    return torch.tensor([1.0 / counts[g] for g in groups], dtype=torch.float64)


def class_balanced_sampler(
    items: Sequence[dict], num_samples: int | None = None, seed: int = 0, key: str = BatchKeys.CLASS
) -> WeightedRandomSampler:
    """A ``WeightedRandomSampler`` drawing each class with equal probability (with replacement).

    Use it as a ``DataLoader``'s ``sampler`` (with ``shuffle=False``) for the classification-only
    stream: a batch then holds on average as many melanomas and keratoses as nevi.

    Args:
        items: the dataset's items, in dataset order.
        num_samples: draws per pass (default ``len(items)``).
        seed: seed of the sampler's own generator (a pass's draws depend only on it and the pass number).
        key: the class field.
    """
    weights = class_balanced_weights(items, key)
    generator = torch.Generator().manual_seed(int(seed))
    # torch annotates weights as Sequence[float]; it documents and accepts a tensor
    return WeightedRandomSampler(weights, num_samples or len(items), replacement=True, generator=generator)  # type: ignore[arg-type]
