"""End to end: the MONAI Label app serves the bundle (infer with mask + classes) and fine-tunes it.

MONAI Label 0.8.5 lives in its own virtual environment (``.ci/setup_label_env.sh`` builds
``.venvs/label``; ``MONAI_MTT_LABEL_PYTHON`` may name another interpreter). The server runs there in a
subprocess on 127.0.0.1 and is driven over REST with the standard library. Without that environment
the test is skipped.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import urllib.parse

import numpy as np
import torch
from conftest import REPO, bundle_with_random_model, quantize_checkpoint
from label_app import (
    IDS,
    IMAGES,
    LABEL_MARKS,
    LABEL_PYTHON,
    MASKS,
    MODEL,
    expected_mask,
    label_server,  # noqa: F401 (the fixture)
    multipart,
    parse_multipart,
    request,
)
from PIL import Image

pytestmark = LABEL_MARKS


def test_info_lists_model(label_server):  # noqa: F811 (the imported fixture)
    info = json.loads(request(label_server["url"] + "/info/")[2])
    assert MODEL in info["models"] and MODEL in info["trainers"]
    assert info["models"][MODEL]["labels"] == {"lesion": 1}
    assert info["models"][MODEL]["dimension"] == 2


def test_infer_returns_mask_and_classes(label_server):  # noqa: F811 (the imported fixture)
    image_id = IDS[0]
    q = urllib.parse.urlencode({"image": image_id, "output": "all"})
    body, ctype = multipart({"params": json.dumps({"scales": "224", "views": "identity"})}, {})
    infer_url = f"{label_server['url']}/infer/{MODEL}?{q}"
    status, rtype, data = request(infer_url, "POST", body, {"Content-Type": ctype}, 120)
    assert status == 200 and rtype.startswith("multipart/")
    parts = parse_multipart(rtype, data)
    params = json.loads(parts["params"])
    mask_img = Image.open(io.BytesIO(parts["image"]))
    with Image.open(IMAGES / f"{image_id}.jpg") as src:
        assert mask_img.size == src.size  # (W, H): not transposed on a non-square image
    mask = np.asarray(mask_img)
    assert mask.ndim == 2 and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    # the served mask overlays the image: the same network run directly gives the same pixels
    expected = expected_mask(label_server["bundle"], IMAGES / f"{image_id}.jpg")
    assert expected.shape == mask.shape
    assert (expected == mask).mean() > 0.999

    probs = params["class_probabilities"]
    assert list(probs) == ["nevus", "melanoma", "seborrheic_keratosis"]
    assert abs(sum(probs.values()) - 1.0) < 1e-4 and all(0.0 <= p <= 1.0 for p in probs.values())
    assert params["predicted_class"] in probs
    assert params["image_size"] == [mask.shape[0], mask.shape[1]]
    attn = params["attention"]
    assert abs(sum(sum(r) for r in attn["grid"]) - 1.0) < 1e-3
    assert 0 <= attn["peak"][0] < mask.shape[0] and 0 <= attn["peak"][1] < mask.shape[1]
    assert 0.0 <= attn["in_lesion"] <= 1.0 + 1e-6


def test_save_label_and_train(label_server):  # noqa: F811 (the imported fixture)
    url, bundle = label_server["url"], label_server["bundle"]
    for image_id in IDS:
        q = urllib.parse.urlencode({"image": image_id, "tag": "final"})
        data = (MASKS / f"{image_id}_segmentation.png").read_bytes()
        body, ctype = multipart({"params": "{}"}, {"label": (f"{image_id}.png", data, "image/png")})
        status, _, resp = request(f"{url}/datastore/label?{q}", "PUT", body, {"Content-Type": ctype})
        assert status == 200, resp
    datastore = json.loads(request(url + "/datastore/?output=stats")[2])
    assert datastore["completed"] == len(IDS)

    ckpt = bundle / "models" / "model.pt"
    before = ckpt.stat().st_mtime_ns
    params = {
        "device": "cpu", "max_epochs": 1, "epoch_length": 2, "image_size": 64, "batch_size": 1,
        "num_workers": 0, "val_split": 0.5, "pretrained": True, "multi_gpu": False,
    }  # fmt: skip
    body = json.dumps(params).encode()
    # as a client does: start the task (MONAI Label runs it in a subprocess), then poll its status
    status, _, resp = request(f"{url}/train/{MODEL}", "POST", body, {"Content-Type": "application/json"})
    assert status == 200, resp
    deadline = time.time() + 240
    while True:
        time.sleep(2)
        task = json.loads(request(url + "/train/")[2])
        if task["status"] not in ("SUBMITTED", "QUEUED", "RUNNING"):
            break
        assert time.time() < deadline, f"training did not finish: {task}"
    assert task["status"] == "DONE", "\n".join(task.get("details") or []) or task
    assert ckpt.stat().st_mtime_ns > before, "training did not write a new models/model.pt"
    state = torch.load(ckpt, map_location="cpu")
    assert "model" in state and len(state["model"]) > 100
    runs = list((bundle / "runs" / "monailabel").glob("*/latest.pt"))
    assert runs, "no training state written under runs/monailabel"


# the infer task run in the MONAI Label environment on an int8 model, without the HTTP server
_INT8_INFER = """
import json, sys
import numpy as np
from monai_mtt.apps.monailabel.infer_task import MTTInferTask
bundle, image, out = sys.argv[1:4]
task = MTTInferTask(bundle, scales=[224], views=["identity"], model_filename="model.int8.onnx")
assert task.is_valid() and task.get_path().endswith("model.int8.onnx")
mask, result = task({"image": image, "device": "cpu", "result_write_to_file": False})
np.save(out, np.asarray(mask))
print(json.dumps({"network": type(task._get_network("cpu", None)).__name__, "result": result}))
"""


def test_infer_task_serves_an_int8_model(tmp_path):
    """``--conf model_file model.int8.onnx`` (``monai-mtt quantize``'s output in the bundle's models/): the infer
    task runs it with onnxruntime, and its mask is the one the same int8 file gives run directly here."""
    from monai_mtt.inferers import MultiScaleTTAInferer
    from monai_mtt.networks import load_inference_network
    from monai_mtt.networks.onnx import OnnxRuntimeNetwork
    from monai_mtt.transforms import LoadDermoscopyd

    bundle = bundle_with_random_model(tmp_path)
    int8 = quantize_checkpoint(bundle / "models" / "model.pt", bundle / "models" / "model.int8.onnx")
    image = IMAGES / f"{IDS[0]}.jpg"
    out = tmp_path / "mask.npy"
    proc = subprocess.run([str(LABEL_PYTHON), "-c", _INT8_INFER, str(bundle), str(image), str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"})  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["network"] == "OnnxRuntimeNetwork"
    mask = np.load(out)

    net = load_inference_network(None, int8)
    assert isinstance(net, OnnxRuntimeNetwork)
    x = LoadDermoscopyd(label_key=None)({"image": str(image)})["image"][None]
    pred = MultiScaleTTAInferer(scales=[224], views=["identity"])(x, net)
    expected = (pred["seg"][0, 1] > 0.5).numpy().astype(np.uint8)
    assert mask.shape == expected.shape and (mask == expected).mean() > 0.999
    probs = served["result"]["probabilities"]
    assert np.allclose(probs, pred["cls"][0].numpy(), atol=1e-4)
