"""ISIC 2017 / PH2 classification scores against hand-computed values."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from monai_mtt.metrics import (
    ISIC2017_CLASSIFICATION_KEYS,
    ClassificationReport,
    binary_classification_scores,
    isic2017_classification_scores,
    ph2_classification_scores,
    roc_auc,
    roc_curve,
    undefined_notes,
)

# columns: nevus, melanoma, seborrheic keratosis
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # 0 nevus
        [0.2, 0.7, 0.1],  # 1 melanoma, found
        [0.5, 0.4, 0.1],  # 1 melanoma, missed (mel 0.4 ties case 5)
        [0.2, 0.2, 0.6],  # 2 keratosis, found
        [0.3, 0.6, 0.1],  # 2 keratosis, called melanoma
        [0.4, 0.4, 0.2],  # 0 nevus
    ]
)
LABELS = np.array([0, 1, 1, 2, 2, 0])

# Melanoma vs rest, column 1 = [.2 .7 .4 .2 .6 .4], positives {1, 2}; predicted positive (>= .5): {1, 4}
#   TP = 1 (1), FP = 1 (4), FN = 1 (2), TN = 3 (0, 3, 5)
#   ACC = 4/6, SE = 1/2, SP = 3/4
#   AUC, 2 x 4 pairs: case 1 (.7) beats all 4 negatives -> 4; case 2 (.4) beats .2, .2 -> 2, ties .4 -> 0.5,
#   loses to .6 -> 0; (4 + 2.5) / 8 = 0.8125
# Keratosis vs rest, column 2 = [.1 .1 .1 .6 .1 .2], positives {3, 4}; predicted positive: {3}
#   TP = 1, FN = 1, FP = 0, TN = 4 -> ACC = 5/6, SE = 1/2, SP = 1
#   AUC: case 3 (.6) beats all 4 -> 4; case 4 (.1) ties three .1 -> 1.5, loses to .2; 5.5 / 8 = 0.6875
# AVG_ACC = (4/6 + 5/6) / 2 = 0.75
EXPECTED = {
    "M_ACC": 4 / 6, "M_SE": 0.5, "M_SP": 0.75, "M_AUC": 0.8125,
    "K_ACC": 5 / 6, "K_SE": 0.5, "K_SP": 1.0, "K_AUC": 0.6875,
    "AVG_ACC": 0.75,
}


def test_isic2017_hand_computed():
    s = isic2017_classification_scores(PROBS, LABELS)
    assert list(s) == list(ISIC2017_CLASSIFICATION_KEYS)
    for k, v in EXPECTED.items():
        assert s[k] == pytest.approx(v), k


def test_isic2017_accepts_torch():
    s = isic2017_classification_scores(torch.tensor(PROBS, dtype=torch.float32), torch.tensor(LABELS))
    assert s["M_AUC"] == pytest.approx(0.8125) and s["AVG_ACC"] == pytest.approx(0.75)


def _mann_whitney(scores, labels):
    """Independent reference: fraction of (positive, negative) pairs ordered correctly, ties 1/2."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_monai_auc_matches_mann_whitney_with_ties():
    # hand value: pos {.4, .4}, neg {.4, .1}: (.4,.4)->.5 twice, (.4,.1)->1 twice = 3/4
    assert roc_auc([0.4, 0.4, 0.4, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)
    rng = np.random.default_rng(3)
    for _ in range(5):
        scores = np.round(rng.random(40), 1)  # coarse rounding -> many ties
        labels = rng.integers(0, 2, 40)
        assert roc_auc(scores, labels) == pytest.approx(_mann_whitney(scores, labels))


def test_threshold_is_inclusive():
    # a melanoma with probability exactly 0.5 is predicted melanoma
    s = binary_classification_scores([0.5, 0.49], [1, 0])
    assert s["SE"] == 1.0 and s["SP"] == 1.0 and s["ACC"] == 1.0 and s["AUC"] == 1.0


def test_roc_curve_points_and_area():
    # melanoma column of PROBS; distinct thresholds .7 .6 .4 .2 -> (fp, tp) = (0,1) (1,1) (2,2) (4,2)
    fpr, tpr, thr = roc_curve(PROBS[:, 1], LABELS == 1)
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr[1:], [0.7, 0.6, 0.4, 0.2])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(0.8125)
    with pytest.raises(ValueError, match="single class"):
        roc_curve([0.1, 0.2], [0, 0])


def test_ph2_two_and_three_columns():
    # melanoma prob [.2 .7 .4 .9], labels [0 1 1 0]; predicted mel {1, 3}: TP 1, FP 1, FN 1, TN 1
    # ACC = SE = SP = 1/2; AUC pairs: .7>.2, .7<.9, .4>.2, .4<.9 -> 2/4
    two = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    three = np.array([[0.7, 0.2, 0.1], [0.3, 0.7, 0.0], [0.5, 0.4, 0.1], [0.1, 0.9, 0.0]])
    labels = [0, 1, 1, 0]
    expected = {"M_ACC": 0.5, "M_SE": 0.5, "M_SP": 0.5, "M_AUC": 0.5}
    assert ph2_classification_scores(two, labels) == pytest.approx(expected)
    assert ph2_classification_scores(three, labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 1\]"):
        ph2_classification_scores(three, [0, 1, 2, 0])


def test_single_class_gives_nan_with_note_not_crash():
    # no melanoma at all: ACC = SP = 1 (both predicted nevus), SE and AUC undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning spam either
        s = ph2_classification_scores([[0.9, 0.1], [0.8, 0.2]], [0, 0])
    assert s["M_ACC"] == 1.0 and s["M_SP"] == 1.0
    assert math.isnan(s["M_SE"]) and math.isnan(s["M_AUC"])
    notes = undefined_notes(s)
    assert len(notes) == 2
    assert any(n.startswith("M_AUC") and "only one class" in n for n in notes)
    assert any(n.startswith("M_SE") and "no melanoma" in n for n in notes)


def test_input_validation():
    with pytest.raises(ValueError, match="N x 3"):
        isic2017_classification_scores(PROBS[:, :2], LABELS)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        isic2017_classification_scores(PROBS * 2, LABELS)
    with pytest.raises(ValueError, match="6 probability rows but 5 labels"):
        isic2017_classification_scores(PROBS, LABELS[:5])


def test_report_accumulates_batches():
    report = ClassificationReport()
    report.update(torch.tensor(PROBS[:4]), torch.tensor(LABELS[:4]), ["a", "b", "c", "d"])
    report.update(PROBS[4], LABELS[4], ["e"])  # a single case as a vector
    report.update(PROBS[5:], LABELS[5:], ["f"])
    out = report.aggregate()
    assert out["count"] == 6 and out["notes"] == []
    assert out["scores"] == pytest.approx(EXPECTED)
    assert out["per_image"]["e"] == {"label": 2, "probs": pytest.approx([0.3, 0.6, 0.1])}
    with pytest.raises(ValueError, match="already added"):
        report.update(PROBS[:1], LABELS[:1], ["a"])
    ph2 = ClassificationReport(protocol="ph2")
    ph2.update([[0.9, 0.1], [0.2, 0.8]], [0, 1])
    assert ph2.aggregate()["scores"] == pytest.approx({"M_ACC": 1.0, "M_SE": 1.0, "M_SP": 1.0, "M_AUC": 1.0})
