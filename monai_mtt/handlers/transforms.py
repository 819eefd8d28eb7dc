"""Output transforms that pick what MONAI's metric handlers read from the evaluator output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["one_vs_rest"]


def one_vs_rest(class_index: int) -> Callable[[Any], tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Output transform for ``ROCAUC``: probability and label of ``class_index`` vs the rest.

    Reads ``pred_cls`` (class probabilities) and ``class_onehot`` from the (decollated) evaluator
    output, e.g. ``one_vs_rest(1)`` for melanoma, ``one_vs_rest(2)`` for seborrheic keratosis.
    """

    def _transform(output: Sequence[dict] | dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        items = [output] if isinstance(output, dict) else output
        preds, labels = [], []
        for item in items:
            preds.append(torch.as_tensor(item["pred_cls"]).reshape(-1)[class_index : class_index + 1])
            labels.append(torch.as_tensor(item["class_onehot"]).reshape(-1)[class_index : class_index + 1])
        return preds, labels

    return _transform
