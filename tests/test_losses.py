"""MTTLoss terms against hand-computed values, the λD ramp, and gradients through the whole network."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import SMALL_NET
from monai_mtt.losses import MTTLoss, dtc_rampup
from monai_mtt.networks import MTTransUNet

BIG = 30.0  # logit gap that makes softmax exactly 0/1 in float32


def _seg_from_fg(fg: torch.Tensor) -> torch.Tensor:
    """2-channel logits whose softmax foreground equals ``fg`` (B, 1, H, W): logits (0, logit(fg))."""
    fg = fg.clamp(1e-12, 1 - 1e-7)
    return torch.cat([torch.zeros_like(fg), torch.log(fg) - torch.log1p(-fg)], dim=1)


def test_mask_cross_entropy_over_channels():
    # two pixels: logits (0, ln 3) -> p(fg) = 3/4. Pixel 1 is lesion, pixel 2 background.
    seg = torch.tensor([[[[0.0, 0.0]], [[math.log(3), math.log(3)]]]])  # (1, 2, 1, 2)
    label = torch.tensor([[[[1.0, 0.0]]]])
    expected = (-math.log(3 / 4) - math.log(1 / 4)) / 2
    assert MTTLoss.mask_loss(seg, label).item() == pytest.approx(expected, rel=1e-6)


def test_cls_cross_entropy_skips_unknown_and_missing():
    logits = torch.tensor([[0.0, 0.0, math.log(2)], [1.0, 1.0, 1.0], [5.0, 0.0, 0.0]])
    target = torch.tensor([2, 0, -1])
    # sample 1: p(2) = 2/4; sample 2: p(0) = 1/3; sample 3 unknown
    expected = (-math.log(0.5) - math.log(1 / 3)) / 2
    assert MTTLoss.cls_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert MTTLoss.cls_loss(logits, None).item() == 0.0
    assert MTTLoss.cls_loss(logits, torch.tensor([-1, -1, -1])).item() == 0.0


def test_dtc_uses_softmax_and_negative_inside_level_set():
    loss = MTTLoss(k=1500)
    seg = torch.zeros(1, 2, 1, 3)  # softmax fg = 0.5 everywhere
    lsf = torch.tensor([[[[0.0, 1.0, -1.0]]]])  # boundary, outside, inside
    # sigmoid(-1500*lsf) = 0.5, 0, 1 -> squared errors 0, 0.25, 0.25
    assert loss.dtc_loss(seg, lsf).item() == pytest.approx(0.5 / 3, rel=1e-6)


def test_arc_is_attention_mass_outside_the_predicted_lesion():
    # 4x4 foreground probability, constant on 2x2 quads: TL 1, TR 0.5, BL 0, BR 0
    fg = torch.tensor([[1.0, 0.5], [0.0, 0.0]]).repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]
    seg = _seg_from_fg(fg)
    attn = torch.tensor([[[0.5, 0.25], [0.25, 0.0]]])
    # bilinear (align_corners=False) 4x4 -> 2x2 samples quad centres: M = [[1, .5], [0, 0]]
    # (1-1)*.5 + (1-.5)*.25 + (1-0)*.25 + (1-0)*0 = 0.375
    assert MTTLoss.arc_loss(seg, attn).item() == pytest.approx(0.375, rel=1e-5)
    # batch mean of per-sample sums
    attn2 = torch.stack([attn[0], torch.tensor([[0.0, 0.0], [0.0, 1.0]])])
    assert MTTLoss.arc_loss(seg.repeat(2, 1, 1, 1), attn2).item() == pytest.approx((0.375 + 1.0) / 2, rel=1e-5)


def test_total_follows_eq_11_and_12():
    loss = MTTLoss(lambda_cls=0.25, lambda_lsf=5.0, lambda_dtc=1.0, lambda_arc=1.0, dtc_ramp=0.5)
    torch.manual_seed(1)
    out = {
        "seg": torch.randn(2, 2, 8, 8),
        "lsf": torch.tanh(torch.randn(2, 1, 8, 8)),
        "cls": torch.randn(2, 3),
        "attn": torch.softmax(torch.randn(2, 4), 1).view(2, 2, 2),
    }
    label = (torch.rand(2, 1, 8, 8) > 0.5).float()
    batch = {"label": label, "lsf": torch.rand(2, 1, 8, 8) * 2 - 1, "class": torch.tensor([0, 2])}
    lab = loss(out, batch, labeled=True)
    assert lab["total"].item() == pytest.approx(
        (lab["mask"] + 0.25 * lab["cls"] + 5 * lab["lsf"] + 0.5 * lab["dtc"] + lab["arc"]).item(), rel=1e-6
    )
    unl = loss(out, {"class": batch["class"]}, labeled=False)
    assert unl["mask"].item() == 0 and unl["lsf"].item() == 0
    assert unl["total"].item() == pytest.approx((0.25 * unl["cls"] + 0.5 * unl["dtc"] + unl["arc"]).item(), rel=1e-6)
    # switching a term off by config (Table 1 ablations)
    off = MTTLoss(lambda_dtc=0.0, lambda_arc=0.0)(out, batch)
    assert off["dtc"].item() == 0 and off["arc"].item() == 0
    with pytest.raises(KeyError, match="LevelSetd"):
        loss(out, {"label": label, "class": batch["class"]}, labeled=True)


def _two_stream_case():
    """2 labeled + 3 unlabeled 2x2 images whose per-image terms are known in closed form.

    Every pixel has p(fg) = 1/2 (equal logits), so per image: mask CE = ln 2; DTC = (1/2 - σ(-k·φ))²
    = 1/4 for φ = ±1 and 0 for φ = 0; ARC = Σ attn / 2 (one token). Class logits are 0 (CE = ln 3)
    or (0, ln 2, 0) with target 1 (p = 2/4, CE = ln 2).
    """
    seg = torch.zeros(5, 2, 2, 2)
    lsf = torch.tensor([1.0, 0.0, -1.0, -1.0, 0.0]).view(5, 1, 1, 1).expand(5, 1, 2, 2).clone()
    cls = torch.zeros(5, 3)
    cls[[2, 4], 1] = math.log(2)
    attn = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.4]).view(5, 1, 1)
    out = {"seg": seg, "lsf": lsf, "cls": cls, "attn": attn}
    lab = {"label": torch.ones(2, 1, 2, 2), "lsf": torch.zeros(2, 1, 2, 2), "class": torch.tensor([0, -1])}
    unl = {"class": torch.tensor([1, 2, 1])}
    return out, lab, unl


def test_stream_reduction_on_hand_computed_values():
    out, lab, unl = _two_stream_case()
    ln2, ln3 = math.log(2), math.log(3)
    weights = {"lambda_cls": 0.25, "lambda_lsf": 5.0, "lambda_dtc": 2.0, "lambda_arc": 3.0}
    # labeled stream: mask ln2; lsf mean((1, 0) - 0)^2 = 1/2; dtc (1/4 + 0)/2; arc (1/2 + 0)/2;
    # cls over the one known class: ln3.  Unlabeled: dtc (1/4 + 1/4 + 0)/3; arc (1/2 + 1/2 + 0.2)/3;
    # cls (ln2 + ln3 + ln2)/3.
    labeled_part = 1.0 * ln2 + 5.0 * 0.5
    eq11 = labeled_part + 0.25 * ln3 + 2.0 * 0.125 + 3.0 * 0.25
    eq12 = 0.25 * (2 * ln2 + ln3) / 3 + 2.0 * (1 / 6) + 3.0 * 0.4
    got_sum = MTTLoss(**weights, stream_reduction="sum").two_streams(out, lab, unl, 2)
    assert got_sum["total"].item() == pytest.approx(eq11 + eq12, rel=1e-6)
    assert got_sum["lab"]["total"].item() == pytest.approx(eq11, rel=1e-6)
    assert got_sum["unl"]["total"].item() == pytest.approx(eq12, rel=1e-6)
    # batch mean: each image once over the 5 images (4 of known class for cls)
    cls_mean = (ln3 + ln2 + ln3 + ln2) / 4
    dtc_mean = (0.25 + 0 + 0.25 + 0.25 + 0) / 5
    arc_mean = (0.5 + 0 + 0.5 + 0.5 + 0.2) / 5
    expected = labeled_part + 0.25 * cls_mean + 2.0 * dtc_mean + 3.0 * arc_mean
    got_mean = MTTLoss(**weights).two_streams(out, lab, unl, 2)  # batch_mean is the default
    assert got_mean["total"].item() == pytest.approx(expected, rel=1e-6)
    # the per-stream terms reported are the same in both modes
    for stream in ("lab", "unl"):
        for name in MTTLoss.terms:
            assert got_mean[stream][name].item() == pytest.approx(got_sum[stream][name].item(), abs=1e-7)
    # DTC ramp scales the shared term in the mean too
    ramped = MTTLoss(**weights, dtc_ramp=0.5).two_streams(out, lab, unl, 2)
    assert ramped["total"].item() == pytest.approx(expected - 1.0 * dtc_mean, rel=1e-6)


def test_stream_reduction_equal_streams_and_edge_cases():
    out, lab, unl = _two_stream_case()
    # 2 + 2 images, all classes known: the batch mean halves the shared terms of the sum
    out4 = {k: v[[0, 1, 2, 3]] for k, v in out.items()}
    lab4 = {**lab, "class": torch.tensor([0, 2])}
    unl4 = {"class": torch.tensor([1, 2])}
    mean = MTTLoss().two_streams(out4, lab4, unl4, 2)
    summed = MTTLoss(stream_reduction="sum").two_streams(out4, lab4, unl4, 2)
    labeled_part = math.log(2) + 5.0 * 0.5
    assert mean["total"].item() == pytest.approx(labeled_part + (summed["total"].item() - labeled_part) / 2, rel=1e-6)
    # no unlabeled batch: both modes are eq. (11)
    alone = MTTLoss().two_streams({k: v[:2] for k, v in out.items()}, lab, None, 2)
    assert "unl" not in alone and alone["total"].item() == pytest.approx(alone["lab"]["total"].item())
    # no known class anywhere: the cls term drops out instead of dividing by zero
    nocls = MTTLoss(lambda_dtc=0.0, lambda_arc=0.0).two_streams(
        out, {**lab, "class": torch.tensor([-1, -1])}, {}, 2
    )
    assert nocls["total"].item() == pytest.approx(labeled_part, rel=1e-6)
    with pytest.raises(ValueError, match="stream_reduction"):
        MTTLoss(stream_reduction="mean")


def test_dtc_rampup_values():
    assert dtc_rampup(0, 20000) == pytest.approx(math.exp(-5))
    assert dtc_rampup(10000, 20000) == pytest.approx(math.exp(-1.25))
    assert dtc_rampup(20000, 20000) == 1.0
    assert dtc_rampup(50000, 20000) == 1.0
    assert dtc_rampup(5, 0) == 1.0
    vals = [dtc_rampup(t, 100) for t in range(101)]
    assert all(a < b for a, b in zip(vals, vals[1:]))


def test_every_parameter_gets_a_gradient_from_the_full_loss():
    net = MTTransUNet(**SMALL_NET).train()
    loss = MTTLoss()
    x = torch.rand(4, 3, 64, 64)
    out = net(x, return_attention=True)
    label = torch.zeros(2, 1, 64, 64)
    label[:, :, 16:48, 20:40] = 1
    lab = {k: v[:2] for k, v in out.items()}
    unl = {k: v[2:] for k, v in out.items()}
    total = loss(lab, {"label": label, "lsf": torch.rand(2, 1, 64, 64) * 2 - 1, "class": torch.tensor([0, 1])})["total"]
    total = total + loss(unl, {"class": torch.tensor([2, 1])}, labeled=False)["total"]
    total.backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert dead == []
