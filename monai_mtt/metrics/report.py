"""Paper-style result tables (markdown) and figures (ROC curves, per-image score histogram).

Tables follow the layout of the MT-TransUNet paper:

* Table 3 (ISIC 2017 segmentation): one row per score (JA, DI, pixel-AC, pixel-SE, pixel-SP), one
  column for the method, values in percent with one decimal;
* Table 4 (ISIC 2017 classification): one row for the method, columns
  M_ACC M_SE M_SP M_AUC K_ACC K_SE K_SP K_AUC Average ACC, in percent with one decimal;
* PH2 variants (Tables 5 and 6): the same segmentation layout, and the melanoma-only columns
  M_ACC M_SE M_SP M_AUC.

Classification captions name the decision rule the ACC / SE / SP came from (3-class argmax or
one-vs-rest threshold; see :mod:`monai_mtt.metrics.classification`).

Undefined values (NaN or ``None`` in JSON results) print as ``n/a``.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no global backend change) and
written only to the path given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monai_mtt.utils import to_numpy

from .classification import ArrayLike, describe_decision, roc_auc, roc_curve
from .segmentation import JACCARD_THRESHOLD, SEGMENTATION_KEYS

__all__ = [
    "METHOD_NAME",
    "format_segmentation_table",
    "format_classification_table",
    "format_tables",
    "RocSeries",
    "roc_series",
    "plot_roc",
    "plot_score_histogram",
]

#: column / row label of this project's results in the tables.
METHOD_NAME = "MT-TransUNet (ours)"

_SEG_ROWS: tuple[tuple[str, str], ...] = (
    ("JA", "JA"),
    ("DI", "DI"),
    ("AC", "pixel-AC"),
    ("SE", "pixel-SE"),
    ("SP", "pixel-SP"),
)
_ISIC_CLS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("M_ACC", "M_ACC"),
    ("M_SE", "M_SE"),
    ("M_SP", "M_SP"),
    ("M_AUC", "M_AUC"),
    ("K_ACC", "K_ACC"),
    ("K_SE", "K_SE"),
    ("K_SP", "K_SP"),
    ("K_AUC", "K_AUC"),
    ("AVG_ACC", "Average ACC"),
)
_PH2_CLS_COLUMNS = _ISIC_CLS_COLUMNS[:4]

_DATASETS = {
    "isic2017": ("ISIC 2017", 3, 4),
    "ph2": ("PH2", 5, 6),
}


def _pct(value: Any) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    return "n/a" if math.isnan(v) else f"{100.0 * v:.1f}"


def _scores_of(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept a flat score dict, a report's aggregate() or a ``monai-mtt score`` JSON result."""
    for key in ("mean", "scores"):
        if key in entry and isinstance(entry[key], Mapping):
            return entry[key]
    return entry


def _require_keys(kind: str, entries: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Raise ValueError naming the keys missing from the first of ``entries`` that lacks some."""
    for entry in entries:
        missing = [k for k in keys if k not in entry]
        if missing:
            raise ValueError(f"{kind} scores lack keys {missing}.")


def _markdown_table(caption: str, corner: str, header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Caption line, blank line, then a table: a label column headed ``corner`` and right-aligned value columns."""
    lines = [caption, "", f"| {corner} | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(header)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def format_segmentation_table(
    scores: Mapping[str, Any],
    method: str = METHOD_NAME,
    dataset: str = "isic2017",
    others: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> str:
    """Markdown segmentation table laid out like the paper's Table 3 (Table 5 for PH2).

    Args:
        scores: mean scores with keys ``JA, DI, AC, SE, SP`` (fractions in ``[0, 1]``), or a
            :class:`~monai_mtt.metrics.SegmentationReport` aggregate / ``score seg`` JSON result.
        method: column header for these results.
        dataset: ``"isic2017"`` or ``"ph2"`` (caption and table number only).
        others: ``(method, scores)`` of further methods on the same images (e.g. the no-learning
            baseline), one column each after this one.

    Returns:
        the markdown text (caption line, blank line, table), values in percent with one decimal.
    """
    name, seg_no, _ = _DATASETS[dataset]
    columns = [(method, _scores_of(scores))] + [(m, _scores_of(o)) for m, o in others]
    _require_keys("segmentation", [s for _, s in columns], [k for k, _ in _SEG_ROWS])
    return _markdown_table(
        f"**Table {seg_no}.** Lesion segmentation on {name} (%, mean over images).",
        "Metric",
        [m for m, _ in columns],
        [(label, [_pct(s[key]) for _, s in columns]) for key, label in _SEG_ROWS],
    )


def format_classification_table(
    scores: Mapping[str, Any],
    method: str = METHOD_NAME,
    dataset: str | None = None,
    decision: str | None = None,
    threshold: float | None = None,
    others: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> str:
    """Markdown classification table laid out like the paper's Table 4 (Table 6 for PH2).

    Args:
        scores: ``M_*`` (and for ISIC 2017 ``K_*``, ``AVG_ACC``) fractions, or a
            :class:`~monai_mtt.metrics.ClassificationReport` aggregate / ``score cls`` JSON result.
        method: row label for these results.
        dataset: ``"isic2017"`` or ``"ph2"``; by default ``"isic2017"`` when ``K_ACC`` is present,
            else ``"ph2"``.
        decision, threshold: the decision rule of ACC / SE / SP, printed in the caption; by default
            read from ``scores`` (a report aggregate or ``score cls`` result carries them); a flat
            score dict without them is captioned "decision rule not recorded".
        others: ``(method, scores)`` of further methods on the same images, one row each.

    Returns:
        the markdown text (caption line, blank line, table), values in percent with one decimal.
    """
    decision = decision if decision is not None else scores.get("decision")
    threshold = threshold if threshold is not None else scores.get("threshold", 0.5)
    rule = f"decision: {describe_decision(decision, float(threshold))}" if decision else "decision rule not recorded"
    s = _scores_of(scores)
    if dataset is None:
        dataset = "isic2017" if "K_ACC" in s else "ph2"
    name, _, cls_no = _DATASETS[dataset]
    columns = _ISIC_CLS_COLUMNS if dataset == "isic2017" else _PH2_CLS_COLUMNS
    rows = [(method, s)] + [(m, _scores_of(o)) for m, o in others]
    _require_keys("classification", [r for _, r in rows], [k for k, _ in columns])
    what = "melanoma (M) and seborrheic keratosis (K) vs rest" if dataset == "isic2017" else "melanoma vs nevus"
    return _markdown_table(
        f"**Table {cls_no}.** Lesion classification on {name}, {what} (%; {rule}).",
        "Method",
        [label for _, label in columns],
        [(m, [_pct(r[key]) for key, _ in columns]) for m, r in rows],
    )


def format_tables(results: Mapping[str, Any], method: str = METHOD_NAME, dataset: str = "isic2017") -> str:
    """All paper tables that ``results`` has scores for, as one markdown document.

    Args:
        results: either ``{"segmentation": ..., "classification": ...}`` (either part optional; each
            a flat score dict, a report aggregate or a ``monai-mtt score`` JSON result), or one such
            part on its own (recognised by its keys). An optional ``"baselines"`` list of
            ``{"method": name, "segmentation": ..., "classification": ...}`` (parts optional),
            scored on the same images, adds each method to the tables: a column of the
            segmentation table, a row of the classification table.
        method: the label of these results in the tables.
        dataset: ``"isic2017"`` (Tables 3 and 4) or ``"ph2"`` (Tables 5 and 6).

    Returns:
        the markdown tables separated by a blank line.

    Raises:
        ValueError: if no segmentation or classification scores are found.
    """
    if dataset not in _DATASETS:
        raise ValueError(f"dataset must be one of {sorted(_DATASETS)}, got {dataset!r}.")
    seg = results.get("segmentation")
    cls = results.get("classification")
    if seg is None and cls is None:
        flat = _scores_of(results)
        if all(k in flat for k, _ in _SEG_ROWS):
            seg = flat
        elif "M_ACC" in flat:
            cls = flat
    baselines = results.get("baselines") or []

    def others(part: str) -> list[tuple[str, Mapping[str, Any]]]:
        return [(b.get("method", "baseline"), b[part]) for b in baselines if b.get(part)]

    parts = []
    if seg is not None:
        parts.append(format_segmentation_table(seg, method, dataset, others=others("segmentation")))
    if cls is not None:
        parts.append(format_classification_table(cls, method, dataset, others=others("classification")))
    if not parts:
        raise ValueError("results hold neither segmentation (JA, DI, ...) nor classification (M_ACC, ...) scores.")
    return "\n\n".join(parts) + "\n"


class RocSeries(NamedTuple):
    """One ROC curve of a one-vs-rest problem; ``fpr``/``tpr`` are None when undefined."""

    name: str
    fpr: np.ndarray | None
    tpr: np.ndarray | None
    auc: float

    @property
    def label(self) -> str:
        """Legend text, e.g. ``"melanoma (AUC = 0.812)"``."""
        if math.isnan(self.auc):
            return f"{self.name} (AUC undefined: one class only)"
        return f"{self.name} (AUC = {self.auc:.3f})"


def roc_series(probs: ArrayLike, labels: ArrayLike) -> list[RocSeries]:
    """Melanoma (column 1) and, for ``N x 3`` input, seborrheic keratosis (column 2) ROC curves.

    Args:
        probs: ``N x 3`` (nevus, melanoma, keratosis) or ``N x 2`` (nevus, melanoma) probabilities.
        labels: ``N`` integer labels (``1`` melanoma, ``2`` keratosis, ``0`` nevus).

    Returns:
        one :class:`RocSeries` per binary problem.
    """
    p = to_numpy(probs, np.float64)
    y = to_numpy(labels, np.float64).reshape(-1).astype(np.int64)
    if p.ndim != 2 or p.shape[1] not in (2, 3) or p.shape[0] != y.size:
        raise ValueError(f"expected N x 3 or N x 2 probabilities and N labels, got {p.shape} and {y.size}.")
    problems = [("melanoma", 1)] + ([("seborrheic keratosis", 2)] if p.shape[1] == 3 else [])
    out = []
    for name, column in problems:
        positive = (y == column).astype(np.int64)
        auc = roc_auc(p[:, column], positive)
        if math.isnan(auc):
            out.append(RocSeries(name, None, None, auc))
        else:
            fpr, tpr, _ = roc_curve(p[:, column], positive)
            out.append(RocSeries(name, fpr, tpr, auc))
    return out


def plot_roc(probs: ArrayLike, labels: ArrayLike, path: str | Path, title: str = "ROC curves") -> Path:
    """Write a PNG with the melanoma and seborrheic keratosis ROC curves, AUC in the legend.

    Args:
        probs: ``N x 3`` or ``N x 2`` probabilities (see :func:`roc_series`).
        labels: ``N`` integer labels.
        path: output PNG file (its folder must exist).
        title: figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    for series in roc_series(probs, labels):
        if series.fpr is None or series.tpr is None:
            ax.plot([], [], label=series.label)  # legend entry only
        else:
            ax.plot(series.fpr, series.tpr, drawstyle="default", linewidth=2, label=series.label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.savefig(path, format="png")
    return path


def plot_score_histogram(
    scores: Mapping[Any, Mapping[str, float]] | Sequence[float],
    path: str | Path,
    key: str = "JA",
    threshold: float | None = JACCARD_THRESHOLD,
    bins: int = 20,
) -> Path:
    """Write a PNG histogram of per-image segmentation scores (default Jaccard, with the 0.65 line).

    Args:
        scores: ``per_image`` mapping of a segmentation result (``{image_id: {key: value}}``) or a
            plain sequence of values in ``[0, 1]``.
        path: output PNG file (its folder must exist).
        key: which score to plot when ``scores`` is a per-image mapping (one of
            :data:`~monai_mtt.metrics.SEGMENTATION_KEYS`).
        threshold: draw a vertical line here (``None`` for none).
        bins: number of bins over ``[0, 1]``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if isinstance(scores, Mapping):
        if key not in SEGMENTATION_KEYS:
            raise ValueError(f"key must be one of {SEGMENTATION_KEYS}, got {key!r}.")
        values = np.array([float(s[key]) for s in scores.values()])
    else:
        values = np.asarray(scores, dtype=np.float64)
    path = Path(path)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(values, bins=bins, range=(0.0, 1.0), color="tab:blue", edgecolor="white")
    if threshold is not None:
        below = int(np.count_nonzero(values < threshold))
        ax.axvline(threshold, color="tab:red", linestyle="--", label=f"{threshold:g} ({below} of {values.size} below)")
        ax.legend(loc="upper left")
    ax.set_xlabel(f"per-image {key}")
    ax.set_ylabel("images")
    ax.set_title(f"{key}: mean {values.mean():.3f} over {values.size} images" if values.size else key)
    fig.savefig(path, format="png")
    return path
