"""Real-data protocols: PH2 fine-tuning / direct test configs, and a short ISIC-2017 run whose loss falls."""

from __future__ import annotations

import json

import numpy as np
import torch
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run

from conftest import BUNDLE_NET as NET
from conftest import CONFIGS, LOGGING, META


def test_ph2_finetune_fold_and_direct_test(shared_data, tmp_path):
    ph2 = shared_data / "ph2"
    init = tmp_path / "isic_model.pt"
    from monai_mtt.networks import MTTransUNet
    from conftest import SMALL_NET

    torch.manual_seed(0)
    torch.save({"model": MTTransUNet(**SMALL_NET).state_dict()}, init)
    out = tmp_path / "fold1"
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.yaml"), str(CONFIGS / "finetune_ph2.yaml")], meta_file=META,
        logging_file=LOGGING, workflow_type="train", run_id="training",
        dataset_dir=str(ph2), fold=1, initial_checkpoint=str(init), output_dir=str(out), image_size=32,
        max_iterations=2, val_interval=2, num_workers=0, batch_size_labeled=4, **NET,
    )
    wf.initialize()
    lists = wf.parser.get_parsed_content("datalists")
    # 12 cases: test fold 1 (3 cases) untouched; of the 9 in the other folds, 3 validate (checkpoint choice)
    assert len(lists["train"]) == 6 and len(lists["val"]) == 3 and len(lists["test"]) == 3 and lists["unlabeled"] == []
    assert {it["fold"] for it in lists["test"]} == {1}
    assert 1 not in {it["fold"] for it in lists["train"] + lists["val"]}
    # stratified: the test fold and the validation part each have one case of each clinical diagnosis
    assert sorted(it["ph2_diagnosis"] for it in lists["test"]) == [0, 1, 2]
    assert sorted(it["ph2_diagnosis"] for it in lists["val"]) == [0, 1, 2]
    # the data the checkpoint is selected on is the validation part, not the test fold
    assert wf.parser.get_parsed_content("validate#dataset#data") == lists["val"]
    wf.run()
    wf.finalize()
    ckpt = out / "models" / "model.pt"
    assert ckpt.is_file()

    ev = tmp_path / "ph2_eval"
    bundle_run(run_id="evaluating", meta_file=META, logging_file=LOGGING,
               config_file=[str(CONFIGS / c) for c in ("inference.yaml", "evaluate.yaml", "evaluate_ph2.yaml")],
               dataset_dir=str(ph2), checkpoint=str(ckpt), output_dir=str(ev), scales=[32], views=["identity"],
               num_workers=0, **NET)
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["protocol"] == "ph2" and metrics["segmentation"]["count"] == 12
    assert set(metrics["classification"]["scores"]) == {"M_ACC", "M_SE", "M_SP", "M_AUC"}
    assert "Table 5" in (ev / "metrics.md").read_text()


def test_short_isic_run_loss_falls(shared_data, tmp_path):
    """30 iterations on the real ISIC-2017 images (small network, 64 px): the training loss goes down."""
    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "train.yaml"), meta_file=META, logging_file=LOGGING, workflow_type="train",
        run_id="training", dataset_dir=str(shared_data / "isic2017"), output_dir=str(tmp_path / "isic"),
        ckpt_dir=str(tmp_path / "isic" / "models"),
        image_size=64, max_iterations=30, val_interval=30, num_workers=0, learning_rate=1e-3,
        dtc_ramp_iterations=0, **NET,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    losses = []
    from monai.engines.utils import IterationEvents

    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: losses.append(float(e.state.output["lab_mask"])))
    wf.run()
    wf.finalize()
    assert len(losses) == 30
    first, last = np.mean(losses[:6]), np.mean(losses[-6:])
    assert last < 0.85 * first, (first, last)
