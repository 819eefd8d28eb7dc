"""The held-out validation split of training runs, the train-as-unlabeled stream and the class-balanced sampler."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from monai_mtt.data import class_balanced_sampler, class_balanced_weights, split_validation, training_datalists


def _json_root(tmp_path: Path, classes: list[int]) -> Path:
    """A datalist JSON with only a ``train`` split (no validation folder, like the resized ISIC root)."""
    items = [{"image": f"img/{i:04d}.jpg", "label": f"mask/{i:04d}.png", "class": c, "id": f"ISIC_{i:04d}"}
             for i, c in enumerate(classes)]
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": items}))
    return path


def test_training_datalists_hold_out_a_stratified_seeded_split(tmp_path):
    classes = [0] * 60 + [1] * 24 + [2] * 16
    src = _json_root(tmp_path, classes)
    lists = training_datalists(src, val_fraction=0.25, seed=3, validate=False)
    assert Counter(i["class"] for i in lists["val"]) == {0: 15, 1: 6, 2: 4}  # 25% of each class
    train_ids, val_ids = {i["id"] for i in lists["train"]}, {i["id"] for i in lists["val"]}
    assert not train_ids & val_ids and len(train_ids | val_ids) == 100
    assert lists["unlabeled"] == []
    again = training_datalists(src, val_fraction=0.25, seed=3, validate=False)
    assert again["val"] == lists["val"] and again["train"] == lists["train"]
    other = training_datalists(src, val_fraction=0.25, seed=4, validate=False)
    assert {i["id"] for i in other["val"]} != val_ids


def test_split_does_not_depend_on_input_order():
    items = [{"id": f"c{i:03d}", "class": i % 3} for i in range(90)]
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    _, val = split_validation(items, 0.1, seed=0)
    _, val_shuffled = split_validation(shuffled, 0.1, seed=0)
    assert {i["id"] for i in val} == {i["id"] for i in val_shuffled}
    assert len(val) == 9


def test_train_as_unlabeled_feeds_the_training_images_never_the_validation_ones(tmp_path):
    src = _json_root(tmp_path, [0] * 30 + [1] * 10)
    lists = training_datalists(src, val_fraction=0.2, seed=0, validate=False, train_as_unlabeled=True)
    assert [i["id"] for i in lists["unlabeled"]] == [i["id"] for i in lists["train"]]
    assert not {i["id"] for i in lists["unlabeled"]} & {i["id"] for i in lists["val"]}


def test_isic2017_256_validation_split(shared_data):
    """The whole resized ISIC-2017 training set: 10% of each class held out, as the reference run does."""
    root = shared_data / "isic2017_256"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    with open(root / "ISIC-2017_Training_Part3_GroundTruth.csv", newline="") as f:
        truth = {r["image_id"]: 1 if float(r["melanoma"]) else (2 if float(r["seborrheic_keratosis"]) else 0)
                 for r in csv.DictReader(f)}
    assert Counter(truth.values()) == {0: 1372, 1: 374, 2: 254}
    lists = training_datalists(root, val_fraction=0.1, seed=0, validate=False, train_as_unlabeled=True)
    val = {i["id"]: i["class"] for i in lists["val"]}
    train = {i["id"]: i["class"] for i in lists["train"]}
    assert Counter(val.values()) == {0: 137, 1: 37, 2: 25}  # round(0.1 * n) per class: 199 images
    assert not val.keys() & train.keys() and val.keys() | train.keys() == truth.keys()
    assert all(truth[k] == c for k, c in {**val, **train}.items())
    assert {i["id"] for i in lists["unlabeled"]} == train.keys()
    assert all(Path(i["label"]).is_file() for i in lists["val"][:5])


def test_class_balanced_sampler_draws_classes_equally():
    items = [{"id": str(i), "class": c} for i, c in enumerate([0] * 1372 + [1] * 374 + [2] * 254)]
    w = class_balanced_weights(items)
    per_class = Counter()
    for item, wi in zip(items, w.tolist()):
        per_class[item["class"]] += wi
    assert all(v == pytest.approx(1.0) for v in per_class.values())
    sampler = class_balanced_sampler(items, num_samples=30000, seed=5)
    draws = list(sampler)
    freq = Counter(items[i]["class"] for i in draws)
    assert all(abs(freq[c] / 30000 - 1 / 3) < 0.015 for c in (0, 1, 2))  # ~5 sigma for n = 30000
    assert list(class_balanced_sampler(items, num_samples=30000, seed=5)) == draws
    assert len(class_balanced_sampler(items)) == len(items)
    with pytest.raises(ValueError, match="at least one item"):
        class_balanced_weights([])


def test_class_balanced_sampler_in_a_dataloader():
    items = [{"id": str(i), "class": c} for i, c in enumerate([0] * 90 + [1] * 10)]
    data = [torch.tensor(i["class"]) for i in items]
    loader = torch.utils.data.DataLoader(data, batch_size=10, sampler=class_balanced_sampler(items, seed=0))
    drawn = torch.cat(list(loader))
    assert len(drawn) == 100 and 30 <= int((drawn == 1).sum()) <= 70  # vs 10 of 100 when shuffled
