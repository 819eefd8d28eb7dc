"""Per-image ISIC 2017 segmentation scores against hand-counted pixel values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, MeanIoU

from monai_mtt.metrics import (
    SEGMENTATION_KEYS,
    SegmentationReport,
    as_binary_mask,
    confusion_counts,
    segmentation_scores,
)

# 4 x 5 truth: a 2 x 3 lesion (6 pixels)
TRUTH = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)
# prediction shifted one column right: TP = 4 (cols 2-3), FP = 2 (col 4), FN = 2 (col 1), TN = 20 - 8 = 12
SHIFTED = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 1],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.uint8,
)


def test_hand_counted_shifted_lesion():
    assert confusion_counts(SHIFTED, TRUTH) == (4, 2, 12, 2)  # (TP, FP, TN, FN)
    s = segmentation_scores(SHIFTED, TRUTH)
    assert list(s) == list(SEGMENTATION_KEYS)
    assert s["JA"] == pytest.approx(4 / 8)  # TP / (TP+FP+FN) = 4 / 8 = 0.5
    assert s["DI"] == pytest.approx(8 / 12)  # 2TP / (2TP+FP+FN) = 8 / 12 = 0.667
    assert s["AC"] == pytest.approx(16 / 20)  # (TP+TN) / 20 = 0.8
    assert s["SE"] == pytest.approx(4 / 6)  # TP / (TP+FN) = 0.667
    assert s["SP"] == pytest.approx(12 / 14)  # TN / (TN+FP) = 0.857
    assert s["JA_thresholded"] == 0.0  # 0.5 < 0.65


def test_hand_counted_over_segmentation_passes_threshold():
    pred = TRUTH.copy()
    pred[0, 0] = 1  # one extra pixel: TP = 6, FP = 1, FN = 0, TN = 13
    s = segmentation_scores(pred, TRUTH)
    assert s["JA"] == pytest.approx(6 / 7)  # 0.857 >= 0.65
    assert s["JA_thresholded"] == pytest.approx(6 / 7)
    assert s["DI"] == pytest.approx(12 / 13)
    assert s["AC"] == pytest.approx(19 / 20)
    assert s["SE"] == 1.0  # 6 / 6
    assert s["SP"] == pytest.approx(13 / 14)


def test_threshold_boundary_and_custom_threshold():
    # truth 20 px lesion row block; pred covers 13 of them: JA = 13/20 = 0.65 exactly -> kept
    truth = np.ones((4, 5), bool)
    pred = np.zeros((4, 5), bool)
    pred.flat[:13] = True
    s = segmentation_scores(pred, truth)
    assert s["JA"] == pytest.approx(0.65)
    assert s["JA_thresholded"] == pytest.approx(0.65)
    assert segmentation_scores(pred, truth, jaccard_threshold=0.7)["JA_thresholded"] == 0.0


def test_edge_cases():
    empty = np.zeros((4, 5), np.uint8)
    # both empty: TP = FP = FN = 0, TN = 20 -> JA = DI = 1 by convention, AC = 1, SE = 1 (no lesion), SP = 1
    assert segmentation_scores(empty, empty) == {k: 1.0 for k in SEGMENTATION_KEYS}

    # empty truth, 3 FP: TP = 0, FP = 3, FN = 0, TN = 17
    fp3 = empty.copy()
    fp3[0, :3] = 1
    s = segmentation_scores(fp3, empty)
    assert s["JA"] == 0.0 and s["DI"] == 0.0 and s["JA_thresholded"] == 0.0
    assert s["AC"] == pytest.approx(17 / 20)
    assert s["SE"] == 1.0  # TP + FN = 0 -> convention 1.0
    assert s["SP"] == pytest.approx(17 / 20)

    # empty prediction, 6-px truth: TP = 0, FP = 0, FN = 6, TN = 14
    s = segmentation_scores(empty, TRUTH)
    assert s["JA"] == 0.0 and s["DI"] == 0.0
    assert s["AC"] == pytest.approx(14 / 20)
    assert s["SE"] == 0.0
    assert s["SP"] == 1.0  # 14 / 14

    # truth covers the whole image, pred half: TP = 10, FN = 10, FP = TN = 0 -> SP = 1 by convention
    full = np.ones((4, 5), np.uint8)
    half = np.zeros((4, 5), np.uint8)
    half[:2] = 1
    s = segmentation_scores(half, full)
    assert s["JA"] == pytest.approx(0.5) and s["DI"] == pytest.approx(2 / 3)
    assert s["AC"] == pytest.approx(0.5) and s["SE"] == pytest.approx(0.5) and s["SP"] == 1.0


@pytest.mark.parametrize(
    "pred",
    [
        SHIFTED.astype(bool),
        SHIFTED * 255,
        SHIFTED.astype(np.float32),
        torch.from_numpy(SHIFTED.astype(np.float32)),
        torch.from_numpy(SHIFTED)[None],  # 1 x H x W
        SHIFTED[..., None],  # H x W x 1
    ],
    ids=["bool", "0-255", "float", "torch", "1xHxW", "HxWx1"],
)
def test_encodings_give_same_scores(pred):
    assert segmentation_scores(pred, TRUTH * 255)["JA"] == pytest.approx(0.5)


def test_size_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        segmentation_scores(TRUTH, TRUTH.T)


@pytest.mark.parametrize("bad", [TRUTH * 128 + 1, np.array([[0, 1], [2, 0]]), TRUTH * 0.5])
def test_non_binary_rejected(bad):
    with pytest.raises(ValueError, match="not a binary mask"):
        as_binary_mask(bad, "pred")


def test_non_2d_rejected():
    with pytest.raises(ValueError, match="2D"):
        as_binary_mask(np.zeros((2, 4, 5)))


def test_agrees_with_monai_dice_and_iou():
    rng = np.random.default_rng(0)
    truth = rng.random((6, 1, 17, 23)) > 0.5
    pred = rng.random((6, 1, 17, 23)) > 0.4
    dice = DiceMetric(include_background=True, reduction="none")(
        torch.from_numpy(pred).float(), torch.from_numpy(truth).float()
    ).reshape(-1)
    iou = MeanIoU(include_background=True, reduction="none")(
        torch.from_numpy(pred).float(), torch.from_numpy(truth).float()
    ).reshape(-1)
    for b in range(6):
        s = segmentation_scores(pred[b, 0], truth[b, 0])
        assert s["DI"] == pytest.approx(float(dice[b]), abs=1e-6)
        assert s["JA"] == pytest.approx(float(iou[b]), abs=1e-6)


def test_report_mixes_image_sizes():
    report = SegmentationReport()
    report.update(SHIFTED, TRUTH, "a")  # JA 0.5, DI 2/3, AC 0.8, SE 2/3, SP 6/7, JA_thr 0
    small = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    report.update(small, small, "b")  # perfect 3x3: all 1
    assert len(report) == 2
    out = report.aggregate()
    assert out["count"] == 2
    assert set(out["per_image"]) == {"a", "b"}
    assert out["per_image"]["b"]["JA"] == 1.0
    assert out["mean"]["JA"] == pytest.approx((0.5 + 1) / 2)  # 0.75
    assert out["mean"]["DI"] == pytest.approx((2 / 3 + 1) / 2)  # 5/6
    assert out["mean"]["AC"] == pytest.approx((0.8 + 1) / 2)  # 0.9
    assert out["mean"]["SP"] == pytest.approx((6 / 7 + 1) / 2)
    assert out["mean"]["JA_thresholded"] == pytest.approx((0 + 1) / 2)  # 0.5
    with pytest.raises(ValueError, match="already added"):
        report.update(small, small, "b")
    with pytest.raises(ValueError, match=r"^c: .*\(3, 3\)"):
        report.update(small, TRUTH, "c")
    report.reset()
    assert len(report) == 0 and np.isnan(report.aggregate()["mean"]["JA"])
