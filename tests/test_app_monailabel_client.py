"""End to end through MONAI Label's own Python client (``monailabel.client.MONAILabelClient``).

The server is the one ``tests/test_app_monailabel.py`` starts (its ``label_server`` fixture: MONAI Label
0.8.5 in ``.venvs/label`` on 127.0.0.1, a bundle copy with a fixed-seed checkpoint, two ISIC 2017 images,
the process group killed at the end). A driver script runs in the same environment as a user's client
would: ``info``, ``upload_image``, ``infer`` (the mask comes back as a file), ``save_label`` for two
images, ``datastore``, ``train_start`` / ``train_status`` until the task ends; it reports what it got as
JSON, and the assertions here check it against the image sizes, the network run directly, and the files
the server wrote. Skipped without that environment or the images.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from label_app import IDS, IMAGES, LABEL_MARKS, LABEL_PYTHON, MASKS, MODEL, expected_mask, label_server  # noqa: F401

pytestmark = LABEL_MARKS
UPLOADED = "ISIC_0012099"  # 3008 x 2000: uploaded through the client, not in the studies folder at start
DRIVER_TIMEOUT = 600

DRIVER = r'''
import json, sys, time
from pathlib import Path
from monailabel.client import MONAILabelClient

url, tmp, model, spec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = MONAILabelClient(url, tmpdir=tmp)
out = {"info": client.info()}
out["upload"] = client.upload_image(spec["upload_file"], image_id=spec["upload_id"])
out["infer"] = {}
for image_id in spec["infer_ids"]:
    result_file, params = client.infer(model, image_id, {"scales": "224", "views": "identity"})
    kept = Path(tmp) / f"{image_id}_result{Path(result_file).suffix}"
    Path(result_file).rename(kept)  # the client names the file after the server's temporary file
    out["infer"][image_id] = {"file": str(kept), "params": params}
out["save_label"] = {i: client.save_label(i, f, tag="final") for i, f in spec["labels"].items()}
out["datastore"] = client.datastore()
out["train_start"] = client.train_start(model, spec["train"])
deadline = time.time() + spec["train_timeout"]
while True:
    time.sleep(2)
    status = client.train_status()
    if status.get("status") not in ("SUBMITTED", "QUEUED", "RUNNING") or time.time() > deadline:
        break
out["train_status"] = status
out["train_running_after"] = client.train_status(check_if_running=True)
print("RESULT " + json.dumps(out, default=str))
'''


@pytest.fixture(scope="module")
def client_run(label_server):  # noqa: F811 (the imported fixture)
    root = label_server["root"] / "client"
    root.mkdir()
    studies = label_server["studies"]
    assert not (studies / f"{UPLOADED}.jpg").exists()
    ckpt = label_server["bundle"] / "models" / "model.pt"
    before = ckpt.stat().st_mtime_ns
    snapshot = root / "weights_before_training"  # the driver trains after inferring: keep what inference used
    (snapshot / "models").mkdir(parents=True)
    shutil.copy2(ckpt, snapshot / "models" / "model.pt")
    spec = {
        "upload_file": str(IMAGES / f"{UPLOADED}.jpg"),
        "upload_id": UPLOADED,
        "infer_ids": [IDS[0], UPLOADED],
        "labels": {i: str(MASKS / f"{i}_segmentation.png") for i in IDS},
        "train": {
            "device": "cpu", "max_epochs": 1, "epoch_length": 2, "image_size": 64, "batch_size": 1,
            "num_workers": 0, "val_split": 0.5, "pretrained": True, "multi_gpu": False,
        },  # fmt: skip
        "train_timeout": 300,
    }
    (root / "driver.py").write_text(DRIVER)
    cmd = [str(LABEL_PYTHON), str(root / "driver.py"), label_server["url"], str(root), MODEL, json.dumps(spec)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=DRIVER_TIMEOUT, cwd=root)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res.returncode == 0 and lines, (
        f"client driver failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    )
    result = json.loads(lines[-1][len("RESULT ") :])
    return {**result, "ckpt": ckpt, "ckpt_before": before, "studies": studies, "inference_weights": snapshot}


def test_client_info(client_run):
    info = client_run["info"]
    assert info["models"][MODEL]["labels"] == {"lesion": 1} and info["models"][MODEL]["dimension"] == 2
    assert MODEL in info["trainers"]


def test_client_upload_image(client_run):
    assert client_run["upload"]["image"] == UPLOADED
    stored = client_run["studies"] / f"{UPLOADED}.jpg"
    assert stored.read_bytes() == (IMAGES / f"{UPLOADED}.jpg").read_bytes()


@pytest.mark.parametrize("image_id", [IDS[0], UPLOADED])
def test_client_infer_result_file(client_run, image_id):
    got = client_run["infer"][image_id]
    result = Path(got["file"])
    assert result.is_file() and result.suffix == ".png"
    with Image.open(result) as m, Image.open(IMAGES / f"{image_id}.jpg") as src:
        assert m.size == src.size  # (W, H) of the image: the mask overlays it
        mask = np.asarray(m)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    expected = expected_mask(client_run["inference_weights"], IMAGES / f"{image_id}.jpg")
    assert (expected == mask).mean() > 0.999
    params = got["params"]
    probs = params["class_probabilities"]
    assert list(probs) == ["nevus", "melanoma", "seborrheic_keratosis"] and abs(sum(probs.values()) - 1) < 1e-4
    assert params["predicted_class"] == max(probs, key=probs.get)
    assert params["image_size"] == [mask.shape[0], mask.shape[1]]


def test_client_save_label_and_datastore(client_run):
    for image_id in IDS:
        assert client_run["save_label"][image_id]["image"] == image_id
        saved = sorted((client_run["studies"] / "labels" / "final").glob(f"{image_id}.*"))
        assert saved, f"no final label for {image_id}"
        with Image.open(saved[0]) as s, Image.open(MASKS / f"{image_id}_segmentation.png") as gt:
            assert np.array_equal(np.asarray(s) > 0, np.asarray(gt) > 0)
    objects = client_run["datastore"]["objects"]
    assert set(objects) == {*IDS, UPLOADED}
    assert all("final" in objects[i]["labels"] for i in IDS) and "final" not in objects[UPLOADED]["labels"]


def test_client_train(client_run):
    status = client_run["train_status"]
    assert status["status"] == "DONE", "\n".join(status.get("details") or []) or status
    assert client_run["train_running_after"] is False
    assert client_run["ckpt"].stat().st_mtime_ns > client_run["ckpt_before"], "no new models/model.pt"
    state = torch.load(client_run["ckpt"], map_location="cpu")
    assert "model" in state and len(state["model"]) > 100
