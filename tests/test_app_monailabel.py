"""End to end: the MONAI Label app serves the bundle (infer with mask + classes) and fine-tunes it.

MONAI Label 0.8.5 lives in its own virtual environment (``.ci/setup_label_env.sh`` builds
``.venvs/label``; ``MONAI_MTT_LABEL_PYTHON`` may name another interpreter). The server runs there in a
subprocess on 127.0.0.1 and is driven over REST with the standard library. Without that environment
the test is skipped.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import bundle_with_random_model

REPO = Path(__file__).resolve().parents[1]
LABEL_PYTHON = Path(os.environ.get("MONAI_MTT_LABEL_PYTHON", REPO / ".venvs" / "label" / "bin" / "python"))
ISIC = Path("/work/shared/data/isic2017")
IMAGES = ISIC / "ISIC-2017_Validation_Data"
MASKS = ISIC / "ISIC-2017_Validation_Part1_GroundTruth"
IDS = ["ISIC_0009995", "ISIC_0010459"]  # 1024 x 768 (W x H): non-square
MODEL = "mt_transunet"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not LABEL_PYTHON.is_file(),
        reason=f"MONAI Label environment not found at {LABEL_PYTHON}: run .ci/setup_label_env.sh",
    ),
    pytest.mark.skipif(
        not all((IMAGES / f"{i}.jpg").is_file() for i in IDS),
        reason=f"ISIC 2017 validation images not found in {IMAGES}",
    ),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, ctype) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in msg.iter_parts()
    }


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)  # the server and its train subprocesses share this session
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def label_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("monailabel")
    # a bundle copy with a fixed-seed random checkpoint (never the repository's bundle/models)
    bundle = bundle_with_random_model(root)
    studies = root / "studies"
    studies.mkdir()
    for i in IDS:
        shutil.copy(IMAGES / f"{i}.jpg", studies / f"{i}.jpg")
    # MONAI Label creates model/, lib/, logs/ and bin/ inside the app folder: give it a copy of main.py
    app = root / "app"
    app.mkdir()
    shutil.copy(REPO / "monai_mtt" / "apps" / "monailabel" / "main.py", app / "main.py")

    port = _free_port()
    log = open(root / "server.log", "wb")
    env = dict(os.environ, MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO)  # this checkout's monai_mtt, not the one the environment installed
    cmd = [
        str(LABEL_PYTHON), "-m", "monailabel.main", "start_server",
        "--app", str(app), "--studies", str(studies),
        "--conf", "bundle", str(bundle), "--conf", "scales", "224", "--conf", "views", "identity",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                tail = (root / "server.log").read_text()[-5000:]
                raise RuntimeError(f"MONAI Label exited with {proc.returncode}:\n{tail}")
            try:
                if _request(url + "/info/", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"MONAI Label did not answer:\n{(root / 'server.log').read_text()[-5000:]}")
            time.sleep(1)
        yield {"url": url, "bundle": bundle, "studies": studies, "root": root}
    finally:
        _stop(proc)
        log.close()
        print((root / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)


def test_info_lists_model(label_server):
    info = json.loads(_request(label_server["url"] + "/info/")[2])
    assert MODEL in info["models"] and MODEL in info["trainers"]
    assert info["models"][MODEL]["labels"] == {"lesion": 1}
    assert info["models"][MODEL]["dimension"] == 2


def _expected_mask(bundle: Path, image: Path) -> np.ndarray:
    from monai_mtt.inferers import MultiScaleTTAInferer
    from monai_mtt.networks import MTTransUNet
    from monai_mtt.transforms import LoadDermoscopyd

    net = MTTransUNet()
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu")["model"])
    net.eval()
    x = LoadDermoscopyd(label_key=None)({"image": str(image)})["image"][None]
    seg = MultiScaleTTAInferer(scales=[224], views=["identity"])(x, net)["seg"]
    return (seg[0, 1] > 0.5).numpy().astype(np.uint8)


def test_infer_returns_mask_and_classes(label_server):
    image_id = IDS[0]
    q = urllib.parse.urlencode({"image": image_id, "output": "all"})
    body, ctype = _multipart({"params": json.dumps({"scales": "224", "views": "identity"})}, {})
    infer_url = f"{label_server['url']}/infer/{MODEL}?{q}"
    status, rtype, data = _request(infer_url, "POST", body, {"Content-Type": ctype}, 120)
    assert status == 200 and rtype.startswith("multipart/")
    parts = _parse_multipart(rtype, data)
    params = json.loads(parts["params"])
    mask_img = Image.open(io.BytesIO(parts["image"]))
    with Image.open(IMAGES / f"{image_id}.jpg") as src:
        assert mask_img.size == src.size  # (W, H): not transposed on a non-square image
    mask = np.asarray(mask_img)
    assert mask.ndim == 2 and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    # the served mask overlays the image: the same network run directly gives the same pixels
    expected = _expected_mask(label_server["bundle"], IMAGES / f"{image_id}.jpg")
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


def test_save_label_and_train(label_server):
    url, bundle = label_server["url"], label_server["bundle"]
    for image_id in IDS:
        q = urllib.parse.urlencode({"image": image_id, "tag": "final"})
        data = (MASKS / f"{image_id}_segmentation.png").read_bytes()
        body, ctype = _multipart({"params": "{}"}, {"label": (f"{image_id}.png", data, "image/png")})
        status, _, resp = _request(f"{url}/datastore/label?{q}", "PUT", body, {"Content-Type": ctype})
        assert status == 200, resp
    datastore = json.loads(_request(url + "/datastore/?output=stats")[2])
    assert datastore["completed"] == len(IDS)

    ckpt = bundle / "models" / "model.pt"
    before = ckpt.stat().st_mtime_ns
    params = {
        "device": "cpu", "max_epochs": 1, "epoch_length": 2, "image_size": 64, "batch_size": 1,
        "num_workers": 0, "val_split": 0.5, "pretrained": True, "multi_gpu": False,
    }  # fmt: skip
    body = json.dumps(params).encode()
    # as a client does: start the task (MONAI Label runs it in a subprocess), then poll its status
    status, _, resp = _request(f"{url}/train/{MODEL}", "POST", body, {"Content-Type": "application/json"})
    assert status == 200, resp
    deadline = time.time() + 240
    while True:
        time.sleep(2)
        task = json.loads(_request(url + "/train/")[2])
        if task["status"] not in ("SUBMITTED", "QUEUED", "RUNNING"):
            break
        assert time.time() < deadline, f"training did not finish: {task}"
    assert task["status"] == "DONE", "\n".join(task.get("details") or []) or task
    assert ckpt.stat().st_mtime_ns > before, "training did not write a new models/model.pt"
    state = torch.load(ckpt, map_location="cpu")
    assert "model" in state and len(state["model"]) > 100
    runs = list((bundle / "runs" / "monailabel").glob("*/latest.pt"))
    assert runs, "no training state written under runs/monailabel"
