"""The paper's ablations as bundle configs (Tables 1 and 2) and the runner that collects their table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from conftest import REPO, SMALL_NET
from monai_mtt.apps import ablation
from monai_mtt.data import make_synthetic_isic

CONFIGS = REPO / "bundle" / "configs"
NET = {f"network_def#{k}": (list(v) if isinstance(v, tuple) else v) for k, v in SMALL_NET.items() if k != "num_layers"}

# (lambda_mask, lambda_cls, lambda_lsf, lambda_dtc, lambda_arc, num_layers, uses the unlabeled stream)
EXPECTED = {
    "table1_setting1_mask": (1.0, 0.0, 0.0, 0.0, 0.0, 4, False),
    "table1_setting2_cls": (0.0, 0.25, 0.0, 0.0, 0.0, 4, False),
    "table1_setting3_mask_cls": (1.0, 0.25, 0.0, 0.0, 0.0, 4, False),
    "table1_setting4_lsf": (1.0, 0.25, 5.0, 0.0, 0.0, 4, True),
    "table1_setting5_dtc": (1.0, 0.25, 5.0, 1.0, 0.0, 4, True),
    "table1_setting6_full": (1.0, 0.25, 5.0, 1.0, 1.0, 4, True),
    "table2_layers0": (1.0, 0.0, 5.0, 1.0, 0.0, 0, True),
    "table2_layers2": (1.0, 0.25, 5.0, 1.0, 1.0, 2, True),
    "table2_layers4": (1.0, 0.25, 5.0, 1.0, 1.0, 4, True),
    "table2_layers6": (1.0, 0.25, 5.0, 1.0, 1.0, 6, True),
    "table2_layers8": (1.0, 0.25, 5.0, 1.0, 1.0, 8, True),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic_isic(tmp_path_factory.mktemp("syn"), n_train=8, n_val=3, n_unlabeled=8, size=64)


def test_every_table_row_has_a_config():
    found = ablation.load_ablations(ablation.find_bundle(), "all")
    assert [a.name for a in found] == list(EXPECTED)
    assert [a.row for a in found if a.table == "table2"] == ["0", "2", "4", "6", "8"]
    assert [a.row[:3] for a in found if a.table == "table1"] == [f"({i})" for i in range(1, 7)]
    assert len(ablation.load_ablations(ablation.find_bundle(), "table1")) == 6
    assert [a.name for a in ablation.load_ablations(ablation.find_bundle(), "table2", ["table2_layers0"])] == [
        "table2_layers0"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_ablation_config_builds(name, synthetic, tmp_path):
    from monai.handlers import from_engine  # noqa: F401 - the configs reference monai.handlers

    from monai_mtt.networks import MTTransUNet

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.yaml"), str(CONFIGS / "ablations" / f"{name}.yaml")])
    default_out = parser.get_parsed_content("output_dir")
    assert default_out.endswith(f"/runs/ablations/{name}") and parser.get_parsed_content("ckpt_dir").startswith(
        default_out)
    parser.update({"dataset_dir": str(synthetic), "unlabeled_dir": str(synthetic / "ISIC-Additional"),
                   "output_dir": str(tmp_path), "num_workers": 0, "image_size": 32, **NET})
    lm, lc, ll, ld, la, layers, unlabeled = EXPECTED[name]
    loss = parser.get_parsed_content("loss")
    assert (loss.lambda_mask, loss.lambda_cls, loss.lambda_lsf, loss.lambda_dtc, loss.lambda_arc) == (lm, lc, ll, ld, la)
    assert loss.stream_reduction == "batch_mean"  # the authors' effective weights
    crop = parser.get_parsed_content("train#augmentation")[0]
    assert (crop.mode, crop.margin_step, crop.num_margins) == ("authors", 30 / 896, 7)
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, MTTransUNet) and net.num_layers == layers and len(net.layers) == layers
    # every handler and the trainer instantiate; the unlabeled stream only where the setting uses it
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.has_unlabeled is unlabeled
    evaluator = parser.get_parsed_content("validate#evaluator")
    expected_key = "val_melanoma_auc" if name == "table1_setting2_cls" else "val_jaccard"
    assert evaluator.state.key_metric_name == expected_key
    if layers == 0:
        assert la == 0  # ARC needs a Transformer layer's cls attention


def test_overrides_are_routed_by_key():
    train = [CONFIGS / "train.yaml", CONFIGS / "ablations" / "table1_setting1_mask.yaml"]
    tr, ev = ablation.route_overrides(
        ablation.parse_overrides(["image_size=32", "scales=[32, 48]", "views=[identity]", "num_workers=0",
                                  "network_def#hidden_size=48", "dataset_dir=/x"]),
        train, [CONFIGS / "inference.yaml", CONFIGS / "evaluate.yaml"])
    assert tr == {"image_size": 32, "num_workers": 0, "network_def#hidden_size": 48, "dataset_dir": "/x"}
    assert ev == {"scales": [32, 48], "views": ["identity"], "num_workers": 0, "network_def#hidden_size": 48,
                  "dataset_dir": "/x"}
    with pytest.raises(ValueError, match="no_such_key"):
        ablation.route_overrides({"no_such_key": 1}, train, [CONFIGS / "inference.yaml", CONFIGS / "evaluate.yaml"])


def test_runner_end_to_end_two_configs(synthetic, tmp_path, capsys):
    out = tmp_path / "ablations"
    overrides = [f"dataset_dir={synthetic}", f"unlabeled_dir={synthetic / 'ISIC-Additional'}", "image_size=32",
                 "max_iterations=2", "val_interval=2", "num_workers=0", "log_interval=1", "scales=[32]",
                 "views=[identity]", "num_overlays=1"]
    overrides += [f"{k}={json.dumps(v)}" for k, v in NET.items()]
    args = ["--set", "all", "--only", "table1_setting2_cls", "table2_layers0", "--output", str(out),
            "--overrides", *overrides]
    assert ablation.main(args) == 0
    printed = capsys.readouterr().out
    assert "[1/2] table1_setting2_cls: training" in printed and "[2/2] table2_layers0: evaluated" in printed

    md = (out / "results_all.md").read_text()
    rows = json.loads((out / "results_all.json").read_text())
    assert [r["name"] for r in rows] == ["table1_setting2_cls", "table2_layers0"]
    assert "| Setting | JA | DI | M_ACC | K_ACC |" in md and "| n Layer | JA | DI | M_ACC | K_ACC |" in md
    for r in rows:
        metrics = json.loads((out / r["name"] / "eval" / "metrics.json").read_text())
        seg, cls = metrics["segmentation"]["mean"], metrics["classification"]["scores"]
        assert r["measured"] == {"JA": seg["JA"], "DI": seg["DI"], "M_ACC": cls["M_ACC"], "K_ACC": cls["K_ACC"]}
    cls_row, l0_row = rows
    # classification-only: no segmentation ("-" as in the paper); 0 layers: no classification
    assert cls_row["JA"] is None and cls_row["DI"] is None and cls_row["M_ACC"] == cls_row["measured"]["M_ACC"]
    assert l0_row["M_ACC"] is None and l0_row["K_ACC"] is None and l0_row["JA"] == l0_row["measured"]["JA"]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    assert f"| (2) ℓ_CLS | - | - | {pct(cls_row['M_ACC'])} | {pct(cls_row['K_ACC'])} |" in md
    assert f"| 0 | {pct(l0_row['JA'])} | {pct(l0_row['DI'])} | - | - |" in md
    table = list(csv.DictReader(open(out / "results_all.csv", encoding="utf-8")))
    assert [t["row"] for t in table] == ["(2) ℓ_CLS", "0"]
    assert float(table[0]["M_ACC"]) == cls_row["M_ACC"] and table[0]["JA"] == ""
    assert float(table[1]["JA"]) == l0_row["JA"] and table[1]["M_ACC"] == ""
    for name in ("table1_setting2_cls", "table2_layers0"):  # each run in its own folders
        assert (out / name / "latest.pt").is_file() and (out / name / "eval" / "metrics.md").is_file()

    # never replaces a table unless told; finished runs are reused, not retrained
    assert ablation.main(args) == 2
    assert "exists" in capsys.readouterr().err
    (out / "results_all.md").unlink()
    assert ablation.main(args) == 0
    assert "reusing finished run" in capsys.readouterr().out
