"""``monai-mtt prepare``: JSON written, summary printed, overwrite refused, problems listed with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_mtt.cli import main
from monai_mtt.data import load_datalist, make_synthetic_isic


def _main(argv: list[str]) -> int:
    """The project CLI (a broken CLI fails the test)."""
    return main(argv)


def test_prepare_synthetic_isic_roundtrip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_synthetic_isic(tmp_path / "syn", n_train=6, n_val=3, n_unlabeled=3, size=40)
    out = tmp_path / "lists" / "datalist.json"
    assert _main(["prepare", "isic2017", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train: 6 items (nevus 2, melanoma 2, seborrheic_keratosis 2)" in printed
    assert "val: 3 items" in printed and "image size (width x height): 40x40 to 50x40" in printed
    written = json.loads(out.read_text())
    assert written == load_datalist(out)
    assert written == {k: v for k, v in load_datalist(root).items()}
    # refuse to overwrite, unless asked
    assert _main(["prepare", "isic2017", "--root", str(root), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    argv = ["prepare", "additional", "--root", str(root / "ISIC-Additional"), "--out", str(out), "--overwrite"]
    assert _main(argv) == 0
    assert set(json.loads(out.read_text())) == {"unlabeled"}


def test_prepare_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_synthetic_isic(tmp_path / "syn", n_train=6, n_val=3, n_unlabeled=0, size=40)
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(root, broken)
    images = sorted((broken / "ISIC-2017_Training_Data").iterdir())
    images[0].write_bytes(b"garbage")
    next((broken / "ISIC-2017_Training_Part1_GroundTruth").iterdir()).unlink()
    out = tmp_path / "x.json"
    assert _main(["prepare", "isic2017", "--root", str(broken), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("2 problem(s) found in ISIC 2017 data set")
    assert "cannot be identified as an image" in err and "segmentation mask is missing" in err
    assert not out.exists()


def test_prepare_ph2_writes_stratified_folds(
    tmp_path: Path, capsys: pytest.CaptureFixture, shared_data: Path
) -> None:
    out = tmp_path / "ph2.json"
    assert _main(["prepare", "ph2", "--root", str(shared_data / "ph2"), "--out", str(out), "--no-check-pixels"]) == 0
    assert "train: 12 items (nevus 8, melanoma 4); folds 4" in capsys.readouterr().out
    items = json.loads(out.read_text())["train"]
    for fold in range(4):
        assert sorted(i["ph2_diagnosis"] for i in items if i["fold"] == fold) == [0, 1, 2]
    out2 = tmp_path / "ph2b.json"
    assert _main(["prepare", "ph2", "--root", str(shared_data / "ph2"), "--out", str(out2), "--no-check-pixels"]) == 0
    assert out.read_bytes() == out2.read_bytes()
