"""Readers, folds and load_datalist on the real data subsets in ../shared/data (skipped where absent)."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from monai_mtt.data import (
    DataValidationError,
    assign_folds,
    fold_datalists,
    fold_split,
    load_datalist,
    read_isic2017,
    read_ph2,
    read_ph2_labels,
    split_validation,
)


@pytest.fixture
def data(shared_data: Path) -> Path:
    """The real data folder (conftest's ``shared_data``; skipped where absent)."""
    return shared_data


def _csv_classes(path: Path) -> dict[str, int]:
    """Independent reading of a Part 3 CSV: id -> class."""
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out[row["image_id"]] = 1 if float(row["melanoma"]) else (2 if float(row["seborrheic_keratosis"]) else 0)
    return out


def test_isic2017_subset_counts_classes_and_masks(data: Path) -> None:
    datalist = read_isic2017(data / "isic2017")
    assert set(datalist) == {"train", "val"}
    assert len(datalist["train"]) == 40 and len(datalist["val"]) == 14
    assert Counter(i["class"] for i in datalist["train"]) == {0: 20, 1: 20}
    assert Counter(i["class"] for i in datalist["val"]) == {2: 10, 1: 2, 0: 2}
    truth = _csv_classes(data / "isic2017" / "labels.csv")
    items = datalist["train"] + datalist["val"]
    assert {i["id"]: i["class"] for i in items} == truth
    for item in items:
        assert Path(item["image"]).is_absolute()
        assert Path(item["image"]).name == f"{item['id']}.jpg"
        assert Path(item["label"]).name == f"{item['id']}_segmentation.png"
        with Image.open(item["image"]) as img, Image.open(item["label"]) as mask:
            assert img.size == mask.size
    # the README's fact: the ten keratosis images are 2592x1936
    for item in datalist["val"]:
        if item["class"] == 2:
            with Image.open(item["image"]) as img:
                assert img.size == (2592, 1936)


def test_isic2017_root_variants(data: Path) -> None:
    reference = read_isic2017(data / "isic2017", check_pixels=False)
    via_data_folder = read_isic2017(data / "isic2017" / "ISIC-2017_Training_Data", check_pixels=False)
    assert via_data_folder == reference
    only_val = read_isic2017(data / "isic2017", splits=("Validation",), check_pixels=False)
    assert only_val == {"val": reference["val"]}
    with pytest.raises(DataValidationError, match="expected ISIC-2017_"):
        read_isic2017(data / "ph2")


def test_isic2017_256_full_training_set(data: Path) -> None:
    datalist = read_isic2017(data / "isic2017_256", check_pixels=False)
    assert set(datalist) == {"train"}
    assert len(datalist["train"]) == 2000
    assert Counter(i["class"] for i in datalist["train"]) == {1: 374, 2: 254, 0: 1372}
    assert load_datalist(data / "isic2017_256", check_pixels=False) == datalist  # no "val" invented


def test_ph2_counts_and_two_class_mapping(data: Path) -> None:
    items = read_ph2(data / "ph2")
    assert len(items) == 12
    assert Counter(i["ph2_diagnosis"] for i in items) == {0: 4, 1: 4, 2: 4}
    assert Counter(i["class"] for i in items) == {0: 8, 1: 4}
    assert all(i["class"] == (1 if i["ph2_diagnosis"] == 2 else 0) for i in items)
    with open(data / "ph2" / "ph2_labels.csv", newline="") as f:
        truth = {r["image_name"]: int(r["clinical_diagnosis"]) for r in csv.DictReader(f)}
    assert {i["id"]: i["ph2_diagnosis"] for i in items} == truth
    for item in items:
        with Image.open(item["image"]) as img, Image.open(item["label"]) as mask:
            assert mask.mode == "1" and img.size == mask.size


def _write_ph2_txt(path: Path, diagnoses: dict[str, int]) -> None:
    """Official-style pipe table (padded columns, histological diagnosis often blank)."""
    criteria = "  0 |  T |  A |  A |  A |  A "
    lines = [
        "||   Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry | Pigment Network | "
        "Dots/Globules | Streaks | Regression Areas | Blue-Whitish Veil ||  Colors ||",
    ]
    for name, diagnosis in diagnoses.items():
        histology = "Melanoma" if diagnosis == 2 else ""
        lines.append(f"|| {name} ||  {histology:<22} ||  {diagnosis}  ||{criteria}||  3  4 ||")
    lines.append("")
    lines.append("Legends: 0 - Common Nevus; 1 - Atypical Nevus; 2 - Melanoma")
    path.write_text("\n".join(lines) + "\n")


def test_ph2_txt_labels_agree_with_csv(data: Path, tmp_path: Path) -> None:
    truth, problems = read_ph2_labels(data / "ph2" / "ph2_labels.csv")
    assert not problems and len(truth) == 12
    txt = tmp_path / "PH2_dataset.txt"
    _write_ph2_txt(txt, truth)
    parsed, problems = read_ph2_labels(txt)
    assert not problems
    assert parsed == truth
    assert read_ph2(data / "ph2", labels=txt, check_pixels=False) == read_ph2(data / "ph2", check_pixels=False)


@pytest.mark.skipif(importlib.util.find_spec("openpyxl") is None, reason="openpyxl not installed")
def test_ph2_xlsx_labels_agree_with_csv(data: Path) -> None:
    sheet, problems = read_ph2_labels(data / "ph2" / "PH2_dataset.xlsx")
    assert not problems
    assert len(sheet) == 200 and Counter(sheet.values()) == {0: 80, 1: 80, 2: 40}
    truth, _ = read_ph2_labels(data / "ph2" / "ph2_labels.csv")
    assert {k: sheet[k] for k in truth} == truth


def test_ph2_folds_stratified_and_seeded(data: Path) -> None:
    items = read_ph2(data / "ph2", check_pixels=False)
    first = assign_folds(items, num_folds=4, seed=0, key="ph2_diagnosis")
    again = assign_folds(list(reversed(items)), num_folds=4, seed=0, key="ph2_diagnosis")
    other = assign_folds(items, num_folds=4, seed=1, key="ph2_diagnosis")
    folds = {i["id"]: i["fold"] for i in first}
    assert folds == {i["id"]: i["fold"] for i in again}  # reproducible, independent of input order
    assert folds != {i["id"]: i["fold"] for i in other}
    assert "fold" not in items[0]  # inputs untouched
    for fold in range(4):
        train, val = fold_split(first, fold)
        assert len(train) == 9 and len(val) == 3
        assert Counter(i["ph2_diagnosis"] for i in val) == {0: 1, 1: 1, 2: 1}
        assert Counter(i["class"] for i in val) == {0: 2, 1: 1}
    # two-class stratification directly: 8 nevus / 4 melanoma -> 2 and 1 per fold
    by_class = assign_folds(items, num_folds=4, seed=3)
    for fold in range(4):
        assert Counter(i["class"] for i in by_class if i["fold"] == fold) == {0: 2, 1: 1}


def test_ph2_fine_tuning_never_selects_on_its_test_fold(data: Path) -> None:
    ids = {i["id"] for i in read_ph2(data / "ph2", check_pixels=False)}
    tested = set()
    for fold in range(4):
        lists = fold_datalists(str(data / "ph2"), fold, validate=False)
        train, val, test = ({i["id"] for i in lists[s]} for s in ("train", "val", "test"))
        assert {i["fold"] for i in lists["test"]} == {fold}  # the test fold, whole and untouched
        assert not val & test and not train & test and not train & val
        assert train | val | test == ids
        # the validation part: a stratified 0.2 of the 9 training-fold cases (3 per diagnosis -> 1 each)
        assert Counter(i["ph2_diagnosis"] for i in lists["val"]) == {0: 1, 1: 1, 2: 1}
        assert lists == fold_datalists(str(data / "ph2"), fold, validate=False)  # seeded
        tested |= test
    assert tested == ids  # every case is tested exactly once over the 4 folds
    other_seed = fold_datalists(str(data / "ph2"), 0, seed=5, validate=False)
    assert {i["id"] for i in other_seed["val"]} != {i["id"] for i in fold_datalists(str(data / "ph2"), 0, validate=False)["val"]}
    with pytest.raises(ValueError, match="never on the test fold"):
        fold_datalists(str(data / "ph2"), 0, val_fraction=0.0, validate=False)


def test_folds_counts_within_one_of_ideal() -> None:
    items = [{"id": f"c{i:03d}", "class": c} for i, c in enumerate([0] * 23 + [1] * 10 + [2] * 5)]
    assigned = assign_folds(items, num_folds=4, seed=7)
    for cls, n in ((0, 23), (1, 10), (2, 5)):
        counts = Counter(i["fold"] for i in assigned if i["class"] == cls)
        assert sum(counts.values()) == n
        assert all(abs(counts.get(f, 0) - n / 4) < 1 for f in range(4))
    sizes = Counter(i["fold"] for i in assigned)
    assert max(sizes.values()) - min(sizes.values()) <= 1
    with pytest.raises(ValueError, match="at least 2"):
        assign_folds(items, num_folds=1)


def test_split_validation_stratified_and_seeded() -> None:
    items = [{"id": f"c{i:03d}", "class": c} for i, c in enumerate([0] * 20 + [1] * 10 + [2] * 5)]
    train, val = split_validation(items, fraction=0.2, seed=0)
    assert Counter(i["class"] for i in val) == {0: 4, 1: 2, 2: 1}
    assert len(train) + len(val) == 35 and not {i["id"] for i in train} & {i["id"] for i in val}
    assert split_validation(items, 0.2, 0) == (train, val)
    assert split_validation(items, 0.2, 1)[1] != val


def test_load_datalist_detects_layouts(data: Path, tmp_path: Path) -> None:
    assert load_datalist(data / "isic2017", check_pixels=False) == read_isic2017(data / "isic2017", check_pixels=False)
    assert load_datalist(data / "ph2", check_pixels=False) == {"train": read_ph2(data / "ph2", check_pixels=False)}
    with pytest.raises(DataValidationError, match="several data sets found one level down"):
        load_datalist(data)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataValidationError, match="is an empty folder; looked for an ISIC 2017 root"):
        load_datalist(empty)
    with pytest.raises(DataValidationError, match="does not exist"):
        load_datalist(tmp_path / "nope")
    assert load_datalist(None, check_pixels=False) == load_datalist("", check_pixels=False)  # the embedded sample


def test_datalist_json_relative_paths_and_aliases(data: Path, tmp_path: Path) -> None:
    reference = read_isic2017(data / "isic2017", splits=("Validation",), check_pixels=False)["val"]
    folder = tmp_path / "lists"
    folder.mkdir()
    import os

    relative = [
        {**i, "image": os.path.relpath(i["image"], folder), "label": os.path.relpath(i["label"], folder)}
        for i in reference
    ]
    path = folder / "datalist.json"
    path.write_text(json.dumps({"name": "demo", "validation": relative}))
    assert load_datalist(path, check_pixels=False) == {"val": reference}
    path.write_text(json.dumps({"train": [{"image": "missing.jpg", "id": "x"}]}))
    with pytest.raises(DataValidationError, match="image file does not exist"):
        load_datalist(path)
