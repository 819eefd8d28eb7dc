"""Shared test fixtures: the real data folder (skipped where absent) and small network configs."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONAI_MTT_SHARED_DATA", REPO.parent / "shared" / "data"))

# a scaled-down MT-TransUNet with the same structure, for tests that train or differentiate
SMALL_NET = dict(
    hidden_size=48,
    num_layers=2,
    num_heads=4,
    mlp_dim=96,
    resnet_depths=(1, 1, 1),
    resnet_widths=(64, 96, 128),
    root_channels=32,
    resnet_norm_groups=8,
    decoder_head_channels=64,
    decoder_channels=(48, 32, 16, 8),
)


# the bundle's configs and the SMALL_NET overrides for `python -m monai.bundle run` style calls
CONFIGS = REPO / "bundle" / "configs"
META = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
BUNDLE_NET = {
    f"network_def#{k}": (list(v) if isinstance(v, tuple) else v) for k, v in SMALL_NET.items() if k != "num_layers"
}
BUNDLE_NET["num_layers"] = SMALL_NET["num_layers"]


def with_trained_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` in eval mode with fixed-seed, non-trivial BatchNorm running statistics, as after training, so
    that Conv+BN folding and export are exercised on values other than the initial 0 / 1."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


def bundle_with_random_model(root: Path) -> Path:
    """A copy of the repository's bundle under ``root`` (never its runs or models) with a fixed-seed random
    full-size ``models/model.pt``, for tests that serve or package the bundle."""
    from monai_mtt.networks import MTTransUNet

    bundle = root / "bundle"
    shutil.copytree(REPO / "bundle", bundle, ignore=shutil.ignore_patterns("models", "runs", "eval", "predictions"))
    (bundle / "models").mkdir()
    torch.manual_seed(0)
    torch.save({"model": MTTransUNet().state_dict()}, bundle / "models" / "model.pt")
    return bundle


def quantize_checkpoint(checkpoint: Path, out: Path) -> Path:
    """``python -m monai_mtt.networks.quantize`` (``monai-mtt quantize``) of a full-size checkpoint, calibrated on
    two embedded training images at 64 px (fast): the int8 ``.onnx`` the apps are given."""
    cmd = [sys.executable, "-m", "monai_mtt.networks.quantize", "--checkpoint", str(checkpoint), "--out", str(out)]
    cmd += ["--num_images", "2", "--image_size", "64", "--exporter", "legacy"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.is_file(), (proc.stdout + proc.stderr)[-4000:]
    return out


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> None:
    """A 1-bit all-zero PNG: a few tens of KB on disk, ``width * height`` pixels decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def _bundle_files() -> set[str]:
    return {str(p.relative_to(REPO)) for p in (REPO / "bundle").rglob("*") if p.is_file()}


_BUNDLE_BEFORE = _bundle_files()


def pytest_sessionfinish(session, exitstatus):
    """Tests write only to temporary folders: fail the run if any left files in the repository's bundle/."""
    added = sorted(_bundle_files() - _BUNDLE_BEFORE)
    if added:
        print(f"\nERROR: tests wrote into the repository: {added}")
        session.exitstatus = 1
