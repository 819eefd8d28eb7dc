"""Timing helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F


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


def synthetic_batch(n: int, size: int, labeled: bool) -> dict[str, torch.Tensor]:
    """A fixed random training batch: ``n`` images ``(n, 3, size, size)`` and classes; labeled batches add a
    box-shaped ``label`` and a placeholder level set ``lsf`` (timing only: the values do not matter)."""
    g = torch.Generator().manual_seed(1 if labeled else 2)
    b = {"image": torch.rand(n, 3, size, size, generator=g), "class": torch.randint(0, 3, (n,), generator=g)}
    if labeled:
        m = torch.zeros(n, 1, size, size)
        m[:, :, size // 4 : 3 * size // 4, size // 5 : 4 * size // 5] = 1
        b["label"], b["lsf"] = m, torch.where(m > 0, -0.5, 0.5)
    return b


class AuthorsTrainStep:
    """One Adam step of the authors' network on ``labeled`` + ``unlabeled`` (one concatenated forward) per call.

    Losses comparable to ours: cross-entropy on the labeled masks and on every class, MSE on the
    labeled level sets, and the DTC term on all images; their data pipeline and per-step level-set
    recomputation are left out, which favours them. ``amp``: CUDA float16 autocast with a
    ``GradScaler`` (CPU: bfloat16 autocast), as :class:`~monai_mtt.engines.SemiSupervisedTrainer` does.
    The model must already be on its device. A call returns the detached loss; ``compute_dtype`` is
    the dtype the network's mask came out in (the precision it really ran at).
    """

    def __init__(self, model: torch.nn.Module, labeled: dict, unlabeled: dict, amp: bool = False) -> None:
        device = next(model.parameters()).device
        self.model = model.train()
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-5)
        cuda = device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if amp and cuda else None
        self.autocast = {"device_type": device.type, "dtype": torch.float16 if cuda else torch.bfloat16, "enabled": amp}
        self.n = labeled["image"].shape[0]
        self.x = torch.cat([labeled["image"], unlabeled["image"]]).to(device)
        self.lab = labeled["label"].to(device)[:, 0].long()
        self.lsf = labeled["lsf"].to(device)
        self.cls = torch.cat([labeled["class"], unlabeled["class"]]).to(device)
        self.compute_dtype: torch.dtype | None = None

    def __call__(self) -> torch.Tensor:
        n = self.n
        self.opt.zero_grad()
        with torch.autocast(**self.autocast):
            mask, dt, logits, *_ = self.model(self.x)
            self.compute_dtype = mask.dtype
            loss = (F.cross_entropy(mask[:n], self.lab) + 0.25 * F.cross_entropy(logits, self.cls)
                    + 5 * F.mse_loss(dt[:n], self.lsf))
            loss = loss + F.mse_loss(torch.sigmoid(-1500 * dt), mask.softmax(1)[:, 1:])
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        return loss.detach()


def flops_of(fn: Callable[[], object]) -> float:
    """Floating point operations of one call, counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
