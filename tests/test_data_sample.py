"""The ISIC-2017 sample embedded in the package: layout, counts and classes through the public
readers, official labels, licence, size, and the builder script reproducing it."""

from __future__ import annotations

import hashlib
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_mtt.data import (
    ISIC2017_SAMPLE_ADDITIONAL,
    evaluation_items,
    isic2017_sample_root,
    load_datalist,
    read_isic2017,
    read_isic_additional,
    read_part3_csv,
    training_datalists,
)

REPO = Path(__file__).resolve().parents[1]
# class counts (nevus, melanoma, keratosis) per part: the full training set's proportions
# (1372 / 374 / 254 of 2000) rounded, as scripts/build_isic_sample.py selects them
EXPECTED = {"train": (199, 54, 37), "unlabeled": (100, 27, 18), "val": (28, 7, 5), "test": (55, 15, 10)}


def _builder():
    spec = importlib.util.spec_from_file_location("build_isic_sample", REPO / "scripts" / "build_isic_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_layout_counts_and_classes_through_the_readers() -> None:
    root = isic2017_sample_root()
    assert root.is_relative_to(REPO / "monai_mtt")  # package data, not a download
    datalist = load_datalist(None)  # empty dataset_dir: the sample, fully validated (every pixel decoded)
    assert datalist == load_datalist(root, unlabeled_dir=root / ISIC2017_SAMPLE_ADDITIONAL)
    assert datalist == {**read_isic2017(root), "unlabeled": read_isic_additional(root / ISIC2017_SAMPLE_ADDITIONAL)}
    for split, counts in EXPECTED.items():
        found = Counter(item["class"] for item in datalist[split])
        assert (found[0], found[1], found[2]) == counts, split
    ids = [item["id"] for items in datalist.values() for item in items]
    assert len(ids) == len(set(ids)) == 555  # the parts are disjoint
    assert all("label" not in item for item in datalist["unlabeled"])
    assert not list((root / ISIC2017_SAMPLE_ADDITIONAL).glob("*_segmentation.png"))
    for split in ("train", "val", "test"):
        for item in datalist[split][:10]:
            with Image.open(item["image"]) as im, Image.open(item["label"]) as m:
                assert im.mode == "RGB" and im.size == (128, 128) and m.mode == "L" and m.size == (128, 128)
                assert set(np.unique(np.asarray(m)).tolist()) == {0, 255}

    # the bundle's datalists: train on the labeled part + the classification-only part, select on the
    # validation part, evaluate on the held-out test part
    lists = training_datalists(None)
    assert [len(lists[k]) for k in ("train", "val", "unlabeled")] == [290, 40, 145]
    assert evaluation_items(None) == datalist["test"]


def test_sample_labels_are_the_official_ones_and_files_match_their_checksums(shared_data: Path) -> None:
    root = isic2017_sample_root()
    official, problems, _ = read_part3_csv(shared_data / "isic2017_256" / "ISIC-2017_Training_Part3_GroundTruth.csv")
    assert not problems
    csvs = sorted(root.glob("ISIC-2017_*_Part3_GroundTruth.csv")) + [
        root / ISIC2017_SAMPLE_ADDITIONAL / "ISIC-Additional_Part3_GroundTruth.csv"
    ]
    assert len(csvs) == 4
    for path in csvs:
        classes, problems, _ = read_part3_csv(path)
        assert not problems and classes and all(official[i] == c for i, c in classes.items()), path


def test_sample_checksums_size_and_licence() -> None:
    root = isic2017_sample_root()
    listed = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(listed) == set(files)
    assert all(hashlib.sha256(files[n].read_bytes()).hexdigest() == d for n, d in listed.items())
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) <= 4 * 1024 * 1024
    licence = (root / "LICENSE.txt").read_text()
    assert "CC-0" in licence and "arXiv:1710.05006" in licence and "Codella" in licence


def test_builder_reproduces_the_committed_sample(shared_data: Path, tmp_path: Path) -> None:
    builder = _builder()
    rebuilt = builder.build(shared_data / "isic2017_256", tmp_path / "sample")
    assert builder.compare(isic2017_sample_root(), rebuilt) == []  # every file byte for byte
    with pytest.raises(FileExistsError, match="not empty"):  # never overwrites
        builder.build(shared_data / "isic2017_256", rebuilt)
