"""Hostile or careless inputs outside the Label server (issue 12): each is named, nothing is lost.

Covers: request validation of the Label app (pure module), the decoded-size limit (a 48 KB
20000 x 20000 PNG refused from its header with bounded memory), inference on a folder with a 1 x 1
image, a bomb and a text file (every good image written, the others listed, exit 2, no traceback),
id-derived and manifest-derived paths kept inside their folder, a run's best model belonging to that
run, the output_dir lock, stale checkpoint temporaries, ``--out`` naming an input, unreadable CSVs and
checkpoints, looping links and misleading messages.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, SMALL_NET, bomb_png
from monai_mtt.apps.monailabel.__main__ import with_default_host
from monai_mtt.apps.monailabel.validate import (
    InvalidRequest,
    check_name,
    validate_infer_request,
    validate_train_request,
)
from monai_mtt.cli import main as cli_main
from monai_mtt.data import make_synthetic_isic
from monai_mtt.handlers import BestCheckpoint, PredictionWriter, claim_output_dir
from monai_mtt.handlers.run_dir import remove_stale_temporaries
from monai_mtt.inferers.views import VIEWS
from monai_mtt.networks.checkpoint import CheckpointError, load_checkpoint
from monai_mtt.transforms import LoadDermoscopyd
from monai_mtt.transforms.io import ImageTooLargeError, check_image_file

CONFIGS = REPO / "bundle" / "configs"
SIGILS = ["$__import__('os').system('touch /tmp/x') or 'cpu'", "@network_def", "%configs/x.yaml#y"]
TRAIN_KEYS = ["device", "max_epochs", "epoch_length", "image_size", "batch_size", "num_workers", "learning_rate",
              "val_split", "pretrained", "multi_gpu", "gpus", "model_filename", "run_id", "tracking"]  # fmt: skip


# ------------------------------------------------------------------ Label request validation (pure)


@pytest.mark.parametrize("key", TRAIN_KEYS)
def test_train_values_with_config_sigils_are_refused(key):
    for value in SIGILS:
        with pytest.raises(InvalidRequest) as err:
            validate_train_request({key: value})
        assert err.value.param == key and err.value.status == 422


def test_train_request_typed_and_bounded():
    ok = validate_train_request(
        {"device": ["cpu"], "max_epochs": "3", "epoch_length": 2.0, "image_size": 64, "batch_size": 1, "num_workers": 0,
         "learning_rate": "1e-4", "val_split": 0.5, "pretrained": "false", "multi_gpu": False, "gpus": "all",
         "model_filename": ["model.pt"], "run_id": "", "tracking": ["None", "mlflow"], "tracking_uri": ""},
        model_files=["model.pt"],
    )  # fmt: skip
    assert ok == {"device": "cpu", "max_epochs": 3, "epoch_length": 2, "image_size": 64, "batch_size": 1,
                  "num_workers": 0, "learning_rate": 1e-4, "val_split": 0.5, "pretrained": False, "multi_gpu": False,
                  "gpus": "all", "model_filename": "model.pt", "run_id": "run", "tracking": "None"}  # fmt: skip
    assert not any(isinstance(v, str) and v[:1] in "$@%" for v in ok.values())
    for bad in [{"max_epochs": 10**9}, {"max_epochs": True}, {"learning_rate": "nan"}, {"learning_rate": 0},
                {"image_size": 100}, {"val_split": -0.5}, {"gpus": "0,999"}, {"device": "cuda:0; rm"},
                {"model_filename": "../../x.pt"}, {"model_filename": "other.pt"}, {"run_id": "network_def"},
                {"tracking": "mlflow"}, {"datalists": {}}, {"bundle_path": "/tmp"}, {"local_rank": 0}]:  # fmt: skip
        with pytest.raises(InvalidRequest) as err:
            validate_train_request(bad, model_files=["model.pt"])
        assert err.value.param == next(iter(bad)), bad
    assert validate_train_request({"model": "m", "bundle_path": "/x", "local_rank": 0}, server_keys=True) == {
        "model": "m", "local_rank": 0}  # fmt: skip
    # MONAI Label's own client (monailabel.client) adds client_id to every request, train included
    assert validate_train_request({"client_id": None, "max_epochs": 1}) == {"max_epochs": 1}


def test_infer_request_typed_and_bounded():
    ok = validate_infer_request({"scales": "224, 256", "views": ["identity", "hflip"], "return_attention": "true",
                                 "attention_grid": "4", "result_extension": ".png", "client_id": "x"}, VIEWS)  # fmt: skip
    assert ok == {"scales": [224, 256], "views": ["identity", "hflip"], "return_attention": True, "attention_grid": 4,
                  "result_extension": ".png"}  # fmt: skip
    for bad, param in [({"scales": 2048}, "scales"), ({"scales": [224] * 9}, "scales"), ({"scales": 100}, "scales"),
                       ({"views": "evil"}, "views"), ({"attention_grid": 0}, "attention_grid"),
                       ({"image": "/etc/passwd"}, "image"), ({"session": "x"}, "session"), ({"x": 1}, "x"),
                       ({"device": "$x"}, "device")]:  # fmt: skip
        with pytest.raises(InvalidRequest) as err:
            validate_infer_request(bad, VIEWS)
        assert err.value.param == param
    with pytest.raises(InvalidRequest):
        validate_infer_request(["not", "a", "dict"], VIEWS)


def test_plain_names_and_default_host():
    for good in ("ISIC_0000000", "case 1", "a.b"):
        assert check_name(good) == good
    for bad in ("../x", "a/b", "a\\b", "..", "/abs", ".hidden", "$x", "@x", "%x", "c:x", "", "a\x00b", "x" * 300, 5):
        with pytest.raises(InvalidRequest):
            check_name(bad)
    assert with_default_host(["start_server", "--app", "a"])[-2:] == ["--host", "127.0.0.1"]
    assert with_default_host(["start_server", "--host", "0.0.0.0"]) == ["start_server", "--host", "0.0.0.0"]


# ------------------------------------------------------------------ decoded-size limit


def test_bomb_refused_from_header_with_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb_png(bomb)
    assert bomb.stat().st_size < 100_000
    code = (
        "import resource, sys\n"
        "from monai_mtt.transforms import LoadDermoscopyd\n"
        "from monai_mtt.transforms.io import ImageTooLargeError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    LoadDermoscopyd(label_key=None)({{'image': {str(bomb)!r}}})\n"
        "except ImageTooLargeError as e:\n"
        "    print('refused', e)\n"
        "print('growth_mb', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert "refused" in res.stdout and "400.0 megapixels" in res.stdout and str(bomb) in res.stdout, res.stderr[-2000:]
    growth = float(res.stdout.split("growth_mb")[1])
    assert growth < 100, f"decoding started: peak memory grew by {growth:.0f} MB"


def test_pixel_limit_configurable(tmp_path, monkeypatch):
    image = tmp_path / "img.png"
    Image.new("RGB", (50, 40)).save(image)
    assert check_image_file(image) == (50, 40)
    monkeypatch.setenv("MONAI_MTT_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match=r"50 x 40 = 0.0 megapixels.*MONAI_MTT_MAX_IMAGE_PIXELS"):
        LoadDermoscopyd(label_key=None)({"image": str(image)})
    monkeypatch.setenv("MONAI_MTT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="MONAI_MTT_MAX_IMAGE_PIXELS='lots' is not a positive number"):
        check_image_file(image)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # PIL's own limit is not raised process-wide


# ------------------------------------------------------------------ inference: a bad image never aborts the run


def _small_checkpoint(path: Path) -> Path:
    from monai_mtt.networks import MTTransUNetInfer

    net = MTTransUNetInfer(**{k: v for k, v in SMALL_NET.items()}, with_classes=False)
    torch.save({"model": net.state_dict()}, path)
    return path


def _net_args() -> list[str]:
    args = []
    for k, v in SMALL_NET.items():
        key = "num_layers" if k == "num_layers" else f"network_def#{k}"
        args += [f"--{key}", json.dumps(list(v)) if isinstance(v, tuple) else str(v)]
    return args


def test_inferring_writes_every_good_image_and_lists_the_others(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(inp / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (1, 1, 3), dtype=np.uint8)).save(inp / "b_1x1.png")
    Image.fromarray(rng.integers(0, 255, (3, 1, 3), dtype=np.uint8)).save(inp / "b_3x1.png")
    bomb_png(inp / "c_bomb.png")
    (inp / "d_text.jpg").write_text("not an image")
    os.symlink(inp / "loop.png", inp / "loop.png")
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(inp / "e.jpg")
    ckpt = _small_checkpoint(tmp_path / "model.pt")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "monai.bundle", "run", "inferring", "--meta_file", str(CONFIGS / "metadata.json"),
            "--config_file", str(CONFIGS / "inference.yaml"), "--logging_file", str(CONFIGS / "logging.conf"),
            "--input_dir", str(inp), "--output_dir", str(out), "--checkpoint", str(ckpt), "--scales", "[32]",
            "--views", "['identity']", *_net_args()]  # fmt: skip
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    for bad in ("c_bomb.png", "d_text.jpg", "loop.png"):
        assert bad in res.stderr
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [r["image_id"] for r in rows] == ["a", "b_1x1", "b_3x1", "e"]
    for name, (h, w) in {"a": (40, 56), "b_1x1": (1, 1), "b_3x1": (3, 1), "e": (30, 20)}.items():
        for kind in ("segmentation", "overlay", "attention"):
            with Image.open(out / f"{name}_{kind}.png") as im:
                assert im.size == (w, h)

    # an empty folder: named as such, not "(the other images were processed)"
    empty = tmp_path / "empty"
    empty.mkdir()
    args[args.index(str(inp))] = str(empty)
    args[args.index(str(out))] = str(tmp_path / "out2")
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert res.returncode == 2 and "holds no images" in res.stderr and "other images" not in res.stderr
    assert "Traceback" not in res.stderr


def _engine(ids, h=4, w=5):
    out = {"pred": torch.rand(len(ids), 2, h, w), "image": torch.rand(len(ids), 3, h, w),
           "pred_cls": torch.softmax(torch.rand(len(ids), 3), 1), "class": torch.full((len(ids),), -1),
           "attn": torch.rand(len(ids), 1, h, w)}  # fmt: skip
    return SimpleNamespace(state=SimpleNamespace(output=out, batch={"id": list(ids)}))


def test_data_ids_never_write_outside_the_output_folder(tmp_path):
    out = tmp_path / "deep" / "out"
    writer = PredictionWriter(out, ids=["../../escape", "ok"])
    engine = _engine(["../../escape", "ok", "/abs/x"])
    writer.started(engine)
    writer.iteration(engine)
    writer.completed(engine)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["ok_segmentation.png", "ok_overlay.png", "ok_attention.png", "predictions.csv"]
    )
    assert not list(tmp_path.glob("*escape*")) and not list((tmp_path / "deep").glob("*escape*"))
    assert [p.path for p in writer.problems] == ["../../escape", "/abs/x"]


def test_synthetic_manifest_cannot_delete_outside(tmp_path):
    root = tmp_path / "syn"
    make_synthetic_isic(root, n_train=2, n_val=1, n_unlabeled=1, size=32)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    manifest = json.loads((root / "synthetic.json").read_text())
    manifest["files"].update({"../victim.png": "0", str(victim): "0", "ISIC-2017_Training_Data/../../victim.png": "0"})
    manifest["params"]["size"] = 31  # differs: the folder is regenerated, planned files removed
    (root / "synthetic.json").write_text(json.dumps(manifest))
    make_synthetic_isic(root, n_train=2, n_val=1, n_unlabeled=1, size=32)
    assert victim.read_bytes() == b"precious"


# ------------------------------------------------------------------ runs: best model, lock, stale temporaries


def _validated(value: float, epoch: int = 1):
    return SimpleNamespace(state=SimpleNamespace(metrics={"val": value}, key_metric_name="val", epoch=epoch))


def test_best_model_belongs_to_its_run(tmp_path):
    net = torch.nn.Linear(2, 2)
    models = tmp_path / "models"
    old_run, new_run = tmp_path / "run_old", tmp_path / "run_new"
    old_run.mkdir()
    BestCheckpoint(models, net, run_dir=old_run)(_validated(0.9))
    old_bytes = (models / "model.pt").read_bytes()
    # a new run with a lower first score still saves its model; the old one is kept aside
    BestCheckpoint(models, net, run_dir=new_run)(_validated(0.2))
    info = json.loads((models / "model.json").read_text())
    assert info["value"] == 0.2 and info["run"] == str(new_run.resolve())
    kept = sorted(models.glob("model.*.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == old_bytes and len(list(models.glob("model.*.json"))) == 1
    # the same run, resumed (latest.pt present), keeps its own best and does not save a worse one
    new_run.mkdir()
    (new_run / "latest.pt").write_bytes(b"x")
    resumed = BestCheckpoint(models, net, run_dir=new_run)
    assert resumed.best == 0.2
    resumed(_validated(0.1))
    assert json.loads((models / "model.json").read_text())["value"] == 0.2


def test_ckpt_dir_follows_output_dir():
    from monai.bundle import ConfigParser

    for output_dir, expected in [(None, REPO / "bundle" / "models"), ("/tmp/x/run", Path("/tmp/x/run/models"))]:
        parser = ConfigParser()
        parser.read_config(str(CONFIGS / "train.yaml"))
        parser["bundle_root"] = str(REPO / "bundle")
        if output_dir:
            parser["output_dir"] = output_dir
        assert Path(parser.get_parsed_content("ckpt_dir")) == expected


def test_second_run_into_a_locked_output_dir_stops_clearly(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom monai_mtt.handlers import claim_output_dir\n"
         f"claim_output_dir({str(out)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as err:
            claim_output_dir(out)
        assert err.value.code == 2
        message = capsys.readouterr().err
        assert str(out) in message and f"pid {holder.pid}" in message and "--output_dir" in message
    finally:
        holder.kill()
        holder.wait(10)
    # the lock dies with its process: the folder can be claimed now
    assert claim_output_dir(out).name == ".monai_mtt.lock"


def test_stale_checkpoint_temporaries_removed(tmp_path):
    ours = [tmp_path / ".latest.pt.k3j_x9a2.tmp", tmp_path / ".model.pt.abcdefgh.tmp", tmp_path / "model.json.tmp"]
    theirs = [tmp_path / "notes.tmp", tmp_path / ".other.pt.abcdefgh.tmp", tmp_path / "latest.pt"]
    for p in ours + theirs:
        p.write_bytes(b"x" * 10)
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(ours)
    assert all(p.exists() for p in theirs)
    young = tmp_path / ".latest.pt.youngone.tmp"
    young.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, min_age_s=3600) == [] and young.exists()
    old = time.time() - 7200
    os.utime(young, (old, old))
    assert remove_stale_temporaries(tmp_path, min_age_s=3600) == [young]


# ------------------------------------------------------------------ CLI: --out, unreadable files, messages


def _cli(capsys, *argv) -> tuple[int, str]:
    code = cli_main(list(argv))
    return code, capsys.readouterr().err


def test_out_may_not_be_an_input_or_inside_data(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    truth.write_text("image_id,melanoma,seborrheic_keratosis\nISIC_0000001,1,0\n")
    before = truth.read_bytes()
    code, err = _cli(capsys, "score", "cls", str(truth), str(truth), "--out", str(truth), "--overwrite")
    assert code == 2 and "is one of the inputs" in err and truth.read_bytes() == before
    tdir, pdir = tmp_path / "t", tmp_path / "p"
    tdir.mkdir(), pdir.mkdir()
    mask = np.zeros((4, 4), np.uint8)
    Image.fromarray(mask).save(tdir / "ISIC_0000001_segmentation.png")
    Image.fromarray(mask).save(pdir / "ISIC_0000001_segmentation.png")
    code, err = _cli(capsys, "score", "seg", str(tdir), str(pdir), "--out", str(pdir / "ISIC_0000001_segmentation.png"),
                     "--overwrite")  # fmt: skip
    assert code == 2 and "inside the data folder" in err
    syn = make_synthetic_isic(tmp_path / "syn", n_train=2, n_val=1, n_unlabeled=1, size=32)
    code, err = _cli(capsys, "prepare", "isic2017", "--root", str(syn), "--out", str(syn / "dl.json"))
    assert code == 2 and "inside the data folder" in err and not (syn / "dl.json").exists()
    for out, expected in [(tmp_path, "is a folder"), (truth / "x.json", "is a file, not a folder")]:
        code, err = _cli(capsys, "score", "cls", str(truth), str(truth), "--out", str(out))
        assert code == 2 and expected in err
        code, err = _cli(capsys, "prepare", "isic2017", "--root", str(syn), "--out", str(out))
        assert code == 2 and expected in err


def test_unreadable_csvs_are_named(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    truth.write_text("image_id,melanoma,seborrheic_keratosis\nISIC_0000001,1,0\n")
    binary = tmp_path / "pred.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01binary\x00")
    code, err = _cli(capsys, "score", "cls", str(truth), str(binary))
    assert code == 2 and "is not UTF-8 text" in err and "pred.csv" in err
    folder = tmp_path / "pred_dir.csv"
    folder.mkdir()
    code, err = _cli(capsys, "score", "cls", str(truth), str(folder))
    assert code == 2 and "is a folder" in err and "does not exist" not in err


def test_unreadable_checkpoints_are_named(tmp_path):
    net = torch.nn.Linear(2, 2)
    good = tmp_path / "good.pt"
    torch.save({"model": net.state_dict()}, good)
    cases = {"empty.pt": b"", "text.pt": b"hello\n", "truncated.pt": good.read_bytes()[:200]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"'{tmp_path / name}' \(\d+ bytes\) is not a readable"):
            load_checkpoint(net, tmp_path / name)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not network weights"):
        load_checkpoint(net, tmp_path / "list.pt")


def test_looping_links_are_listed_not_crashing(tmp_path, capsys):
    syn = make_synthetic_isic(tmp_path / "syn", n_train=3, n_val=1, n_unlabeled=1, size=32)
    mask = syn / "ISIC-2017_Training_Part1_GroundTruth" / "SYN_0000000_segmentation.png"
    mask.unlink()
    os.symlink(mask, mask)  # a link to itself
    image = syn / "ISIC-2017_Training_Data" / "SYN_0000001.jpg"
    image.unlink()
    os.symlink(tmp_path / "nowhere.jpg", image)
    code, err = _cli(capsys, "prepare", "isic2017", "--root", str(syn), "--out", str(tmp_path / "dl.json"))
    assert code == 2 and "Traceback" not in err
    assert f"{mask}: segmentation mask is a broken or looping symbolic link" in err
    assert "SYN_0000001.jpg: image is a broken or looping symbolic link" in err


def test_ph2_invalid_diagnosis_reported_once(tmp_path):
    from monai_mtt.data import read_ph2
    from monai_mtt.data.validation import DataValidationError

    images = tmp_path / "PH2 Dataset images"
    for case in ("IMD001", "IMD002"):
        (images / case / f"{case}_Dermoscopic_Image").mkdir(parents=True)
        (images / case / f"{case}_lesion").mkdir(parents=True)
        Image.new("RGB", (8, 6)).save(images / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
        Image.new("1", (8, 6)).save(images / case / f"{case}_lesion" / f"{case}_lesion.bmp")
    (tmp_path / "labels.csv").write_text("image_name,clinical_diagnosis\nIMD001,0\nIMD002,7\n")
    with pytest.raises(DataValidationError) as err:
        read_ph2(tmp_path, labels=tmp_path / "labels.csv")
    text = str(err.value)
    assert "IMD002: clinical diagnosis '7' is not 0, 1 or 2" in text and "IMD002 has no row" not in text
