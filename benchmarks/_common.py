"""Timing helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


def median_time(fn: Callable[[], object], runs: int = 10, warmup: int = 2) -> tuple[float, float, float]:
    """(median, min, max) wall seconds of ``fn()`` over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def authors_model(repo: str | None, img_size: int = 224):
    """The authors' released MT-TransUNet (``model/networks/vit_seg_modeling_combine.py``), random init, eval.

    ``repo``: a checkout of JingyeChen/MT-TransUNet (its root or its ``model`` folder). Measured
    beside ours only; never vendored. Needs ``ml_collections``.
    """
    if not repo:
        return None
    root = Path(repo)
    model_dir = root / "model" if (root / "model" / "networks").is_dir() else root
    sys.path.insert(0, str(model_dir))
    from networks.vit_seg_modeling_combine import CONFIGS, VisionTransformer  # type: ignore

    cfg = CONFIGS["R50-ViT-B_16"]
    cfg.n_classes, cfg.n_skip = 2, 3
    cfg.patches.grid = (img_size // 16, img_size // 16)
    torch.manual_seed(0)
    return VisionTransformer(cfg, img_size=img_size, num_classes=2).eval()


def flops_of(fn: Callable[[], object]) -> float:
    """Floating point operations of one call, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
