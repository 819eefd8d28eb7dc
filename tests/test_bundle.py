"""The MONAI bundle end to end on tiny overrides: train -> resume -> evaluate -> infer -> export, DDP.

One training run (a module fixture) feeds a separate test per stage, so one failing stage hides no other.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run
from PIL import Image

from conftest import BUNDLE_NET, CONFIGS, LOGGING, META, REPO
from monai_mtt.data import make_synthetic_isic

NET = BUNDLE_NET
EVALUATE = ("inference.yaml", "evaluate.yaml")  # evaluate.yaml is an override of inference.yaml


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic_isic(tmp_path_factory.mktemp("syn"), n_train=8, n_val=3, n_unlabeled=8, size=64)


def _chain(err: BaseException) -> str:
    """Every message along the exception's cause chain (MONAI wraps config errors)."""
    parts = []
    while err is not None:
        parts.append(f"{type(err).__name__}: {err}")
        err = err.__cause__ or err.__context__
    return "\n".join(parts)


def _train_overrides(root: Path, out: Path, **extra) -> dict:
    return {
        "bundle_root": str(REPO / "bundle"),
        "dataset_dir": str(root),
        "unlabeled_dir": str(root / "ISIC-Additional"),
        "output_dir": str(out),
        "ckpt_dir": str(out / "models"),
        "image_size": 32,
        "max_iterations": 4,
        "val_interval": 2,
        "num_workers": 0,
        "log_interval": 1,
        **NET,
        **extra,
    }


def test_metadata_has_the_model_zoo_keys():
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    for key in (
        "version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version", "task",
        "description", "authors", "copyright", "network_data_format", "changelog",
    ):
        assert key in meta, key
    assert meta["version"] in meta["changelog"]
    fmt = meta["network_data_format"]
    assert list(fmt["inputs"])[0] == "image" and list(fmt["outputs"])[0] == "pred"
    pred = fmt["outputs"]["pred"]
    assert len(pred["spatial_shape"]) == 2 and pred["channel_def"]["1"] == "lesion"
    assert fmt["outputs"]["class_probabilities"]["channel_def"] == {
        "0": "nevus", "1": "melanoma", "2": "seborrheic_keratosis"
    }
    import monai_mtt

    assert meta["version"] == monai_mtt.__version__


def test_evaluate_is_an_override_of_inference():
    """evaluate.yaml states only what differs from inference.yaml: none of its keys repeats inference.yaml's value,
    and the network, checkpoint, TTA settings and evaluator come from inference.yaml."""
    inference = ConfigParser(ConfigParser.load_config_file(str(CONFIGS / "inference.yaml")))
    evaluate = ConfigParser.load_config_file(str(CONFIGS / "evaluate.yaml"))
    repeated = [k for k, v in evaluate.items() if k in inference and inference[k] == v]
    assert repeated == []
    for key in ("network_def", "network", "checkpoint", "scales", "views", "tta_ensemble", "evaluator", "inferer"):
        assert key not in evaluate and key in inference, key
    merged = ConfigParser()
    merged.read_config([str(CONFIGS / c) for c in EVALUATE])
    assert merged["dataset#data"] == "@datalist" and merged["evaluator#val_handlers"] == "@handlers"
    assert merged["inferer#scales"] == "@scales" and merged["inferer#return_attention"] == "$@num_layers > 0"
    assert "@writer" not in merged["handlers"]  # the evaluation report replaces the prediction writer


def test_workflow_properties():
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.yaml"), meta_file=META, workflow_type="train")
    wf.initialize = lambda: None  # only parse
    missing = [p for p in ("bundle_root", "device", "dataset_dir", "train#trainer", "train#dataset", "network")
               if p not in wf.parser]
    assert missing == []
    for cfgs in (["train.yaml"], EVALUATE, ["inference.yaml"]):
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / c) for c in cfgs])
        for key in ("bundle_root", "device", "network_def", "initialize", "run"):
            assert key in parser, (cfgs, key)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.yaml"))
    for key in ("train#trainer", "train#dataset", "train#handlers", "validate#evaluator", "validate#dataset", "training"):
        assert key in parser, key


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory) -> Path:
    """One 4-iteration training run, shared read-only by the stage tests below (resume works on a copy)."""
    out = tmp_path_factory.mktemp("bundle") / "run"
    bundle_run(run_id="training", meta_file=META, config_file=str(CONFIGS / "train.yaml"), logging_file=LOGGING,
               **_train_overrides(synthetic, out))
    return out


@pytest.fixture
def infer_inputs(synthetic, tmp_path) -> Path:
    """Two validation images and one corrupt file."""
    inp = tmp_path / "in"
    inp.mkdir()
    for p in sorted((synthetic / "ISIC-2017_Validation_Data").glob("*.jpg"))[:2]:
        (inp / p.name).write_bytes(p.read_bytes())
    val_image = sorted((synthetic / "ISIC-2017_Validation_Data").glob("*.jpg"))[0]
    (inp / "corrupt.jpg").write_bytes(val_image.read_bytes()[:300])
    return inp


def _infer_args(ckpt: Path, inp: Path) -> dict:
    return dict(meta_file=META, config_file=str(CONFIGS / "inference.yaml"), logging_file=LOGGING,
                checkpoint=str(ckpt), input_dir=str(inp), scales=[32], views=["identity", "rot90"], **NET)


def test_train_writes_checkpoints(trained):
    out = trained
    ckpt = out / "models" / "model.pt"
    assert ckpt.is_file() and (out / "latest.pt").is_file()
    latest = torch.load(out / "latest.pt", weights_only=True)
    assert latest["trainer"]["iteration"] == 4 and set(latest) >= {"model", "optimizer", "lr_scheduler"}
    info = json.loads((out / "models" / "model.json").read_text())
    assert info["metric"] == "val_jaccard" and 0 <= info["value"] <= 1


def test_train_resumes(synthetic, trained, tmp_path):
    # rerunning with a larger budget resumes at iteration 4 instead of starting over
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    wf = ConfigWorkflow(config_file=str(CONFIGS / "train.yaml"), meta_file=META, logging_file=LOGGING,
                        workflow_type="train", run_id="training", **_train_overrides(synthetic, out, max_iterations=6))
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    first = []
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_STARTED(once=5), lambda e: first.append(e.state.iteration))
    wf.run()
    wf.finalize()
    assert first == [5] and trainer.state.iteration == 6
    # the learning curve continued across the resume: iterations 1-6, validation JA where validated,
    # and the best of it is the value the best-model checkpoint recorded
    with open(out / "learning_curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    ja = {int(r["iteration"]): float(r["val_jaccard"]) for r in rows if r["val_jaccard"]}
    assert sorted(ja) == [2, 4, 6]
    assert json.loads((out / "models" / "model.json").read_text())["value"] == pytest.approx(max(ja.values()))
    assert Image.open(out / "learning_curve.png").format == "PNG"


def test_evaluate_report(synthetic, trained, tmp_path):
    # evaluation at original resolution with TTA
    ckpt = trained / "models" / "model.pt"
    ev = tmp_path / "eval"
    bundle_run(run_id="evaluating", meta_file=META, config_file=[str(CONFIGS / c) for c in EVALUATE],
               logging_file=LOGGING,
               checkpoint=str(ckpt), dataset_dir=str(synthetic), output_dir=str(ev), scales=[32, 48],
               views=["identity", "hflip"], num_workers=0, **NET)
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["segmentation"]["count"] == 3 and set(metrics["segmentation"]["mean"]) >= {"JA", "DI", "AC", "SE", "SP"}
    assert "M_AUC" in metrics["classification"]["scores"]
    assert metrics["classification"]["decision"] == "argmax"  # the default rule, named in the report
    assert "decision: argmax over the class probabilities" in (ev / "metrics.md").read_text()
    assert metrics["settings"] == {"scales": [32, 48], "views": ["identity", "hflip"], "tta_ensemble": "probabilities"}
    assert (ev / "metrics.md").read_text().count("|") > 10 and (ev / "roc.png").is_file()
    overlays = sorted((ev / "overlays").glob("*_overlay.png"))
    assert len(overlays) == 3
    val_image = sorted((synthetic / "ISIC-2017_Validation_Data").glob("*.jpg"))[0]
    w, h = Image.open(val_image).size
    assert Image.open(overlays[0]).size == (w, h)  # original (non-square) size
    # image | outlines | attention, 4 px apart, per image, and all of them stacked in overlays.png
    panels = sorted((ev / "overlays").glob("*_panel.png"))
    assert [p.name.replace("_panel", "") for p in panels] == [p.name.replace("_overlay", "") for p in overlays]
    assert Image.open(panels[0]).size == (3 * w + 8, h)
    assert Image.open(ev / "overlays.png").size == (3 * w + 8, 3 * h + 8)
    # the no-learning baselines, scored on the same images, printed beside the model
    assert [b["method"] for b in metrics["baselines"]] == ["Otsu threshold (no learning)", "constant scores (no learning)"]
    assert metrics["baselines"][0]["segmentation"]["count"] == 3
    assert metrics["baselines"][1]["classification"]["scores"]["M_AUC"] in (0.5, None)
    assert "| Metric | MT-TransUNet (ours) | Otsu threshold (no learning) |" in (ev / "metrics.md").read_text()
    with pytest.raises(Exception) as err:  # never overwrites a report
        bundle_run(run_id="evaluating", meta_file=META, config_file=[str(CONFIGS / c) for c in EVALUATE],
                   logging_file=LOGGING, checkpoint=str(ckpt), dataset_dir=str(synthetic), output_dir=str(ev),
                   scales=[32], views=["identity"], num_workers=0, **NET)
    assert "FileExistsError" in _chain(err.value) and "metrics.json exists" in _chain(err.value)


def test_infer_folder_with_a_corrupt_file(trained, infer_inputs, tmp_path, capsys):
    # inference on a folder with one corrupt file: the good ones are written, the bad one reported
    inp = infer_inputs
    pred = tmp_path / "pred"
    with pytest.raises(SystemExit) as err:  # the problems listed, exit status 2, no traceback
        bundle_run(run_id="inferring", output_dir=str(pred), **_infer_args(trained / "models" / "model.pt", inp))
    assert err.value.code == 2 and "corrupt.jpg" in capsys.readouterr().err
    rows = list(csv.DictReader(open(pred / "predictions.csv")))
    assert [r["image_id"] for r in rows] == sorted(p.stem for p in inp.glob("SYN_*.jpg"))
    for r in rows:
        assert float(r["melanoma"]) + float(r["seborrheic_keratosis"]) + float(r["nevus"]) == pytest.approx(1, abs=1e-5)
        mask = np.asarray(Image.open(pred / f"{r['image_id']}_segmentation.png"))
        assert mask.shape == np.asarray(Image.open(inp / f"{r['image_id']}.jpg")).shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert (pred / f"{r['image_id']}_attention.png").is_file()


def test_torchscript_export_infers_alike(trained, infer_inputs, tmp_path):
    # TorchScript export through MONAI's ckpt_export; the inference config runs it with equal outputs
    ckpt = trained / "models" / "model.pt"
    inp = infer_inputs
    (inp / "corrupt.jpg").unlink()
    pred = tmp_path / "pred"
    bundle_run(run_id="inferring", output_dir=str(pred), **_infer_args(ckpt, inp))
    rows = list(csv.DictReader(open(pred / "predictions.csv")))
    ts = tmp_path / "model.ts"
    from monai.bundle import ckpt_export

    ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(ckpt), meta_file=META,
                config_file=str(CONFIGS / "inference.yaml"), key_in_ckpt="model", **NET)
    pred_ts = tmp_path / "pred_ts"
    bundle_run(run_id="inferring", output_dir=str(pred_ts), **_infer_args(ts, inp))
    rows_ts = list(csv.DictReader(open(pred_ts / "predictions.csv")))
    assert len(rows) == len(rows_ts) == 2
    for a, b in zip(rows, rows_ts):
        for k in ("melanoma", "seborrheic_keratosis"):
            assert float(a[k]) == pytest.approx(float(b[k]), abs=1e-4)
        ma = np.asarray(Image.open(pred / f"{a['image_id']}_segmentation.png"))
        mb = np.asarray(Image.open(pred_ts / f"{a['image_id']}_segmentation.png"))
        assert (ma != mb).mean() < 1e-3


def test_cpu_reference_config(synthetic, tmp_path):
    """cpu_reference.yaml on tiny overrides: the training set doubles as the class-balanced classification
    stream (one shared cache), and the best model's validation report is written at the end."""
    out = tmp_path / "ref"
    configs = [str(CONFIGS / "train.yaml"), str(CONFIGS / "cpu_reference.yaml")]
    overrides = _train_overrides(synthetic, out, unlabeled_dir=None)
    overrides.pop("ckpt_dir")  # cpu_reference keeps the best model in output_dir/models
    wf = ConfigWorkflow(config_file=configs, meta_file=META, logging_file=LOGGING, workflow_type="train",
                        run_id="training", **overrides)
    wf.initialize()
    assert wf.parser.get_parsed_content("train#unlabeled_dataset") is wf.parser.get_parsed_content("train#dataset")
    sampler = wf.parser.get_parsed_content("train#unlabeled_dataloader").sampler
    assert isinstance(sampler, torch.utils.data.WeightedRandomSampler)
    train_items = wf.parser.get_parsed_content("datalists")["train"]
    assert len(sampler.weights) == len(train_items)
    wf.run()
    wf.finalize()
    assert (out / "models" / "model.pt").is_file() and (out / "learning_curve.png").is_file()
    report = json.loads((out / "validation" / "metrics.json").read_text())
    n_val = len(list((synthetic / "ISIC-2017_Validation_Data").glob("*.jpg")))
    assert report["segmentation"]["count"] == n_val
    assert set(report["segmentation"]["mean"]) >= {"JA", "DI", "AC"}
    assert {"M_AUC", "K_AUC"} <= set(report["classification"]["scores"])


def test_verify_net_in_out():
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=META, config_file=str(CONFIGS / "inference.yaml"),
                      n=1, any=16, **NET)


def test_cli_training_run_and_data_errors(synthetic, tmp_path):
    """The README's `python -m monai.bundle run training` path, and a wrong dataset_dir refused clearly."""
    args = [sys.executable, "-m", "monai.bundle", "run", "training", "--meta_file", META,
            "--config_file", str(CONFIGS / "train.yaml"), "--logging_file", LOGGING]
    for k, v in _train_overrides(synthetic, tmp_path / "cli", max_iterations=2, val_interval=2).items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "cli" / "models" / "model.pt").is_file()
    bad = tmp_path / "not_isic"
    bad.mkdir()
    with pytest.raises(Exception) as err:
        bundle_run(run_id="training", meta_file=META, config_file=str(CONFIGS / "train.yaml"), logging_file=LOGGING,
                   **_train_overrides(bad, tmp_path / "bad"))
    assert "DataValidationError" in _chain(err.value) and "not_isic" in _chain(err.value)


@pytest.mark.slow
def test_ddp_two_cpu_processes(synthetic, tmp_path):
    out = tmp_path / "ddp"
    logs = tmp_path / "ranks"
    # --standalone: the rendezvous on a free port (a fixed port can be taken); --tee 3: each rank's stdout and
    # stderr also go to files under ``logs``, so a failing rank's own output reaches the assertion message
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "--log-dir", str(logs), "--tee", "3",
            "-m", "monai.bundle", "run", "training", "--meta_file", META, "--logging_file", LOGGING,
            "--config_file", str([str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml")])]
    for k, v in _train_overrides(synthetic, out).items():
        args += [f"--{k}", json.dumps(v) if isinstance(v, list) else str(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    if res.returncode != 0:
        ranks = "".join(f"\n--- {f.relative_to(logs)} ---\n{f.read_text(errors='replace')[-3000:]}"
                        for f in sorted(logs.rglob("*.log")))
        pytest.fail(f"torchrun exited {res.returncode}\n{res.stdout[-3000:]}{res.stderr[-3000:]}{ranks}")
    latest = torch.load(out / "latest.pt", weights_only=True)
    assert latest["trainer"]["iteration"] == 4
    assert not any(k.startswith("module.") for k in latest["model"])  # saved unwrapped


class _FakeDist:
    """``torch.distributed`` as a process of rank ``rank`` sees it, for parsing multi_gpu_train.yaml without a group."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def get_rank(self) -> int:
        return self.rank

    def is_initialized(self) -> bool:
        return True


def _handlers_run(rank: int, engine_key: str, handlers_key: str, insert: dict | None = None) -> list[str]:
    """The ``_target_`` of each handler the engine gets in process ``rank`` of train.yaml + multi_gpu_train.yaml.

    Each handler is replaced by a cheap stand-in (a dict naming its target) that keeps its ``_disabled_``, so the
    engine's handler list resolves as the config selects it without building networks or data sets.
    """
    parser = ConfigParser(globals={"dist": _FakeDist(rank)})
    parser.read_config([str(CONFIGS / "train.yaml"), str(CONFIGS / "multi_gpu_train.yaml")])
    # the configs' `import torch.distributed as dist` would replace the stand-in when parsed
    parser["imports"] = [i for i in parser["imports"] if "torch.distributed" not in i]
    parser["initialize"] = []
    handlers = list(parser[handlers_key]) if insert is None else [insert, *parser[handlers_key]]
    stand_ins = []
    for h in handlers:
        stand_in = {"_target_": "builtins.dict", "target": h["_target_"]}
        if "_disabled_" in h:
            stand_in["_disabled_"] = h["_disabled_"]
        stand_ins.append(stand_in)
    parser[handlers_key] = stand_ins
    return [h["target"] for h in parser.get_parsed_content(engine_key)]


def test_multi_gpu_handlers_are_chosen_by_flag_not_position():
    """rank > 0 drops exactly the logging / plotting handlers, wherever a handler is inserted into train.yaml's lists
    (MONAI Label's BundleTrainTask inserts a CheckpointLoader at position 0 of train#handlers)."""
    train = ("train#trainer#train_handlers", "train#handlers")
    val = ("validate#evaluator#val_handlers", "validate#handlers")
    all_train = _handlers_run(0, *train)
    assert all_train[0] == "LrScheduleHandler" and all_train[-1] == "monai_mtt.handlers.LatestCheckpoint"
    main_only = {"StatsHandler", "TensorBoardStatsHandler", "ignite.handlers.ProgressBar",
                 "monai_mtt.handlers.LearningCurve"}  # fmt: skip
    rank1 = [t for t in all_train if t not in main_only]
    assert rank1 == ["LrScheduleHandler", "monai_mtt.handlers.DTCRampHandler", "monai_mtt.handlers.ARCHandler",
                     "ValidationHandler", "monai_mtt.handlers.LatestCheckpoint"]  # fmt: skip
    assert _handlers_run(1, *train) == rank1
    assert _handlers_run(1, *val) == ["monai_mtt.handlers.BestCheckpoint"]
    assert _handlers_run(0, *val) == ["StatsHandler", "TensorBoardStatsHandler", "monai_mtt.handlers.BestCheckpoint"]
    loader = {"_target_": "CheckpointLoader", "load_path": "x.pt", "load_dict": {}}
    for rank in (0, 1):
        expected_train = all_train if rank == 0 else rank1
        assert _handlers_run(rank, *train, insert=loader) == ["CheckpointLoader", *expected_train]
        assert _handlers_run(rank, *val, insert=loader)[0] == "CheckpointLoader"
    assert _handlers_run(1, *val, insert=loader) == ["CheckpointLoader", "monai_mtt.handlers.BestCheckpoint"]
