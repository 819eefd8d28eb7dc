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
    format_classification_table,
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


# A table where the two decision rules disagree (columns nevus, melanoma, keratosis; one-vs-rest
# probabilities need not sum to one):
RULE_PROBS = np.array(
    [
        [0.30, 0.40, 0.30],  # a 1 melanoma: argmax melanoma; threshold: 0.40 < 0.5, missed
        [0.10, 0.80, 0.10],  # b 1 melanoma: found by both
        [0.05, 0.55, 0.60],  # c 2 keratosis: argmax keratosis; threshold: melanoma AND keratosis
        [0.60, 0.10, 0.30],  # d 0 nevus: negative for both
        [0.20, 0.35, 0.45],  # e 2 keratosis: argmax keratosis; threshold: 0.45 < 0.5, missed
        [0.50, 0.30, 0.20],  # f 0 nevus
        [0.40, 0.40, 0.20],  # g 1 melanoma: argmax tie nevus/melanoma -> nevus (lower index), missed by both
    ]
)
RULE_LABELS = np.array([1, 1, 2, 0, 2, 0, 1])
# Melanoma vs rest (positives a b g, negatives c d e f):
#   argmax:    predicted {a, b}     TP 2 FN 1 FP 0 TN 4 -> ACC 6/7, SE 2/3, SP 1
#   threshold: predicted {b, c}     TP 1 FN 2 FP 1 TN 3 -> ACC 4/7, SE 1/3, SP 3/4
#   AUC (column 1): a .40 beats .10 .35 .30 (3), b .80 beats all 4, g .40 beats 3 -> 10/12
# Keratosis vs rest (positives c e, negatives a b d f g):
#   argmax:    predicted {c, e}     TP 2 FN 0 FP 0 TN 5 -> ACC 1, SE 1, SP 1
#   threshold: predicted {c}        TP 1 FN 1 FP 0 TN 5 -> ACC 6/7, SE 1/2, SP 1
#   AUC (column 2): .60 and .45 beat .30 .10 .30 .20 .20 -> 1
RULE_EXPECTED = {
    "argmax": {"M_ACC": 6 / 7, "M_SE": 2 / 3, "M_SP": 1.0, "M_AUC": 10 / 12,
               "K_ACC": 1.0, "K_SE": 1.0, "K_SP": 1.0, "K_AUC": 1.0, "AVG_ACC": (6 / 7 + 1) / 2},
    "threshold": {"M_ACC": 4 / 7, "M_SE": 1 / 3, "M_SP": 0.75, "M_AUC": 10 / 12,
                  "K_ACC": 6 / 7, "K_SE": 0.5, "K_SP": 1.0, "K_AUC": 1.0, "AVG_ACC": (4 / 7 + 6 / 7) / 2},
}  # fmt: skip


@pytest.mark.parametrize("decision", ["argmax", "threshold"])
def test_decision_rules_on_hand_made_table(decision):
    s = isic2017_classification_scores(RULE_PROBS, RULE_LABELS, decision=decision)
    assert s == pytest.approx(RULE_EXPECTED[decision])
    report = ClassificationReport(decision=decision)
    report.update(RULE_PROBS, RULE_LABELS)
    out = report.aggregate()
    assert out["decision"] == decision and out["scores"] == pytest.approx(RULE_EXPECTED[decision])
    caption = format_classification_table(out).splitlines()[0]
    assert caption.endswith(
        "decision: argmax over the class probabilities)." if decision == "argmax"
        else "decision: one-vs-rest probability >= 0.5)."
    )


def test_decision_rule_default_and_ph2():
    assert isic2017_classification_scores(RULE_PROBS, RULE_LABELS) == pytest.approx(RULE_EXPECTED["argmax"])
    assert ClassificationReport().decision == "argmax"
    # PH2, 3 columns: rows a, b, d, f, g (melanoma / nevus only). Melanoma predicted by argmax {a, b},
    # by threshold {b}; positives a b g -> argmax ACC 4/5 SE 2/3 SP 1; threshold ACC 3/5 SE 1/3 SP 1
    rows = [0, 1, 3, 5, 6]
    p, y = RULE_PROBS[rows], RULE_LABELS[rows]
    arg = ph2_classification_scores(p, y)
    thr = ph2_classification_scores(p, y, decision="threshold")
    assert (arg["M_ACC"], arg["M_SE"], arg["M_SP"]) == pytest.approx((4 / 5, 2 / 3, 1.0))
    assert (thr["M_ACC"], thr["M_SE"], thr["M_SP"]) == pytest.approx((3 / 5, 1 / 3, 1.0))
    # a keratosis argmax of a 3-class PH2 row counts as "not melanoma"
    assert ph2_classification_scores([[0.1, 0.3, 0.6], [0.1, 0.8, 0.1]], [1, 1])["M_SE"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="decision must be one of"):
        isic2017_classification_scores(RULE_PROBS, RULE_LABELS, decision="max")
    assert "decision rule not recorded" in format_classification_table(RULE_EXPECTED["argmax"])
