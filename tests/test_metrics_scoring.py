"""``monai-mtt score seg|cls`` round trips on the real ISIC 2017 subset and its error messages."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from scipy.ndimage import binary_dilation

from monai_mtt import cli
from monai_mtt.metrics.scoring import EXIT_INPUT_ERROR

ISIC = SHARED_DATA / "isic2017"
VAL_MASKS = ISIC / "ISIC-2017_Validation_Part1_GroundTruth"
VAL_CSV = ISIC / "ISIC-2017_Validation_Part3_GroundTruth.csv"
TRAIN_CSV = ISIC / "ISIC-2017_Training_Part3_GroundTruth.csv"
needs_data = pytest.mark.skipif(not VAL_MASKS.is_dir(), reason=f"shared data not found at {ISIC}")

HEADER = "image_id,melanoma,seborrheic_keratosis\n"


def _parser() -> argparse.ArgumentParser:
    """The project CLI (a broken CLI fails the tests, it is not skipped)."""
    return cli.build_parser()


def run_cli(argv, capsys):
    args = _parser().parse_args([str(a) for a in argv])
    rc = int(args.func(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _save(mask: np.ndarray, path: Path, mode: str = "L") -> None:
    img = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    img.convert(mode).save(path)


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 0


# ------------------------------------------------------------------------------------------ seg


@needs_data
def test_seg_identity_all_ones_with_rgb_and_1bit_predictions(tmp_path, capsys):
    truth_files = sorted(VAL_MASKS.glob("ISIC_*_segmentation.png"))
    assert len(truth_files) == 14
    pred = tmp_path / "pred"
    pred.mkdir()
    for n, f in enumerate(truth_files):
        if n == 0:  # colour PNG, short name
            _save(_load(f), pred / f.name.replace("_segmentation", ""), mode="RGB")
        elif n == 1:  # 1-bit PNG
            _save(_load(f), pred / f.name, mode="1")
        else:
            shutil.copy(f, pred / f.name)
    out = tmp_path / "scores.json"
    rc, stdout, err = run_cli(["score", "seg", VAL_MASKS, pred, "--out", out], capsys)
    assert rc == 0, err
    result = json.loads(stdout)
    assert json.loads(out.read_text()) == result
    assert result["count"] == 14 and len(result["per_image"]) == 14
    assert result["mean"] == {k: 1.0 for k in ("JA", "DI", "AC", "SE", "SP", "JA_thresholded")}
    assert all(v == 1.0 for s in result["per_image"].values() for v in s.values())


@needs_data
def test_seg_dilated_predictions_match_pixel_counts(tmp_path, capsys):
    truth_files = sorted(VAL_MASKS.glob("ISIC_*_segmentation.png"))
    # dilate the three smallest masks (fast); copy the other eleven unchanged
    by_size = sorted(truth_files, key=lambda f: Image.open(f).size[0] * Image.open(f).size[1])
    dilated = set(by_size[:3])
    pred = tmp_path / "pred"
    pred.mkdir()
    expected = {}
    for f in truth_files:
        image_id = f.name[: len("ISIC_0000000")]
        if f not in dilated:
            shutil.copy(f, pred / f.name)
            expected[image_id] = (1.0, 1.0)
            continue
        t = _load(f)
        d = binary_dilation(t, iterations=5)
        _save(d, pred / f"{image_id}.png")
        # dilation only adds pixels: TP = |truth|, FN = 0, FP = |dilated| - |truth|
        n_t, n_d = int(np.count_nonzero(t)), int(np.count_nonzero(d))
        assert 0 < n_t < n_d
        expected[image_id] = (n_t / n_d, 2 * n_t / (n_t + n_d))  # JA = TP/(TP+FP), DI = 2TP/(2TP+FP)
    rc, stdout, err = run_cli(["score", "seg", VAL_MASKS, pred], capsys)
    assert rc == 0, err
    result = json.loads(stdout)
    for image_id, (ja, di) in expected.items():
        got = result["per_image"][image_id]
        assert got["JA"] == pytest.approx(ja, abs=1e-12), image_id
        assert got["DI"] == pytest.approx(di, abs=1e-12), image_id
        assert got["SE"] == 1.0  # FN = 0
    assert result["mean"]["JA"] == pytest.approx(sum(j for j, _ in expected.values()) / 14)
    assert result["mean"]["DI"] == pytest.approx(sum(d for _, d in expected.values()) / 14)


def test_seg_errors_all_listed(tmp_path, capsys):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    m = np.zeros((8, 10), bool)
    m[2:5, 3:7] = True
    for i in (1, 2, 3):
        _save(m, truth / f"ISIC_000000{i}_segmentation.png")
    # 1: prediction missing; 2: wrong size; 3: three grey levels; 9: no truth
    _save(m.T, pred / "ISIC_0000002.png")
    Image.fromarray((m * 128 + np.eye(8, 10, dtype=np.uint8) * 255).astype(np.uint8)).save(
        pred / "ISIC_0000003_segmentation.png"
    )
    _save(m, pred / "ISIC_0000009_segmentation.png")
    out = tmp_path / "scores.json"
    rc, stdout, err = run_cli(["score", "seg", truth, pred, "--out", out], capsys)
    assert rc == EXIT_INPUT_ERROR
    assert stdout == "" and not out.exists()
    assert "4 problem(s)" in err
    assert "missing prediction for ISIC_0000001_segmentation.png" in err
    assert "size mismatch for ISIC_0000002" in err and "8x10 (WxH)" in err and "10x8" in err
    assert "ISIC_0000003_segmentation.png: not a binary mask" in err
    assert "prediction ISIC_0000009_segmentation.png has no ground truth" in err


def test_seg_two_files_for_one_id(tmp_path, capsys):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    m = np.ones((4, 4), bool)
    _save(m, truth / "ISIC_0000001_segmentation.png")
    _save(m, pred / "ISIC_0000001_segmentation.png")
    _save(m, pred / "ISIC_0000001.png")
    rc, _, err = run_cli(["score", "seg", truth, pred], capsys)
    assert rc == EXIT_INPUT_ERROR and "two files for one image" in err


def test_out_is_never_overwritten_silently(tmp_path, capsys):
    d = tmp_path / "m"
    d.mkdir()
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True
    _save(m, d / "ISIC_0000001_segmentation.png")
    out = tmp_path / "scores.json"
    out.write_text("keep me")
    rc, _, err = run_cli(["score", "seg", d, d, "--out", out], capsys)
    assert rc == EXIT_INPUT_ERROR and "already exists" in err and out.read_text() == "keep me"
    rc, _, err = run_cli(["score", "seg", d, d, "--out", out, "--overwrite"], capsys)
    assert rc == 0 and json.loads(out.read_text())["mean"]["JA"] == 1.0
    rc, _, err = run_cli(["score", "seg", d, d, "--out", tmp_path / "nowhere" / "x.json"], capsys)
    assert rc == EXIT_INPUT_ERROR and "does not exist" in err


# ------------------------------------------------------------------------------------------ cls


@needs_data
def test_cls_identity_validation_csv(tmp_path, capsys):
    rows = VAL_CSV.read_text().strip().splitlines()
    assert rows[0] == HEADER.strip() and len(rows) == 15  # 14 cases: 2 melanoma, 10 keratosis, 2 nevus
    pred = tmp_path / "pred.csv"
    shutil.copy(VAL_CSV, pred)
    rc, stdout, err = run_cli(["score", "cls", VAL_CSV, pred], capsys)
    assert rc == 0, err
    result = json.loads(stdout)
    assert result["count"] == 14 and result["notes"] == []
    assert result["scores"] == {k: 1.0 for k in result["scores"]}
    assert len(result["scores"]) == 9
    labels = [v["label"] for v in result["per_image"].values()]
    assert labels.count("melanoma") == 2 and labels.count("seborrheic_keratosis") == 10
    # nevus prob = max(0, 1 - mel - ker): 1 for the two nevi, 0 otherwise
    assert sorted(v["nevus"] for v in result["per_image"].values()) == [0.0] * 12 + [1.0] * 2


@needs_data
def test_cls_ph2_protocol_on_melanoma_vs_nevus_csv(tmp_path, capsys):
    # the training subset holds only melanoma and nevus: usable with the two-class protocol
    rc, stdout, err = run_cli(["score", "cls", TRAIN_CSV, TRAIN_CSV, "--protocol", "ph2"], capsys)
    assert rc == 0, err
    assert json.loads(stdout)["scores"] == {"M_ACC": 1.0, "M_SE": 1.0, "M_SP": 1.0, "M_AUC": 1.0}
    rc, _, err = run_cli(["score", "cls", VAL_CSV, VAL_CSV, "--protocol", "ph2"], capsys)
    assert rc == EXIT_INPUT_ERROR and "ISIC_0014572" in err


def test_cls_hand_computed_and_undefined_auc(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    pred = tmp_path / "pred.csv"
    truth.write_text(HEADER + "ISIC_0000001,0,0\nISIC_0000002,1,0\nISIC_0000003,0,0\n")
    pred.write_text(HEADER + "ISIC_0000003,0.6,0.1\nISIC_0000001,0.2,0.3\nISIC_0000002,0.7,0.0\n")
    rc, stdout, err = run_cli(["score", "cls", truth, pred], capsys)
    assert rc == 0, err
    s = json.loads(stdout)
    # melanoma: probs (1: .2, 2: .7, 3: .6), positives {2}; predicted {2, 3}: TP 1, FP 1, TN 1
    #   M_ACC 2/3, M_SE 1, M_SP 1/2, M_AUC: .7 beats .2 and .6 -> 1
    # keratosis: no positive; predictions all < .5 -> K_ACC 1, K_SP 1, K_SE and K_AUC undefined (null)
    sc = s["scores"]
    assert sc["M_ACC"] == pytest.approx(2 / 3) and sc["M_SE"] == 1.0
    assert sc["M_SP"] == 0.5 and sc["M_AUC"] == 1.0
    assert sc["K_ACC"] == 1.0 and sc["K_SP"] == 1.0 and sc["K_SE"] is None and sc["K_AUC"] is None
    assert sc["AVG_ACC"] == pytest.approx((2 / 3 + 1) / 2)
    assert any(n.startswith("K_AUC") for n in s["notes"]) and any(n.startswith("K_SE") for n in s["notes"])
    # nevus = max(0, 1 - .6 - .1) = .3 for case 3
    assert s["per_image"]["ISIC_0000003"]["nevus"] == pytest.approx(0.3)


def test_cls_decision_rule_option(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    pred = tmp_path / "pred.csv"
    truth.write_text(HEADER + "ISIC_0000001,1,0\nISIC_0000002,0,0\n")
    # case 1: melanoma .45, keratosis .2, nevus 1 - .65 = .35 -> argmax melanoma, but .45 < .5
    pred.write_text(HEADER + "ISIC_0000001,0.45,0.2\nISIC_0000002,0.1,0.1\n")
    results = {}
    for rule in ("argmax", "threshold"):
        rc, stdout, err = run_cli(["score", "cls", truth, pred, "--decision", rule], capsys)
        assert rc == 0, err
        results[rule] = json.loads(stdout)
        assert results[rule]["decision"] == rule
    assert results["argmax"]["scores"]["M_SE"] == 1.0 and results["argmax"]["scores"]["M_ACC"] == 1.0
    assert results["threshold"]["scores"]["M_SE"] == 0.0 and results["threshold"]["scores"]["M_ACC"] == 0.5
    rc, stdout, _ = run_cli(["score", "cls", truth, pred], capsys)
    assert json.loads(stdout)["decision"] == "argmax"  # the default


def test_cls_errors_all_listed(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    pred = tmp_path / "pred.csv"
    truth.write_text(HEADER + "ISIC_0000001,1,1\nISIC_0000002,0,0\nISIC_0000003,1,0\n")
    pred.write_text(HEADER + "ISIC_0000001,0.5,0.5\nISIC_0000002,1.5,0.2\nISIC_0000009,0.1,0.1\n")
    rc, stdout, err = run_cli(["score", "cls", truth, pred], capsys)
    assert rc == EXIT_INPUT_ERROR and stdout == ""
    assert "line 2 (ISIC_0000001): both melanoma and seborrheic_keratosis are 1" in err
    assert "line 3 (ISIC_0000002): probabilities outside [0, 1]: melanoma=1.5" in err
    assert "missing from prediction CSV pred.csv: ISIC_0000003" in err
    assert "not in truth CSV truth.csv: ISIC_0000009" in err


def test_cls_bad_header(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    pred = tmp_path / "pred.csv"
    truth.write_text(HEADER + "ISIC_0000001,1,0\n")
    pred.write_text("image,mel,seborrheic_keratosis\nISIC_0000001,0.9,0.1\n")
    rc, _, err = run_cli(["score", "cls", truth, pred], capsys)
    assert rc == EXIT_INPUT_ERROR
    assert "bad header" in err and "lacks column(s) image_id, melanoma" in err


def test_through_project_cli_main_and_missing_folder(tmp_path, capsys):
    d = tmp_path / "m"
    d.mkdir()
    m = np.zeros((3, 3), bool)  # both masks empty: JA = DI = 1 by convention
    _save(m, d / "ISIC_0000001_segmentation.png")
    assert cli.main(["score", "seg", str(d), str(d)]) == 0
    assert json.loads(capsys.readouterr().out)["mean"]["JA"] == 1.0
    assert cli.main(["score", "seg", str(d), str(tmp_path / "absent")]) == EXIT_INPUT_ERROR
    assert "prediction folder does not exist" in capsys.readouterr().err
