"""Hostile requests to the MONAI Label app (issue 12): each is refused with a 4xx naming the parameter.

One server for the module, started as the docs show (``python -m monai_mtt.apps.monailabel
start_server`` with no ``--host``: it must listen on 127.0.0.1 only), with a copy of the bundle and a
fixed-seed checkpoint in tmp; its process group is killed in a ``finally``. Checked: no request value
is executed (a ``$`` expression in every train option), no upload or label lands outside the studies
folder, only datastore images are read, a 48 KB 20000 x 20000 PNG is refused from its header while the
server's peak memory stays flat, numeric options are bounded, no answer carries a traceback, and a
good request is still served. Skipped without the MONAI Label environment (``.ci/setup_label_env.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import bundle_with_random_model, bomb_png
from label_app import LABEL_PYTHON, free_port, multipart, parse_multipart, stop

REPO = Path(__file__).resolve().parents[1]
MODEL = "mt_transunet"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LABEL_PYTHON.is_file(), reason=f"MONAI Label environment not found at {LABEL_PYTHON}"),
]


def _call(url: str, method: str = "GET", body: bytes | None = None, ctype: str | None = None, timeout: float = 120):
    """``(status, content type, body)``; HTTP errors are answers here, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _listen_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    found = set()
    for name in ("tcp", "tcp6"):
        table = Path(f"/proc/net/{name}")
        if not table.is_file():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:  # LISTEN
                found.add(addr)
    return found


def _start(root: Path, studies: Path, bundle: Path, port: int, extra: list[str], log_name: str):
    app = root / "app"
    app.mkdir(exist_ok=True)
    shutil.copy(REPO / "monai_mtt" / "apps" / "monailabel" / "main.py", app / "main.py")
    env = dict(os.environ, MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    cmd = [
        str(LABEL_PYTHON), "-m", "monai_mtt.apps.monailabel", "start_server", "--app", str(app),
        "--studies", str(studies), "--conf", "bundle", str(bundle), "--conf", "scales", "224",
        "--conf", "views", "identity", "--port", str(port), *extra,
    ]  # fmt: skip
    log = open(root / log_name, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root)
    return proc, log


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_label")
    bundle = bundle_with_random_model(root)
    studies = root / "data" / "studies"
    studies.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(studies / "small.png")
    bomb_png(studies / "bomb.png")
    outside = root / "data" / "outside.png"  # a readable image next to, not in, the studies folder
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(outside)

    port = free_port()
    proc, log = _start(root, studies, bundle, port, [], "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}:\n{(root / 'server.log').read_text()[-4000:]}")
            try:
                if _call(url + "/info/", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.time() < deadline, (root / "server.log").read_text()[-4000:]
            time.sleep(1)
        yield {"url": url, "root": root, "studies": studies, "bundle": bundle, "pid": proc.pid, "port": port,
               "outside": outside}  # fmt: skip
    finally:
        stop(proc)
        log.close()
        print((root / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _assert_refused(answer, status: int | tuple, param: str) -> str:
    code, _, body = answer
    assert code in ((status,) if isinstance(status, int) else status), (code, body[:500])
    detail = json.loads(body)["detail"]
    assert f"'{param}'" in detail, detail
    assert "Traceback" not in detail and 'File "' not in detail
    return detail


def test_default_bind_is_loopback(server):
    addrs = _listen_addresses(server["port"])
    if not addrs:
        pytest.skip("/proc/net/tcp not readable here")
    assert addrs <= {"0100007F", "00000000000000000000000001000000"}, addrs  # 127.0.0.1 / ::1 only


def test_train_values_never_executed(server):
    url, root = server["url"], server["root"]
    marker = root / "pwned"
    expr = f"$__import__('pathlib').Path({str(marker)!r}).touch() or 'cpu'"
    for key in ("device", "max_epochs", "epoch_length", "image_size", "batch_size", "num_workers",
                "learning_rate", "val_split", "pretrained", "gpus", "model_filename", "run_id", "tracking"):  # fmt: skip
        params = {"device": "cpu", "max_epochs": 1, key: expr}
        answer = _call(f"{url}/train/{MODEL}", "POST", json.dumps(params).encode(), "application/json")
        _assert_refused(answer, 422, key)
    for key, value, status in [
        ("max_epochs", 10**9, 422), ("learning_rate", "nan", 422), ("image_size", 100, 422),
        ("model_filename", "../../../etc/x.pt", 422), ("model_filename", "other.pt", 404),
        ("run_id", "network_def", 422), ("bundle_path", "/tmp", 422), ("@ref", 1, 422), ("datalists", {}, 422),
    ]:  # fmt: skip
        answer = _call(f"{url}/train/{MODEL}", "POST", json.dumps({key: value}).encode(), "application/json")
        _assert_refused(answer, status, key)
    time.sleep(2)
    assert not marker.exists(), "a request value was executed"
    assert _call(url + "/train/")[0] == 404  # no train task was ever started


def test_datastore_names_stay_inside(server):
    url, root, studies = server["url"], server["root"], server["studies"]
    before = _files(root)
    png = (studies / "small.png").read_bytes()
    for image in ("../../../../elsewhere/x", "/tmp/abs", "a/b", "..", "$x", "x\\..\\y"):
        body, ctype = multipart({"params": "{}"}, {"file": ("x.png", png, "image/png")})
        q = urllib.parse.urlencode({"image": image})
        _assert_refused(_call(f"{url}/datastore/image?{q}", "PUT", body, ctype), 422, "image")
    for tag in ("../../x", "/abs", "a/b"):
        body, ctype = multipart({"params": "{}"}, {"label": ("small.png", png, "image/png")})
        q = urllib.parse.urlencode({"image": "small", "tag": tag})
        _assert_refused(_call(f"{url}/datastore/label?{q}", "PUT", body, ctype), 422, "tag")
    body, ctype = multipart({"params": "{}"}, {"file": ("evil.py", b"print(1)", "text/x-python")})
    _assert_refused(_call(f"{url}/datastore/image?image=evil", "PUT", body, ctype), 422, "file")
    for path in ("/datastore/image?image=../outside", "/datastore/label?label=small&tag=../..", "/datastore/image/info?image=/etc/passwd"):
        assert _call(url + path)[0] in (404, 422)
    new = {p for p in _files(root) - before if not p.startswith(("app/", "logs", "bundle/")) and "/.datastore" not in p}
    assert new <= {"data/studies/.lock"}, new


def test_infer_reads_only_datastore_images(server):
    url, outside = server["url"], server["outside"]
    body, ctype = multipart({"params": "{}"}, {})
    for image in (str(outside), "../outside", "nosuch"):
        q = urllib.parse.urlencode({"image": image, "output": "json"})
        _assert_refused(_call(f"{url}/infer/{MODEL}?{q}", "POST", body, ctype), (404, 422), "image")
    for key in ("image", "label", "session"):  # server keys smuggled in params
        body, ctype = multipart({"params": json.dumps({key: str(outside)})}, {})
        _assert_refused(_call(f"{url}/infer/{MODEL}?image=small&output=json", "POST", body, ctype), 422, key)


def test_infer_options_bounded(server):
    url = server["url"]
    for params, param in [
        ({"scales": 2048}, "scales"), ({"scales": ",".join(["224"] * 50)}, "scales"), ({"scales": 100}, "scales"),
        ({"views": "identity,evil"}, "views"), ({"attention_grid": 10**9}, "attention_grid"),
        ({"device": "$__import__('os')"}, "device"), ({"unknown": 1}, "unknown"), ({"return_attention": "maybe"}, "return_attention"),
    ]:  # fmt: skip
        body, ctype = multipart({"params": json.dumps(params)}, {})
        t0 = time.time()
        _assert_refused(_call(f"{url}/infer/{MODEL}?image=small&output=json", "POST", body, ctype), 422, param)
        assert time.time() - t0 < 10
    body, ctype = multipart({"params": "{not json"}, {})
    _assert_refused(_call(f"{url}/infer/{MODEL}?image=small&output=json", "POST", body, ctype), 422, "params")


def test_decompression_bomb_refused_with_flat_memory(server):
    url, studies, pid = server["url"], server["studies"], server["pid"]
    assert (studies / "bomb.png").stat().st_size < 100_000
    peak_before = _peak_rss_mb(pid)
    body, ctype = multipart({"params": "{}"}, {})
    t0 = time.time()
    detail = _assert_refused(_call(f"{url}/infer/{MODEL}?image=bomb&output=json", "POST", body, ctype), 413, "image")
    assert "megapixels" in detail and "MONAI_MTT_MAX_IMAGE_PIXELS" in detail and str(studies) not in detail
    body, ctype = multipart({"params": "{}"}, {"file": ("up.png", (studies / "bomb.png").read_bytes(), "image/png")})
    code, _, resp = _call(f"{url}/infer/{MODEL}?output=json", "POST", body, ctype)
    assert code == 413 and b"megapixels" in resp, resp[:300]
    assert time.time() - t0 < 20
    growth = _peak_rss_mb(pid) - peak_before
    print(f"server peak RSS before {peak_before:.0f} MB, growth on the bomb {growth:.0f} MB")
    assert growth < 200, f"server peak memory grew by {growth:.0f} MB on a 48 KB upload"


def test_good_request_still_served(server):
    url = server["url"]
    q = urllib.parse.urlencode({"image": "small", "output": "all"})
    body, ctype = multipart({"params": json.dumps({"scales": "224", "views": ["identity"], "attention_grid": 4})}, {})
    code, rtype, data = _call(f"{url}/infer/{MODEL}?{q}", "POST", body, ctype)
    assert code == 200, data[:500]
    parts = parse_multipart(rtype, data)
    result = json.loads(parts["params"])
    assert result["image_size"] == [96, 128] and len(result["attention"]["grid"]) == 4
    import io

    assert Image.open(io.BytesIO(parts["image"])).size == (128, 96)


def test_open_bind_without_auth_refused(server, tmp_path):
    """Told to listen on all interfaces with auth off, the app refuses to start (nothing is served)."""
    port = free_port()
    proc, log = _start(tmp_path, server["studies"], server["bundle"], port, ["--host", "0.0.0.0"], "open.log")
    try:
        proc.wait(240)
    finally:
        stop(proc)
        log.close()
    text = (tmp_path / "open.log").read_text(errors="replace")
    assert "refusing to serve on 0.0.0.0" in text, text[-3000:]
    assert proc.returncode != 0
