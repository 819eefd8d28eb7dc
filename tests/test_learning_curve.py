"""The learning curve handler: CSV rows equal the logged loss terms and validation metrics, a valid PNG, resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from conftest import SMALL_NET
from monai_mtt.engines import SemiSupervisedTrainer
from monai_mtt.handlers import CURVE_PANELS, LatestCheckpoint, LearningCurve
from monai_mtt.losses import MTTLoss
from monai_mtt.networks import MTTransUNet

SIZE = 32
TERMS = ("loss", "lab_mask", "lab_cls", "lab_lsf", "lab_dtc", "lab_arc", "unl_cls", "unl_dtc", "unl_arc", "lambda_dtc")


def loss_terms(out: dict) -> dict:  # train.yaml's train#loss_terms
    return {k: out[k] for k in TERMS if k in out}


class _Items(Dataset):
    def __init__(self, n: int, labeled: bool) -> None:
        self.n, self.labeled = n, labeled

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i + (0 if self.labeled else 1000))
        item = {"image": torch.rand(3, SIZE, SIZE, generator=g), "class": torch.tensor(i % 3)}
        if self.labeled:
            mask = torch.zeros(1, SIZE, SIZE)
            mask[:, 8:24, 6 + i % 4 : 20 + i % 4] = 1
            item["label"], item["lsf"] = mask, torch.where(mask > 0, -0.5, 0.5)
        return item


class Killed(Exception):
    pass


def _val_jaccard(iteration: int) -> float:
    return 0.5 + iteration / 100  # a known value per validation, to find in the CSV


def _build(out_dir, logged: dict, kill_at: int | None = None, max_epochs: int = 4):
    net = MTTransUNet(**SMALL_NET)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    trainer = SemiSupervisedTrainer(
        device="cpu",
        max_epochs=max_epochs,
        epoch_length=2,
        train_data_loader=DataLoader(_Items(8, True), batch_size=4, shuffle=True),
        unlabeled_data_loader=DataLoader(_Items(8, False), batch_size=4, shuffle=True),
        network=net,
        optimizer=opt,
        loss_function=MTTLoss(),
    )
    validator = Engine(lambda e, b: None)

    @validator.on(Events.COMPLETED)
    def _metrics(engine):  # runs before the learning curve's handler (registered first)
        engine.state.metrics.update(val_jaccard=_val_jaccard(trainer.state.iteration), val_dice=0.25)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))  # as ValidationHandler
    # checkpoint every 2 epochs (iteration 4, 8) while the curve is written every epoch (2, 4, 6, 8)
    LatestCheckpoint(out_dir, {"model": net, "optimizer": opt}, interval=2).attach(trainer)
    LearningCurve(out_dir, validator=validator, output_transform=loss_terms, smoothing=2).attach(trainer)
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: logged.update({e.state.iteration: {k: float(v) for k, v in loss_terms(e.state.output).items()}}),
    )
    if kill_at is not None:

        def kill(engine):
            if engine.state.iteration == kill_at:
                raise Killed

        trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, kill)
    return trainer, validator


def _read(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_learning_curve_rows_match_logged_values_and_survive_resume(tmp_path):
    logged_1: dict = {}
    trainer, _ = _build(tmp_path, logged_1, kill_at=7)
    with pytest.raises(Killed):
        trainer.run()
    rows = _read(tmp_path / "learning_curve.csv")
    # killed during iteration 7: the curve holds 1..6 (written at the validation after 6), the checkpoint 4
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert float(rows[5]["loss"]) == pytest.approx(logged_1[6]["loss"], rel=1e-12)

    logged_2: dict = {}
    trainer, _ = _build(tmp_path, logged_2)
    trainer.run()
    assert sorted(logged_2) == [5, 6, 7, 8]  # resumed after the checkpoint at 4
    rows = _read(tmp_path / "learning_curve.csv")
    assert list(rows[0]) == ["iteration", *TERMS, "val_jaccard", "val_dice"]
    assert [int(r["iteration"]) for r in rows] == list(range(1, 9))
    expected = {**{i: logged_1[i] for i in range(1, 5)}, **logged_2}  # 5, 6 of the killed run replaced
    assert logged_1[5]["loss"] != logged_2[5]["loss"]  # (the shuffles differ, so the test can tell)
    for r in rows:
        it = int(r["iteration"])
        for k in TERMS:
            assert float(r[k]) == pytest.approx(expected[it][k], rel=1e-12, abs=1e-15), (it, k)
        if it % 2 == 0:
            assert float(r["val_jaccard"]) == pytest.approx(_val_jaccard(it))
            assert float(r["val_dice"]) == 0.25
        else:
            assert r["val_jaccard"] == "" and r["val_dice"] == ""

    with Image.open(tmp_path / "learning_curve.png") as im:
        im.load()
        assert im.format == "PNG"
        # 6 loss panels + the validation panel on a 4-column grid of 4 x 3 inch panels at 100 dpi
        assert len(CURVE_PANELS) == 6 and im.size == (1600, 600)
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 10  # drawn, not blank
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic writes left no temporary file


def test_fresh_run_starts_a_new_curve(tmp_path):
    (tmp_path / "learning_curve.csv").write_text("iteration,loss\n1,99.0\n2,98.0\n")
    logged: dict = {}
    trainer, _ = _build(tmp_path, logged, max_epochs=1)
    trainer.run()
    rows = _read(tmp_path / "learning_curve.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert float(rows[0]["loss"]) == pytest.approx(logged[1]["loss"], rel=1e-12)
