"""Lesion classification scores of the ISIC 2017 (Part 3) and PH2 evaluation protocols.

Class order everywhere in ``monai_mtt``: ``0`` nevus, ``1`` melanoma, ``2`` seborrheic keratosis.

ISIC 2017 scores two one-vs-rest binary problems from the ``N x 3`` probabilities:

* melanoma vs rest, probability column 1: ``M_ACC``, ``M_SE``, ``M_SP``, ``M_AUC``;
* seborrheic keratosis vs rest, probability column 2: ``K_ACC``, ``K_SE``, ``K_SP``, ``K_AUC``;
* ``AVG_ACC = (M_ACC + K_ACC) / 2``.

PH2 (as in the MT-TransUNet paper) is two-class, melanoma vs nevus (common + atypical): from
``N x 3`` probabilities column 1 is used, from ``N x 2`` probabilities (nevus, melanoma) column 1
too; labels are ``0`` nevus / ``1`` melanoma. Keys ``M_ACC``, ``M_SE``, ``M_SP``, ``M_AUC``.

Decision rule (``decision``, see :data:`DECISION_RULES`; every report says which one it used):

* ``"argmax"`` (default): a case is predicted positive for class ``c`` when ``c`` is the argmax of
  its probability row (3 classes; for PH2 the row as given, 2 or 3 columns; ties go to the lower
  class index). This is the authors' rule (``validate.py``), so the paper's M_/K_ ACC, SE, SP
  come from it.
* ``"threshold"``: one-vs-rest, predicted positive when the class probability is ``>= threshold``
  (0.5), as the ISIC 2017 challenge scored independent per-class probabilities.

AUC does not depend on the rule. Definitions (``P`` = positives, ``N`` = negatives of the binary
problem): ``ACC = (TP + TN) / (P + N)``,
``SE = TP / P``, ``SP = TN / N``; ``AUC`` is the area under the ROC curve from
``monai.metrics.compute_roc_auc``, which equals the Mann-Whitney statistic with ties counted 1/2.

Undefined values: when the labels of a binary problem hold only one class (e.g. a subset with no
melanoma), ``AUC`` and the rate over the empty class (``SE`` with no positive, ``SP`` with no
negative) are undefined; they are returned as ``NaN`` with a note (see ``notes`` in
:meth:`ClassificationReport.aggregate` and :func:`undefined_notes`), never an exception.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from typing import Any, Union

import numpy as np
import torch
from monai.metrics import compute_confusion_matrix_metric, compute_roc_auc

from monai_mtt import CLASS_NAMES
from monai_mtt.utils import to_numpy

__all__ = [
    "CLASS_NAMES",
    "DECISION_RULES",
    "describe_decision",
    "ISIC2017_CLASSIFICATION_KEYS",
    "PH2_CLASSIFICATION_KEYS",
    "ArrayLike",
    "binary_classification_scores",
    "roc_auc",
    "roc_curve",
    "isic2017_classification_scores",
    "ph2_classification_scores",
    "undefined_notes",
    "ClassificationReport",
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float], Sequence[Sequence[float]]]

#: keys of :func:`isic2017_classification_scores`, in the column order of the paper's Table 4.
ISIC2017_CLASSIFICATION_KEYS: tuple[str, ...] = (
    "M_ACC",
    "M_SE",
    "M_SP",
    "M_AUC",
    "K_ACC",
    "K_SE",
    "K_SP",
    "K_AUC",
    "AVG_ACC",
)
#: keys of :func:`ph2_classification_scores`.
PH2_CLASSIFICATION_KEYS: tuple[str, ...] = ("M_ACC", "M_SE", "M_SP", "M_AUC")

_PREFIX_NAMES = {"M": "melanoma", "K": "seborrheic keratosis"}

#: the decision rules of the ACC / SE / SP scores: 3-class argmax (default) or one-vs-rest threshold.
DECISION_RULES: tuple[str, ...] = ("argmax", "threshold")


def describe_decision(decision: str, threshold: float = 0.5) -> str:
    """One line naming a decision rule, for reports: ``"argmax over the class probabilities"`` or
    ``"one-vs-rest probability >= 0.5"``."""
    _check_decision(decision)
    if decision == "argmax":
        return "argmax over the class probabilities"
    return f"one-vs-rest probability >= {threshold:g}"


def _check_decision(decision: str) -> None:
    if decision not in DECISION_RULES:
        raise ValueError(f"decision must be one of {DECISION_RULES}, got {decision!r}.")


def _predicted(p: np.ndarray, column: int, decision: str, threshold: float) -> np.ndarray:
    """Boolean ``N`` vector: predicted as class ``column`` under ``decision``."""
    _check_decision(decision)
    if decision == "argmax":
        return np.argmax(p, axis=1) == column  # first maximum: ties go to the lower class index
    return p[:, column] >= threshold


def _check_binary(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = to_numpy(scores, np.float64).reshape(-1)
    y = to_numpy(labels, np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}.")
    if s.size == 0:
        raise ValueError("no cases to score (empty scores and labels).")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values.")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"binary labels must be 0 or 1, got values {np.unique(y).tolist()}.")
    return s, y.astype(np.int64)


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of one binary problem (``monai.metrics.compute_roc_auc``).

    Args:
        scores: ``N`` scores, larger means more likely positive.
        labels: ``N`` binary labels (``1`` positive).

    Returns:
        the AUC in ``[0, 1]`` (tied scores count 1/2, as in the Mann-Whitney U statistic), or
        ``NaN`` when ``labels`` hold a single class (AUC is undefined then; no warning is raised,
        use :func:`undefined_notes` to explain it).
    """
    s, y = _check_binary(scores, labels)
    if np.unique(y).size < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # MONAI annotates the result as array-like; for one binary column it is a float
        return float(compute_roc_auc(torch.as_tensor(s), torch.as_tensor(y)))  # type: ignore[arg-type]


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve points of one binary problem, one point per distinct score (ties kept together).

    Args:
        scores: ``N`` scores, larger means more likely positive.
        labels: ``N`` binary labels (``1`` positive); both classes must be present.

    Returns:
        ``(fpr, tpr, thresholds)``: the curve starts at ``(0, 0)`` (threshold ``+inf``) and the
        point ``i > 0`` is the operating point "positive if score >= thresholds[i]".

    Raises:
        ValueError: if only one class is present (the curve is undefined).
    """
    s, y = _check_binary(scores, labels)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC curve is undefined when the labels hold a single class.")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


def binary_classification_scores(
    scores: ArrayLike, labels: ArrayLike, threshold: float = 0.5, predicted: ArrayLike | None = None
) -> dict[str, float]:
    """Accuracy, sensitivity, specificity (at ``threshold``) and ROC AUC of one binary problem.

    Args:
        scores: ``N`` probabilities of the positive class.
        labels: ``N`` binary labels (``1`` positive).
        threshold: a case is predicted positive when its score is ``>= threshold``.
        predicted: ``N`` booleans, the decisions to score instead of ``scores >= threshold`` (e.g.
            from a multi-class argmax); ``AUC`` still comes from ``scores``.

    Returns:
        ``{"ACC", "SE", "SP", "AUC"}`` floats; ``SE`` is NaN without positives, ``SP`` NaN without
        negatives, ``AUC`` NaN unless both classes are present.
    """
    s, y = _check_binary(scores, labels)
    if predicted is None:
        pred = s >= threshold
    else:
        pred = to_numpy(predicted, bool).reshape(-1)
        if pred.shape != s.shape:
            raise ValueError(f"predicted and scores differ in length: {pred.shape[0]} vs {s.shape[0]}.")
    truth = y == 1
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = int(s.size) - tp - fp - fn
    cm = torch.tensor([tp, fp, tn, fn], dtype=torch.float64)
    out = {
        key: float(compute_confusion_matrix_metric(name, cm).reshape(-1)[0])
        for key, name in (("ACC", "accuracy"), ("SE", "sensitivity"), ("SP", "specificity"))
    }
    out["AUC"] = roc_auc(s, y)
    return out


def _probabilities(probs: ArrayLike, n_classes: Sequence[int]) -> np.ndarray:
    p = to_numpy(probs, np.float64)
    if p.ndim != 2 or p.shape[1] not in n_classes:
        widths = " or ".join(f"N x {c}" for c in n_classes)
        raise ValueError(f"expected an {widths} probability array, got shape {p.shape}.")
    if p.shape[0] == 0:
        raise ValueError("no cases to score (empty probability array).")
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("probabilities must be finite and within [0, 1].")
    return p


def _labels(labels: ArrayLike, n: int, allowed: Sequence[int]) -> np.ndarray:
    y = to_numpy(labels, np.float64).reshape(-1)
    if y.size != n:
        raise ValueError(f"{n} probability rows but {y.size} labels.")
    if not np.all(np.isin(y, allowed)):
        raise ValueError(f"labels must be integers in {list(allowed)}, got values {np.unique(y).tolist()}.")
    return y.astype(np.int64)


def isic2017_classification_scores(
    probs: ArrayLike, labels: ArrayLike, threshold: float = 0.5, decision: str = "argmax"
) -> dict[str, float]:
    """ISIC 2017 Part 3 scores: melanoma vs rest and seborrheic keratosis vs rest.

    Args:
        probs: ``N x 3`` class probabilities in the order (nevus, melanoma, seborrheic keratosis);
            rows need not sum to one. The threshold rule and the AUCs use only columns 1 and 2.
        labels: ``N`` integer labels in ``{0, 1, 2}``.
        threshold: binary decision threshold of the ``"threshold"`` rule (positive when ``prob >= threshold``).
        decision: ``"argmax"`` (default, the authors' rule) or ``"threshold"``; see the module docstring.

    Returns:
        dict with :data:`ISIC2017_CLASSIFICATION_KEYS` (floats in ``[0, 1]`` or NaN when undefined).
    """
    p = _probabilities(probs, (3,))
    y = _labels(labels, p.shape[0], (0, 1, 2))
    out: dict[str, float] = {}
    for prefix, column in (("M", 1), ("K", 2)):
        pred = _predicted(p, column, decision, threshold)
        for key, value in binary_classification_scores(p[:, column], y == column, predicted=pred).items():
            out[f"{prefix}_{key}"] = value
    out["AVG_ACC"] = (out["M_ACC"] + out["K_ACC"]) / 2.0
    return {k: out[k] for k in ISIC2017_CLASSIFICATION_KEYS}


def ph2_classification_scores(
    probs: ArrayLike, labels: ArrayLike, threshold: float = 0.5, decision: str = "argmax"
) -> dict[str, float]:
    """PH2 two-class scores (melanoma vs nevus, common and atypical nevi together).

    Args:
        probs: ``N x 3`` (nevus, melanoma, keratosis) or ``N x 2`` (nevus, melanoma) probabilities;
            the melanoma probability is column 1 in both layouts.
        labels: ``N`` labels, ``0`` nevus or ``1`` melanoma (PH2 has no keratosis).
        threshold: binary decision threshold of the ``"threshold"`` rule (melanoma when ``prob >= threshold``).
        decision: ``"argmax"`` (default: melanoma when column 1 is the row's argmax, so a keratosis
            argmax of a 3-class row counts as not melanoma) or ``"threshold"``.

    Returns:
        dict with :data:`PH2_CLASSIFICATION_KEYS`.
    """
    p = _probabilities(probs, (2, 3))
    y = _labels(labels, p.shape[0], (0, 1))
    pred = _predicted(p, 1, decision, threshold)
    return {f"M_{k}": v for k, v in binary_classification_scores(p[:, 1], y, predicted=pred).items()}


def undefined_notes(scores: dict[str, float]) -> list[str]:
    """Human-readable explanations for the NaN entries of a classification score dict.

    Args:
        scores: output of :func:`isic2017_classification_scores` or :func:`ph2_classification_scores`.

    Returns:
        one sentence per undefined score (empty list when every score is defined).
    """
    reasons = {
        "AUC": "AUC is undefined because the labels hold only one class for {name} vs rest",
        "SE": "SE is undefined because there is no {name} case (no positive)",
        "SP": "SP is undefined because every case is {name} (no negative)",
    }
    notes = []
    for key, value in scores.items():
        if isinstance(value, float) and math.isnan(value) and "_" in key:
            prefix, metric = key.split("_", 1)
            if metric in reasons and prefix in _PREFIX_NAMES:
                notes.append(f"{key}: " + reasons[metric].format(name=_PREFIX_NAMES[prefix]) + "; reported as NaN.")
            else:
                notes.append(f"{key}: undefined (depends on an undefined score); reported as NaN.")
    return notes


class ClassificationReport:
    """Accumulate classification probabilities and labels over an evaluation loop.

    Example::

        report = ClassificationReport(protocol="isic2017")
        for batch in loader:
            report.update(torch.softmax(logits, 1), batch["label"], batch["image_id"])
        result = report.aggregate()  # {"scores": {...}, "decision": "argmax", "notes": [...], ...}

    Args:
        protocol: ``"isic2017"`` (3 classes, M_* K_* AVG_ACC) or ``"ph2"`` (melanoma vs nevus, M_*).
        threshold: binary decision threshold of the ``"threshold"`` rule.
        decision: ``"argmax"`` (default) or ``"threshold"`` (see the module docstring).
    """

    def __init__(self, protocol: str = "isic2017", threshold: float = 0.5, decision: str = "argmax") -> None:
        if protocol not in ("isic2017", "ph2"):
            raise ValueError(f"protocol must be 'isic2017' or 'ph2', got {protocol!r}.")
        _check_decision(decision)
        self.protocol = protocol
        self.threshold = threshold
        self.decision = decision
        self._probs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._ids: list[Hashable] = []

    def __len__(self) -> int:
        return len(self._ids)

    def reset(self) -> None:
        """Forget every case added so far."""
        self._probs.clear()
        self._labels.clear()
        self._ids.clear()

    def update(self, probs: ArrayLike, labels: ArrayLike, image_ids: Sequence[Hashable] | None = None) -> None:
        """Add a batch of cases.

        Args:
            probs: ``B x C`` probabilities (``C = 3``, or ``C`` in ``{2, 3}`` for ``"ph2"``); a single
                case may be given as a 1D vector of ``C`` probabilities.
            labels: ``B`` integer labels (a single int for a single case).
            image_ids: ``B`` unique ids; defaults to running case numbers.

        Raises:
            ValueError: on shape mismatches, out-of-range values or duplicate ids.
        """
        p = to_numpy(probs, np.float64)
        if p.ndim == 1:
            p = p[None]
        allowed_c = (3,) if self.protocol == "isic2017" else (2, 3)
        p = _probabilities(p, allowed_c)
        if self._probs and p.shape[1] != self._probs[0].shape[1]:
            raise ValueError(f"probability width changed from {self._probs[0].shape[1]} to {p.shape[1]}.")
        y = _labels(labels, p.shape[0], (0, 1, 2) if self.protocol == "isic2017" else (0, 1))
        if image_ids is None:
            ids: list[Hashable] = list(range(len(self._ids), len(self._ids) + p.shape[0]))
        else:
            ids = list(image_ids)
            if len(ids) != p.shape[0]:
                raise ValueError(f"{p.shape[0]} probability rows but {len(ids)} image ids.")
        seen = set(self._ids)
        dup = [i for i in ids if i in seen] + [i for n, i in enumerate(ids) if i in ids[:n]]
        if dup:
            raise ValueError(f"image ids already added: {dup}.")
        self._probs.append(p)
        self._labels.append(y)
        self._ids.extend(ids)

    def aggregate(self) -> dict[str, Any]:
        """Scores over every case added so far.

        Returns:
            ``{"scores": {key: float}, "decision": rule, "threshold": float, "notes": [str], "count": int,
            "per_image": {image_id: {"label": int, "probs": [float, ...]}}}``.

        Raises:
            ValueError: if nothing was added.
        """
        if not self._ids:
            raise ValueError("no cases were added to this report.")
        p = np.concatenate(self._probs)
        y = np.concatenate(self._labels)
        fn = isic2017_classification_scores if self.protocol == "isic2017" else ph2_classification_scores
        scores = fn(p, y, self.threshold, self.decision)
        per_image = {i: {"label": int(lab), "probs": row.tolist()} for i, lab, row in zip(self._ids, y, p)}
        return {
            "scores": scores,
            "decision": self.decision,
            "threshold": self.threshold,
            "notes": undefined_notes(scores),
            "count": int(y.size),
            "per_image": per_image,
        }
