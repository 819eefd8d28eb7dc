"""End-to-end test of the MONAI Deploy application (monai_mtt.apps.deploy) on real images.

The app runs in the optional deploy environment (``.ci/setup_deploy_env.sh`` builds ``.venvs/deploy``)
as a subprocess; the reference is the bundle's own inference config run with this interpreter:

    python -m monai.bundle run inferring --meta_file bundle/configs/metadata.json \
        --config_file bundle/configs/inference.yaml --input_dir IN --output_dir OUT --checkpoint CKPT

Both get the same small TTA (scale 224, identity view), so the test stays around a minute on 2 cores, and the
same inference backend (fused).
Skipped when the deploy environment or the shared data folder is absent.
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
from conftest import REPO, SHARED_DATA, quantize_checkpoint
from PIL import Image

from monai_mtt import CLASS_NAMES

DEPLOY_VENV = Path(os.environ.get("MONAI_MTT_DEPLOY_VENV", REPO / ".venvs" / "deploy"))
DEPLOY_PYTHON = DEPLOY_VENV / "bin" / "python"
BUNDLE = REPO / "bundle"
SCALES, VIEWS = "224", "identity"  # the same small TTA for the app and the bundle
# the same inference backend too, whatever "auto" picks in either environment (float differences between
# backends may flip a mask pixel at the 0.5 threshold)
BACKEND = "fused"
TIMEOUT = 600
EXIT_OK, EXIT_BAD_FILES = 0, 1

# a few real images (non-square, two sizes, JPEG and BMP), relative to the shared data folder
REAL_IMAGES = (
    "isic2017/ISIC-2017_Validation_Data/ISIC_0009995.jpg",
    "isic2017/ISIC-2017_Validation_Data/ISIC_0010459.jpg",
    "ph2/PH2 Dataset images/IMD058/IMD058_Dermoscopic_Image/IMD058.bmp",
)
CORRUPT = "corrupt.jpg"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DEPLOY_PYTHON.is_file(),
        reason=f"deploy environment {DEPLOY_VENV} is absent: build it with `bash .ci/setup_deploy_env.sh`",
    ),
]


def _env(threads: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = str(REPO)  # this checkout's monai_mtt, whichever checkout the venv's editable install names
    return env


def _start_app(inputs: Path, out: Path, model: Path, *extra: str) -> subprocess.Popen:
    cmd = [str(DEPLOY_PYTHON), "-m", "monai_mtt.apps.deploy", "-i", str(inputs), "-o", str(out), "-m", str(model)]
    cmd += ["--bundle", str(BUNDLE), "--scales", SCALES, "--views", VIEWS, *extra]
    env = {**_env(), "MONAI_MTT_BACKEND": BACKEND}  # how the apps' bundle loader is told the backend
    return subprocess.Popen(cmd, cwd=out.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _start_bundle(inputs: Path, out: Path, checkpoint: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inferring"]
    cmd += ["--meta_file", str(BUNDLE / "configs" / "metadata.json")]
    cmd += ["--config_file", str(BUNDLE / "configs" / "inference.yaml")]
    cmd += ["--input_dir", str(inputs), "--output_dir", str(out), "--checkpoint", str(checkpoint)]
    cmd += ["--scales", f"[{SCALES}]", "--views", f"['{VIEWS}']", "--overlays", "false"]
    cmd += ["--inference_backend", BACKEND]
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        log, _ = proc.communicate()
        pytest.fail(f"timed out after {TIMEOUT} s:\n{log[-4000:]}")
    return proc.returncode, log


def _export_torchscript(checkpoint: Path, filepath: Path) -> None:
    """``ckpt_export`` as documented in docs/deploy.md (configs embedded in the TorchScript file)."""
    cmd = [sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(filepath)]
    cmd += ["--ckpt_file", str(checkpoint), "--key_in_ckpt", "model", "--bundle_root", str(BUNDLE)]
    cmd += ["--meta_file", str(BUNDLE / "configs" / "metadata.json")]
    cmd += ["--config_file", str(BUNDLE / "configs" / "inference.yaml")]
    rc, log = _finish(subprocess.Popen(cmd, cwd=REPO, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    assert rc == 0 and filepath.is_file(), log[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run, in parallel (one thread each): the app and the bundle on the folder with the corrupt file, given
    the checkpoint; and the app on the good images only, given the TorchScript export."""
    missing = [p for p in REAL_IMAGES if not (SHARED_DATA / p).is_file()]
    if missing:
        pytest.skip(f"real images absent from {SHARED_DATA}: {missing}")
    root = tmp_path_factory.mktemp("deploy")
    inputs, good_inputs = root / "images", root / "good_images"
    inputs.mkdir()
    good_inputs.mkdir()
    for rel in REAL_IMAGES:
        for folder in (inputs, good_inputs):  # copy only: the data folder stays read-only
            shutil.copyfile(SHARED_DATA / rel, folder / Path(rel).name)
    good = inputs / Path(REAL_IMAGES[0]).name
    (inputs / CORRUPT).write_bytes(good.read_bytes()[:6000])  # a truncated JPEG

    from monai_mtt.networks import MTTransUNet

    torch.manual_seed(0)
    checkpoint = root / "model.pt"
    torch.save({"model": MTTransUNet().state_dict()}, checkpoint)
    torchscript = root / "model.ts"
    _export_torchscript(checkpoint, torchscript)
    int8 = quantize_checkpoint(checkpoint, root / "model.int8.onnx")

    app_out, bundle_out, ts_out = root / "app_out", root / "bundle_out", root / "ts_out"
    int8_out, bundle_int8_out = root / "int8_out", root / "bundle_int8_out"
    procs = {
        "app": _start_app(inputs, app_out, checkpoint),
        "bundle": _start_bundle(inputs, bundle_out, checkpoint),
        "ts": _start_app(good_inputs, ts_out, torchscript, "--bundle", str(root)),  # --bundle: must not be used
        "int8": _start_app(good_inputs, int8_out, int8),  # -m model.int8.onnx --bundle BUNDLE
        "bundle_int8": _start_bundle(good_inputs, bundle_int8_out, int8),
    }
    result = {"inputs": inputs, "app_out": app_out, "bundle_out": bundle_out, "ts_out": ts_out,
              "int8_out": int8_out, "bundle_int8_out": bundle_int8_out}  # fmt: skip
    for name, proc in procs.items():
        result[f"{name}_rc"], result[f"{name}_log"] = _finish(proc)
    return result


def _ids() -> list[str]:
    return [Path(p).stem for p in REAL_IMAGES]


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return {Path(r["file"]).name: r for r in csv.DictReader(f)}


def test_exit_code_and_corrupt_file_reported(runs):
    assert runs["app_rc"] == EXIT_BAD_FILES, runs["app_log"][-4000:]
    assert CORRUPT in runs["app_log"]
    rows = _summary(runs["app_out"])
    assert set(rows) == {Path(p).name for p in REAL_IMAGES} | {CORRUPT}
    assert rows[CORRUPT]["status"] == "error" and "truncated" in rows[CORRUPT]["problem"]
    assert all(rows[Path(p).name]["status"] == "ok" for p in REAL_IMAGES)
    stem = Path(CORRUPT).stem
    assert not (runs["app_out"] / f"{stem}_segmentation.png").exists()
    assert not (runs["app_out"] / f"{stem}.json").exists()


def test_torchscript_export_without_bad_files(runs):
    """``-m model.ts`` (configs embedded) on a folder of good images: exit 0, the same results."""
    assert runs["ts_rc"] == EXIT_OK, runs["ts_log"][-4000:]
    rows = _summary(runs["ts_out"])
    assert set(rows) == {Path(p).name for p in REAL_IMAGES}
    assert all(r["status"] == "ok" for r in rows.values())
    for image_id in _ids():
        ts_mask = np.asarray(Image.open(runs["ts_out"] / f"{image_id}_segmentation.png"))
        mask = np.asarray(Image.open(runs["app_out"] / f"{image_id}_segmentation.png"))
        # the eager network is fused (conv+norm folded), the TorchScript is not: allow borderline pixels
        assert ts_mask.shape == mask.shape and (ts_mask != mask).mean() < 1e-3, image_id
        ts_probs = json.loads((runs["ts_out"] / f"{image_id}.json").read_text())["probabilities"]
        probs = json.loads((runs["app_out"] / f"{image_id}.json").read_text())["probabilities"]
        for name in CLASS_NAMES:
            assert abs(ts_probs[name] - probs[name]) < 1e-4, (image_id, name)


def test_int8_model_runs_like_the_bundle_runs_it(runs):
    """``-m model.int8.onnx --bundle BUNDLE`` (monai-mtt quantize's output): the app loads it and its masks and
    class probabilities are those of the bundle's own inference config given the same file."""
    assert runs["int8_rc"] == EXIT_OK, runs["int8_log"][-4000:]
    assert runs["bundle_int8_rc"] == 0, runs["bundle_int8_log"][-4000:]
    with open(runs["bundle_int8_out"] / "predictions.csv", newline="") as f:
        bundle_probs = {r["image_id"]: r for r in csv.DictReader(f)}
    rows = _summary(runs["int8_out"])
    assert set(rows) == {Path(p).name for p in REAL_IMAGES} and all(r["status"] == "ok" for r in rows.values())
    for image_id in _ids():
        mask = np.asarray(Image.open(runs["int8_out"] / f"{image_id}_segmentation.png"))
        ref = np.asarray(Image.open(runs["bundle_int8_out"] / f"{image_id}_segmentation.png"))
        np.testing.assert_array_equal(mask, ref, err_msg=image_id)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        probs = json.loads((runs["int8_out"] / f"{image_id}.json").read_text())["probabilities"]
        for name in CLASS_NAMES:
            assert abs(probs[name] - float(bundle_probs[image_id][name])) < 1e-5, (image_id, name)


def test_masks_binary_at_image_size(runs):
    for rel in REAL_IMAGES:
        image_id = Path(rel).stem
        with Image.open(runs["inputs"] / Path(rel).name) as img:
            size = img.size
        with Image.open(runs["app_out"] / f"{image_id}_segmentation.png") as m:
            assert m.size == size, image_id  # (W, H) of the image: the mask overlays it
            assert m.mode == "L"
            mask = np.asarray(m)
        assert set(np.unique(mask).tolist()) <= {0, 255}, image_id
    assert len({Image.open(runs["inputs"] / Path(p).name).size for p in REAL_IMAGES}) > 1  # two sizes tested


def test_json_results(runs):
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    rows = _summary(runs["app_out"])
    for rel in REAL_IMAGES:
        image_id = Path(rel).stem
        res = json.loads((runs["app_out"] / f"{image_id}.json").read_text())
        probs = res["probabilities"]
        assert list(probs) == list(CLASS_NAMES)
        assert abs(sum(probs.values()) - 1.0) < 1e-5
        assert all(0.0 <= p <= 1.0 for p in probs.values())
        assert res["predicted_class"] == max(probs, key=probs.get)
        assert res["model_version"] == meta["version"]
        with Image.open(runs["inputs"] / Path(rel).name) as img:
            assert (res["width"], res["height"]) == img.size
        row = rows[Path(rel).name]
        assert row["predicted_class"] == res["predicted_class"] and row["model_version"] == meta["version"]
        assert abs(float(row["melanoma"]) - probs["melanoma"]) < 1e-6


def test_equals_bundle_inference(runs):
    assert (runs["bundle_out"] / "predictions.csv").is_file(), runs["bundle_log"][-4000:]
    with open(runs["bundle_out"] / "predictions.csv", newline="") as f:
        bundle_probs = {r["image_id"]: r for r in csv.DictReader(f)}
    assert set(bundle_probs) == set(_ids())
    for image_id in _ids():
        app_mask = np.asarray(Image.open(runs["app_out"] / f"{image_id}_segmentation.png"))
        ref_mask = np.asarray(Image.open(runs["bundle_out"] / f"{image_id}_segmentation.png"))
        assert app_mask.shape == ref_mask.shape
        np.testing.assert_array_equal(app_mask, ref_mask, err_msg=image_id)
        probs = json.loads((runs["app_out"] / f"{image_id}.json").read_text())["probabilities"]
        for name in CLASS_NAMES:
            assert abs(probs[name] - float(bundle_probs[image_id][name])) < 1e-4, (image_id, name)


def test_status_file_and_output_check(runs):
    """status.json carries the exit code and the bad files (a MAP's entry script exits 0 whatever the app
    returns); the checker scripts/package_map.sh uses accepts these real outputs and their comparison."""
    from monai_mtt.apps.deploy.check_outputs import check_output_folder, compare_output_folders

    status = json.loads((runs["app_out"] / "status.json").read_text())
    assert status["exit_code"] == runs["app_rc"] == EXIT_BAD_FILES and status["status"] == "bad_files"
    assert [Path(b["file"]).name for b in status["bad_files"]] == [CORRUPT]
    assert "truncated" in status["bad_files"][0]["problem"] and status["processed"] == len(REAL_IMAGES)
    ts_status = json.loads((runs["ts_out"] / "status.json").read_text())
    assert ts_status["exit_code"] == runs["ts_rc"] == EXIT_OK and ts_status["bad_files"] == []

    facts, problems = check_output_folder(runs["inputs"], runs["app_out"])
    assert problems == [] and facts["bad_files"] == [CORRUPT] and facts["exit_code"] == EXIT_BAD_FILES
    assert sorted(facts["processed"]) == sorted(_ids())
    # the checkpoint run against itself: equal; against the TorchScript run (other inputs, unfused network): not
    assert compare_output_folders(runs["app_out"], runs["app_out"])[1] == []
    assert compare_output_folders(runs["app_out"], runs["ts_out"])[1] != []
