"""Helpers for the MONAI Label tests: paths, skip marks, a served app (``label_server``) and REST utilities.

Shared by ``test_app_monailabel.py``, ``test_app_monailabel_client.py`` and ``test_hostile_label.py`` (no test
module imports another).
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, SHARED_DATA, bundle_with_random_model

LABEL_PYTHON = Path(os.environ.get("MONAI_MTT_LABEL_PYTHON", REPO / ".venvs" / "label" / "bin" / "python"))
ISIC = SHARED_DATA / "isic2017"
IMAGES = ISIC / "ISIC-2017_Validation_Data"
MASKS = ISIC / "ISIC-2017_Validation_Part1_GroundTruth"
IDS = ["ISIC_0009995", "ISIC_0010459"]  # 1024 x 768 (W x H): non-square
MODEL = "mt_transunet"

LABEL_MARKS = [
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
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


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in msg.iter_parts()
    }


def stop(proc: subprocess.Popen) -> None:
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

    port = free_port()
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
                if request(url + "/info/", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"MONAI Label did not answer:\n{(root / 'server.log').read_text()[-5000:]}")
            time.sleep(1)
        yield {"url": url, "bundle": bundle, "studies": studies, "root": root}
    finally:
        stop(proc)
        log.close()
        print((root / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)


def expected_mask(bundle: Path, image: Path) -> np.ndarray:
    from monai_mtt.inferers import MultiScaleTTAInferer
    from monai_mtt.networks import MTTransUNet
    from monai_mtt.transforms import LoadDermoscopyd

    net = MTTransUNet()
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu")["model"])
    net.eval()
    x = LoadDermoscopyd(label_key=None)({"image": str(image)})["image"][None]
    seg = MultiScaleTTAInferer(scales=[224], views=["identity"])(x, net)["seg"]
    return (seg[0, 1] > 0.5).numpy().astype(np.uint8)
