"""Synthetic ISIC-layout data set: deterministic, idempotent, binary size-matching masks, readable."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_mtt.data import SYNTHETIC_MANIFEST, load_datalist, make_synthetic_isic, read_isic2017, read_isic_additional


def _digest(root: Path) -> dict[str, str]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


SMALL = dict(n_train=9, n_val=6, n_unlabeled=6, size=48)


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    a = _digest(make_synthetic_isic(tmp_path / "a", seed=3, **SMALL))
    b = _digest(make_synthetic_isic(tmp_path / "b", seed=3, **SMALL))
    c = _digest(make_synthetic_isic(tmp_path / "c", seed=4, **SMALL))
    assert a == b
    assert a.keys() == c.keys() and a != c
    # 9 + 6 images with masks, 6 without, 3 CSVs, 1 manifest
    assert len(a) == 2 * 9 + 2 * 6 + 6 + 3 + 1


def test_idempotent_and_regenerates_on_change(tmp_path: Path) -> None:
    root = make_synthetic_isic(tmp_path / "s", **SMALL)
    manifest = root / SYNTHETIC_MANIFEST
    stamp = manifest.stat().st_mtime_ns
    before = _digest(root)
    assert make_synthetic_isic(root, **SMALL) == root
    assert manifest.stat().st_mtime_ns == stamp and _digest(root) == before  # nothing rewritten
    victim = next((root / "ISIC-2017_Training_Data").iterdir())
    victim.write_bytes(b"damaged")
    make_synthetic_isic(root, **SMALL)
    assert _digest(root) == before  # repaired
    make_synthetic_isic(root, **{**SMALL, "n_train": 3})
    assert len(list((root / "ISIC-2017_Training_Data").iterdir())) == 3  # old files removed
    assert json.loads(manifest.read_text())["params"]["n_train"] == 3
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="no synthetic.json"):
        make_synthetic_isic(other)


def test_masks_binary_match_images_and_classes_balanced(tmp_path: Path) -> None:
    root = make_synthetic_isic(tmp_path / "s")  # defaults: 48 / 12 / 48 at 128
    datalist = load_datalist(root, unlabeled_dir=root / "ISIC-Additional")
    assert {k: len(v) for k, v in datalist.items()} == {"train": 48, "val": 12, "unlabeled": 48}
    for split in datalist:
        third = len(datalist[split]) // 3
        assert Counter(i["class"] for i in datalist[split]) == {0: third, 1: third, 2: third}
    for split, shape in (("train", (128, 128)), ("val", (128, 160))):
        for item in datalist[split]:
            image = np.asarray(Image.open(item["image"]))
            mask = np.asarray(Image.open(item["label"]))
            assert image.shape == (*shape, 3) and mask.shape == shape and mask.dtype == np.uint8
            assert set(np.unique(mask).tolist()) == {0, 255}
            assert 0.02 < (mask > 0).mean() < 0.6  # a lesion, not touching everything
    assert all("label" not in i for i in datalist["unlabeled"])
    ids = [i["id"] for items in datalist.values() for i in items]
    assert len(ids) == len(set(ids))


def test_classes_differ_in_learnable_ways(tmp_path: Path) -> None:
    root = make_synthetic_isic(tmp_path / "s", n_train=30, n_val=0, n_unlabeled=0, size=96)
    items = read_isic2017(root)["train"]
    area, darkness = {0: [], 1: [], 2: []}, {0: [], 1: [], 2: []}
    for item in items:
        image = np.asarray(Image.open(item["image"]), np.float32)
        mask = np.asarray(Image.open(item["label"])) > 0
        area[item["class"]].append(mask.mean())
        darkness[item["class"]].append(image[mask].mean())
    mean = {k: {c: float(np.mean(v[c])) for c in v} for k, v in (("area", area), ("dark", darkness))}
    assert mean["area"][0] < mean["area"][2] < mean["area"][1]  # nevus small, melanoma large
    assert mean["dark"][1] < mean["dark"][0] < mean["dark"][2]  # melanoma darkest, keratosis lightest


def test_readers_apply_to_synthetic_set(tmp_path: Path) -> None:
    root = make_synthetic_isic(tmp_path / "s", **SMALL)
    datalist = read_isic2017(root)
    assert set(datalist) == {"train", "val"}
    unlabeled = read_isic_additional(root / "ISIC-Additional")
    assert len(unlabeled) == 6 and Counter(i["class"] for i in unlabeled) == {0: 2, 1: 2, 2: 2}
