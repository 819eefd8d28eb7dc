"""The apps' one bundle loader (monai_mtt.apps.bundle_loader) and the Deploy app's model resolution, without the SDKs.

A bundle folder and a TorchScript file carrying the same configs (as ``ckpt_export`` embeds them) give the same
TTA settings and class names; the network the loader builds computes what the eager network with those weights
computes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, SMALL_NET
from monai.bundle import ConfigParser

import monai_mtt
from monai_mtt import CLASS_NAMES
from monai_mtt.apps.bundle_loader import has_embedded_configs, load_app_bundle, read_bundle_config
from monai_mtt.apps.deploy.model_source import resolve_model
from monai_mtt.inferers import MultiScaleTTAInferer
from monai_mtt.networks import MTTransUNetInfer
from monai_mtt.networks.checkpoint import is_torchscript

BUNDLE = REPO / "bundle"
INFERENCE = ConfigParser.load_config_file(str(BUNDLE / "configs" / "inference.yaml"))
METADATA = json.loads((BUNDLE / "configs" / "metadata.json").read_text())


class _Tiny(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def _export_with_configs(path: Path) -> Path:
    """A TorchScript file with ``extra/metadata.json`` and ``extra/inference.json``, the way ckpt_export writes them."""
    extra = {"metadata.json": json.dumps(METADATA), "inference.json": json.dumps(INFERENCE)}
    torch.jit.save(torch.jit.script(_Tiny()), str(path), _extra_files=extra)
    return path


def test_bundle_folder():
    bundle = load_app_bundle(BUNDLE)
    assert bundle.scales == INFERENCE["scales"] == [224, 256, 288]
    assert bundle.views == INFERENCE["views"] and len(bundle.views) == 6
    assert bundle.ensemble == INFERENCE["tta_ensemble"] == "probabilities"
    cls_def = METADATA["network_data_format"]["outputs"]["class_probabilities"]["channel_def"]
    assert bundle.class_names == [cls_def[str(i)] for i in range(3)] == list(CLASS_NAMES)
    assert bundle.version == METADATA["version"] == monai_mtt.__version__
    assert bundle.parser["bundle_root"] == str(BUNDLE)
    inferer = bundle.inferer([224], ["identity", "hflip"], return_attention=True)
    assert isinstance(inferer, MultiScaleTTAInferer)
    assert inferer.scales == (224,) and inferer.views == ("identity", "hflip") and inferer.return_attention
    assert bundle.inferer().scales == (224, 256, 288) and not bundle.inferer().return_attention


def test_embedded_configs_read_like_the_folder(tmp_path):
    ts = _export_with_configs(tmp_path / "model.ts")
    assert is_torchscript(ts) and has_embedded_configs(ts)
    folder, embedded = load_app_bundle(BUNDLE), load_app_bundle(ts)
    for name in ("scales", "views", "ensemble", "class_names", "version"):
        assert getattr(embedded, name) == getattr(folder, name), name
    assert embedded.parser["network_def"] == folder.parser["network_def"] == INFERENCE["network_def"]
    # a plain checkpoint and a text file carry no configs: the error says how to export one
    weights = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, weights)
    text = tmp_path / "notes.ts"
    text.write_text("not a model")
    assert not has_embedded_configs(weights) and not has_embedded_configs(text) and not is_torchscript(weights)
    with pytest.raises(FileNotFoundError, match="ckpt_export"):
        read_bundle_config(weights)


def test_network_is_the_weights_loaded_and_fused(tmp_path):
    bundle = load_app_bundle(BUNDLE)
    small = {k: list(v) if isinstance(v, tuple) else v for k, v in SMALL_NET.items()}
    for k, v in small.items():
        bundle.parser[f"network_def#{k}"] = v
    torch.manual_seed(1)
    eager = MTTransUNetInfer(with_classes=False, **SMALL_NET).eval()
    for m in eager.modules():  # non-trivial BatchNorm statistics, so folding them is checked
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ckpt = tmp_path / "model.pt"
    torch.save({"model": eager.state_dict()}, ckpt)
    network = bundle.network(ckpt)
    assert not network.training
    x = torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        got, want = network.outputs(x, False), eager.outputs(x, False)
    for key in ("seg", "cls"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4)
    out = bundle.inferer([32], ["identity", "rot90"])(x, network)
    assert out["seg"].shape == (2, 2, 64, 48)
    torch.testing.assert_close(out["cls"].sum(1), torch.ones(2))


def test_resolve_model(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text(json.dumps(METADATA))
    (bundle / "models").mkdir()
    weights = bundle / "models" / "model.pt"
    torch.save({"model": {}}, weights)
    src = resolve_model(bundle)
    assert (src.config_source, src.checkpoint) == (bundle.resolve(), weights.resolve())
    (tmp_path / "export").mkdir()
    ts = _export_with_configs(tmp_path / "export" / "model.ts")
    src = resolve_model(tmp_path / "export")  # a MAP's model folder holding one exported model
    assert (src.config_source, src.checkpoint) == (ts.resolve(), ts.resolve())
    src = resolve_model(weights, bundle)
    assert (src.config_source, src.checkpoint) == (bundle.resolve(), weights.resolve())
    with pytest.raises(FileNotFoundError, match="--bundle"):
        resolve_model(weights)
