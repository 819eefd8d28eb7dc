"""benchmarks/gpu_report.py in its CPU tiny mode: the printed report parses, matches the JSON and is sane."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from monai_mtt.engines import resolve_amp

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_report  # noqa: E402

FLOAT = r"([0-9]+(?:\.[0-9]+)?|n/a)"


def _field(text: str, pattern: str) -> list[str]:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return list(match.groups())


def _report_block(out: str) -> str:
    assert "=== MT-TransUNet GPU report ===" in out
    return out[out.index("=== MT-TransUNet GPU report ===") :]


CUDA = pytest.param("cuda:0", marks=[pytest.mark.cuda,
                                      pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_tiny_speed_report(device, tmp_path, capsys):
    out_json = tmp_path / "report.json"
    gpu_report.main(["--tiny", "--device", device, "--out", str(out_json), "--work-dir", str(tmp_path / "work")])
    text = _report_block(capsys.readouterr().out)
    report = json.loads(out_json.read_text())
    cuda = device.startswith("cuda")
    env = report["environment"]

    assert _field(text, r"device\s*: .* \(([a-z:0-9]+)\)") == [device] and env["device"] == device
    if cuda:
        assert env["device_name"] == torch.cuda.get_device_name(0) and env["device_name"] in text
        assert f"CUDA {torch.version.cuda}" in text
    assert f"torch {torch.__version__}" in text and env["torch"] == torch.__version__
    # 4 + 4 images (train.yaml's batch sizes) at gpu_report_tiny.yaml's 32 px, 2 timed iterations
    assert "(4+4 images of 32x32 per iteration, 2 timed iterations after 1 warm-up)" in text
    # AMP: float16 autocast + GradScaler on CUDA, bfloat16 autocast on a CPU (what the trainer does)
    expected = {"ours fp32": ("float32", False), "ours amp": ("float16", True) if cuda else ("bfloat16", False)}
    mem = r"([0-9]+) MB" if cuda else r"(n/a) \(CPU\)"
    for name, (dtype, scaler) in expected.items():
        it_s, how, peak = _field(text, rf"{name}\s*:\s*{FLOAT} it/s\s+(\S+(?: \+ GradScaler)?)\s+peak GPU memory {mem}")
        r = report["train_speed"][name]
        assert float(it_s) == pytest.approx(r["it_per_s"], abs=1e-3) and r["it_per_s"] > 0
        assert (r["compute_dtype"], r["grad_scaler"]) == (dtype, scaler)
        assert how == dtype + (" + GradScaler" if scaler else "")
        assert r["images"] == "4+4" and r["size"] == 32
        assert (r["peak_mb"] > 0 and float(peak) == pytest.approx(r["peak_mb"], abs=1)) if cuda else r["peak_mb"] is None
        assert math.isfinite(r["last_loss"]) and r["last_loss"] > 0
    # the evaluator's TTA: gpu_report_tiny.yaml's 3 scales x evaluate.yaml's 6 views
    assert "TTA inference (18 views: scales 32/48/64 x 6 views, one 60x80 image per call, 2 timed calls)" in text
    for name in ("ours fp32", "ours amp"):
        ims, peak = _field(text, rf"{name}\s*:\s*{FLOAT} images/s\s+peak GPU memory {mem}")
        r = report["tta_speed"][name]
        assert float(ims) == pytest.approx(r["images_per_s"], abs=1e-3) and r["images_per_s"] > 0
        assert r["views"] == 18 and r["class_prob_sum"] == pytest.approx(1.0, abs=1e-2)
        assert (r["peak_mb"] > 0) if cuda else r["peak_mb"] is None
    assert "real_run" not in report and "real run" not in text
    assert report["peak_rss_mb"] > 0 and report["total_wall_s"] > 0


def _small_isic_root(source: Path, root: Path) -> dict[str, dict[str, int]]:
    """An official-layout ISIC 2017 root with a Training (8) and a Validation (6) split, all classes in both."""
    rows = list(csv.DictReader(open(source / "ISIC-2017_Training_Part3_GroundTruth.csv")))

    def cls(r: dict) -> int:
        return 1 if float(r["melanoma"]) else 2 if float(r["seborrheic_keratosis"]) else 0

    by_class = {c: [r for r in rows if cls(r) == c] for c in range(3)}
    picks = {"Training": [r for c in range(3) for r in by_class[c][: (4 if c == 0 else 2)]],
             "Validation": [r for c in range(3) for r in by_class[c][4:6]]}
    counts = {}
    for split, chosen in picks.items():
        (root / f"ISIC-2017_{split}_Data").mkdir(parents=True)
        (root / f"ISIC-2017_{split}_Part1_GroundTruth").mkdir()
        for r in chosen:
            i = r["image_id"]
            shutil.copy(source / "ISIC-2017_Training_Data" / f"{i}.jpg", root / f"ISIC-2017_{split}_Data")
            shutil.copy(source / "ISIC-2017_Training_Part1_GroundTruth" / f"{i}_segmentation.png",
                        root / f"ISIC-2017_{split}_Part1_GroundTruth")
        with open(root / f"ISIC-2017_{split}_Part3_GroundTruth.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["image_id", "melanoma", "seborrheic_keratosis"])
            w.writeheader()
            w.writerows({k: r[k] for k in w.fieldnames} for r in chosen)
        counts[split] = {c: sum(cls(r) == c for r in chosen) for c in range(3)}
    return counts


def test_tiny_real_run(shared_data, tmp_path, capsys):
    root = tmp_path / "isic"
    counts = _small_isic_root(shared_data / "isic2017_256", root)
    assert counts == {"Training": {0: 4, 1: 2, 2: 2}, "Validation": {0: 2, 1: 2, 2: 2}}
    out_json, work = tmp_path / "report.json", tmp_path / "work"
    gpu_report.main(["--tiny", "--device", "cpu", "--skip-speed", "--isic-root", str(root), "--out", str(out_json),
                     "--work-dir", str(work)])
    text = _report_block(capsys.readouterr().out)
    run = json.loads(out_json.read_text())["real_run"]
    train, ev = run["training"], run["evaluation"]

    assert "train_speed" not in json.loads(out_json.read_text())
    assert train["images"] == {"train": 8, "val": 6, "unlabeled": 0}
    assert train["iterations"] == 2 and train["image_size"] == 32
    assert train["amp"] is resolve_amp("auto", "cpu")  # train.yaml's default, resolved (not bool("auto"))
    assert 0 < train["setup_s"] < train["wall_s"] and 0 < train["validation_s"] < train["loop_s"] < train["wall_s"]
    assert train["best_val_metric"] == "val_jaccard" and 0 <= train["best_val_value"] <= 1
    assert (work / "train" / "models" / "model.pt").is_file() and Path(ev["checkpoint"]).is_file()

    assert ev["images"] == 6 and ev["views"] == 18 and ev["wall_s"] > 0
    for key in ("JA", "DI", "AC", "M_AUC", "K_AUC"):
        assert 0 <= ev[key] <= 1, key  # both AUCs are defined: each class is in the validation split
    assert ev["DI"] >= ev["JA"]  # per image DI = 2 JA / (1 + JA) >= JA, so also on average
    ja, di, ac, m_auc, k_auc = _field(
        text, rf"metrics\s*: JA {FLOAT}\s+DI {FLOAT}\s+AC {FLOAT}\s+M_AUC {FLOAT}\s+K_AUC {FLOAT}")
    for printed, key in zip((ja, di, ac, m_auc, k_auc), ("JA", "DI", "AC", "M_AUC", "K_AUC")):
        assert float(printed) == pytest.approx(ev[key], abs=1e-3)
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    assert sorted(metrics["segmentation"]["per_image"]) == sorted(p.stem for p in (root / "ISIC-2017_Validation_Data").glob("*.jpg"))
    assert (work / "eval" / "metrics.md").is_file()


def test_bad_arguments_are_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_report.main(["--tiny", "--isic-root", str(tmp_path / "missing")])
    assert "no ISIC 2017 layout" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit):
        gpu_report.main(["--tiny", "--work-dir", str(busy)])
    assert "is not empty" in capsys.readouterr().err and (busy / "mine.txt").read_text() == "keep"
