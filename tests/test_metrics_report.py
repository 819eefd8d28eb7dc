"""Paper-style markdown tables and ROC / histogram figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_mtt.metrics import (
    SegmentationReport,
    format_classification_table,
    format_tables,
    plot_roc,
    plot_score_histogram,
    roc_series,
)

SEG = {"JA": 0.79345, "DI": 0.8712, "AC": 0.9449, "SE": 0.8861, "SP": 0.9651, "JA_thresholded": 0.7}
CLS = {
    "M_ACC": 0.8367, "M_SE": 0.5, "M_SP": 0.91999, "M_AUC": 0.8512,
    "K_ACC": 0.9, "K_SE": 0.6, "K_SP": 0.951, "K_AUC": None,  # None: undefined, as in JSON output
    "AVG_ACC": 0.86835,
}


def test_isic_tables_layout_and_rounding():
    text = format_tables({"segmentation": {"mean": SEG}, "classification": {"scores": CLS}})
    lines = text.splitlines()
    assert lines[0].startswith("**Table 3.**") and "ISIC 2017" in lines[0]
    assert "| Metric | MT-TransUNet (ours) |" in lines
    # percentages, one decimal: .79345 -> 79.3, .8712 -> 87.1, .9449 -> 94.5, .8861 -> 88.6, .9651 -> 96.5
    for row in ("| JA | 79.3 |", "| DI | 87.1 |", "| pixel-AC | 94.5 |", "| pixel-SE | 88.6 |", "| pixel-SP | 96.5 |"):
        assert row in lines
    assert any(line.startswith("**Table 4.**") for line in lines)
    assert "| Method | M_ACC | M_SE | M_SP | M_AUC | K_ACC | K_SE | K_SP | K_AUC | Average ACC |" in lines
    # .8367 -> 83.7, .5 -> 50.0, .91999 -> 92.0, .8512 -> 85.1, .9 -> 90.0, .6 -> 60.0, .951 -> 95.1, None -> n/a,
    # .86835 -> 86.8
    assert "| MT-TransUNet (ours) | 83.7 | 50.0 | 92.0 | 85.1 | 90.0 | 60.0 | 95.1 | n/a | 86.8 |" in lines


def test_ph2_variant_and_flat_input():
    ph2 = {"M_ACC": 0.9, "M_SE": float("nan"), "M_SP": 1.0, "M_AUC": 0.95}
    text = format_classification_table(ph2)  # no K_* keys -> PH2 layout
    assert text.splitlines()[0].startswith("**Table 6.**") and "PH2" in text
    assert "| Method | M_ACC | M_SE | M_SP | M_AUC |" in text
    assert "| MT-TransUNet (ours) | 90.0 | n/a | 100.0 | 95.0 |" in text
    seg = format_tables(SEG, dataset="ph2", method="mine")  # flat segmentation dict
    assert seg.startswith("**Table 5.**") and "| Metric | mine |" in seg and "| JA | 79.3 |" in seg
    with pytest.raises(ValueError, match="neither"):
        format_tables({"foo": 1})


def test_table_from_report_aggregate():
    report = SegmentationReport()
    t = np.zeros((4, 5), bool)
    t[1:3, 1:4] = True
    p = np.zeros((4, 5), bool)
    p[1:3, 2:5] = True
    report.update(p, t, "x")  # JA 4/8, DI 8/12, AC 16/20, SE 4/6, SP 12/14
    text = format_tables({"segmentation": report.aggregate()})
    for row in ("| JA | 50.0 |", "| DI | 66.7 |", "| pixel-AC | 80.0 |", "| pixel-SE | 66.7 |", "| pixel-SP | 85.7 |"):
        assert row in text


def test_roc_series_legend_and_png(tmp_path):
    probs = np.array(
        [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1], [0.4, 0.4, 0.2]]
    )
    labels = [0, 1, 1, 2, 2, 0]
    series = roc_series(probs, labels)
    # hand-computed in test_metrics_classification: melanoma AUC 6.5/8, keratosis 5.5/8
    assert [s.label for s in series] == ["melanoma (AUC = 0.812)", "seborrheic keratosis (AUC = 0.688)"]
    out = plot_roc(probs, labels, tmp_path / "roc.png")
    assert out == tmp_path / "roc.png"
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (500, 500)
    # keratosis absent: curve undefined, still plotted with a note
    two = roc_series(probs, [0, 1, 1, 0, 0, 0])
    assert two[1].fpr is None and "undefined" in two[1].label
    plot_roc(probs, [0, 1, 1, 0, 0, 0], tmp_path / "roc2.png")
    assert (tmp_path / "roc2.png").stat().st_size > 0


def test_score_histogram(tmp_path):
    per_image = {"a": {"JA": 0.5}, "b": {"JA": 0.9}, "c": {"JA": 0.7}}
    out = plot_score_histogram(per_image, tmp_path / "ja.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (600, 400)


def test_baselines_add_a_column_and_a_row():
    base_seg = {"JA": 0.4967, "DI": 0.5, "AC": 0.9, "SE": 0.6, "SP": 0.95}
    base_cls = {**{k: 0.5 for k in CLS}, "M_ACC": 0.8125}
    results = {
        "segmentation": {"mean": SEG},
        "classification": {"scores": CLS},
        "baselines": [{"method": "Otsu", "segmentation": {"mean": base_seg}}, {"method": "prior", "classification": base_cls}],
    }
    lines = format_tables(results).splitlines()
    assert "| Metric | MT-TransUNet (ours) | Otsu |" in lines and "| --- | ---: | ---: |" in lines
    assert "| JA | 79.3 | 49.7 |" in lines and "| pixel-SP | 96.5 | 95.0 |" in lines
    assert "| prior | 81.2 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 |" in lines
    assert lines.index("| prior | 81.2 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 | 50.0 |") == len(lines) - 1
    with pytest.raises(ValueError, match="lack keys"):
        format_tables({"segmentation": SEG, "baselines": [{"method": "x", "segmentation": {"JA": 0.1}}]})
