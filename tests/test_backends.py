"""Inference backends (auto / onnxruntime / fused / eager): selection, the force switch, equal outputs; amp 'auto'."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from monai.bundle import ConfigParser

from conftest import BUNDLE_NET, CONFIGS, SMALL_NET, with_trained_statistics
from monai_mtt.engines import MTTEvaluator, mixed_precision_pays, resolve_amp
from monai_mtt.inferers import MTTSimpleInferer, MultiScaleTTAInferer
from monai_mtt.networks import MTTransUNet, MTTransUNetInfer, StdConv2d, load_inference_network
from monai_mtt.networks import backends
from monai_mtt.networks.backends import BACKENDS, build_backend, resolve_backend

HAS_ORT = backends.onnxruntime_available()
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'monai_mtt[onnx]')")


@pytest.fixture(scope="module")
def trained_like() -> MTTransUNetInfer:
    """A small network whose norms, BN statistics and biases are not at their initial values (so folding
    and export are exercised on non-trivial parameters), with a 2-layer Transformer (attention)."""
    torch.manual_seed(0)
    net = with_trained_statistics(MTTransUNetInfer(**SMALL_NET))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1 or "cls_token" in name:
                p.add_(0.2 * torch.randn_like(p))
    return net


@pytest.fixture(scope="module")
def checkpoint(trained_like, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"model": trained_like.state_dict()}, path)
    return path


def test_resolve_backend_auto_and_force(monkeypatch):
    # auto: the folded network, measured the fastest for the TTA, whether or not ONNX Runtime is installed
    for available in (False, True):
        monkeypatch.setattr(backends, "onnxruntime_available", lambda a=available: a)
        assert resolve_backend("auto", "cpu") == "fused"
        assert resolve_backend("auto", "cuda:0") == "fused"
        if available:
            assert resolve_backend("onnxruntime", "cpu") == "onnxruntime"
    for name in ("fused", "eager"):
        assert resolve_backend(name, "cpu") == name
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install 'monai_mtt\[onnx\]'"):
        resolve_backend("onnxruntime", "cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", "cpu")
    monkeypatch.undo()
    # onnxruntime without onnx (an app environment that only runs .onnx files): weights cannot be exported
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnx" else real_find_spec(n, *a))
    assert not backends.onnxruntime_available()
    with pytest.raises(ImportError, match="needs onnx"):
        resolve_backend("onnxruntime", "cpu")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_backend("onnxruntime", "cuda:0")


def test_load_inference_network_picks_the_forced_backend(trained_like, checkpoint):
    def net_def():
        return MTTransUNetInfer(**SMALL_NET)

    eager = load_inference_network(net_def(), checkpoint, backend="eager")
    fused = load_inference_network(net_def(), checkpoint, backend="fused")
    assert any(isinstance(m, StdConv2d) for m in eager.modules())
    assert not any(isinstance(m, StdConv2d) for m in fused.modules())
    assert not fused.training and not eager.training
    # on a CPU the fused kernels are channels-last (oneDNN's NHWC convolutions); eager keeps the trained layout
    convs = [m for m in fused.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert eager.resnet.conv_root.weight.is_contiguous()
    assert type(load_inference_network(net_def(), checkpoint, fuse=False)) is MTTransUNetInfer  # older spelling
    auto = load_inference_network(net_def(), checkpoint)
    assert not isinstance(auto, backends.OnnxRuntimeMTT) and not any(isinstance(m, StdConv2d) for m in auto.modules())
    with pytest.raises(ValueError, match="backend must be one of"):
        load_inference_network(net_def(), checkpoint, backend="fast")


@needs_ort
def test_every_backend_computes_the_eager_outputs(trained_like):
    """Raw outputs, the plain inferer and the 18-view TTA (both ensembles, with attention) equal eager within 1e-4."""
    nets = {name: build_backend(trained_like, name) for name in ("eager", "fused", "onnxruntime")}
    assert isinstance(nets["onnxruntime"], backends.OnnxRuntimeMTT)
    torch.manual_seed(1)
    x = torch.rand(3, 3, 64, 96)  # batch and non-square sides differ from the export's example input
    ref = MTTransUNet.outputs(nets["eager"], x, True)
    for name in ("fused", "onnxruntime"):
        got = nets[name].outputs(x, True)
        assert set(got) == set(ref)
        for k in ref:
            assert torch.allclose(got[k], ref[k], atol=1e-4, rtol=0), (name, k)
        # forward keeps the source class's contract: MTTransUNetInfer -> mask probabilities
        assert torch.allclose(nets[name](x), ref["seg"].softmax(1), atol=1e-4)
        # as the eager network, the level set only when asked
        lean = nets[name].outputs(x, True, False)
        assert set(lean) == set(ref) - {"lsf"} and torch.allclose(lean["seg"], ref["seg"], atol=1e-4, rtol=0)
    image = torch.rand(1, 3, 70, 90)  # original size, not a multiple of 16
    for inferer in (
        MultiScaleTTAInferer(scales=(32, 48), return_attention=True),
        MultiScaleTTAInferer(scales=(32, 48), return_attention=True, ensemble="authors", ensemble_size=48),
        MTTSimpleInferer(size=64, return_attention=True),
    ):
        want = inferer(image, nets["eager"])
        for name in ("fused", "onnxruntime"):
            got = inferer(image, nets[name])
            for k in want:
                assert torch.allclose(got[k], want[k], atol=1e-4, rtol=0), (type(inferer).__name__, name, k)


@needs_ort
def test_onnxruntime_backend_refuses_bad_sides_and_attention_without_layers():
    net = build_backend(MTTransUNet(**{**SMALL_NET, "num_layers": 0}), "onnxruntime")
    out = net.outputs(torch.rand(1, 3, 32, 32))
    assert set(out) == {"seg", "lsf", "cls"}
    with pytest.raises(ValueError, match="num_layers > 0"):
        net.outputs(torch.rand(1, 3, 32, 32), return_attention=True)
    with pytest.raises(ValueError, match="multiples of 16"):
        net.outputs(torch.rand(1, 3, 30, 32))


def _bundle_network(tmp_path, checkpoint, **overrides):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.yaml")])
    parser.update({"bundle_root": str(tmp_path), "checkpoint": str(checkpoint), "device": "cpu", **BUNDLE_NET,
                   **overrides})  # fmt: skip
    return parser.get_parsed_content("network")


def test_bundle_config_switch(tmp_path, checkpoint):
    assert BACKENDS[0] == "auto"
    default = _bundle_network(tmp_path, checkpoint)
    assert not isinstance(default, backends.OnnxRuntimeMTT) and not any(
        isinstance(m, StdConv2d) for m in default.modules()
    )
    eager = _bundle_network(tmp_path, checkpoint, inference_backend="eager")
    assert any(isinstance(m, StdConv2d) for m in eager.modules())
    fused = _bundle_network(tmp_path, checkpoint, inference_backend="fused")
    assert type(fused) is MTTransUNetInfer and not any(isinstance(m, StdConv2d) for m in fused.modules())
    if HAS_ORT:
        assert isinstance(
            _bundle_network(tmp_path, checkpoint, inference_backend="onnxruntime"), backends.OnnxRuntimeMTT
        )


def test_app_bundle_backend_from_config_and_environment(tmp_path, monkeypatch):
    from monai_mtt.apps.bundle_loader import load_app_bundle

    monkeypatch.delenv("MONAI_MTT_BACKEND", raising=False)
    assert load_app_bundle(CONFIGS.parent).backend == "auto"
    monkeypatch.setenv("MONAI_MTT_BACKEND", "fused")
    assert load_app_bundle(CONFIGS.parent).backend == "fused"
    monkeypatch.setenv("MONAI_MTT_BACKEND", "gpu")
    with pytest.raises(ValueError, match="MONAI_MTT_BACKEND"):
        load_app_bundle(CONFIGS.parent)


def test_resolve_amp(monkeypatch):
    assert resolve_amp(True, "cpu") is True and resolve_amp(False, "cuda") is False
    assert resolve_amp("auto", "cuda:0") is False  # float16 AMP measured slower than float32 on an H100
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert resolve_amp("auto", "cpu") is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_amp("AUTO", "cpu") is True
    assert mixed_precision_pays("meta") is False
    # a bundle command line passes --amp false / --amp True as strings
    assert resolve_amp("false", "cuda") is False and resolve_amp("True", "cpu") is True
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="amp must be true, false or 'auto'"):
            resolve_amp(bad, "cpu")
    # the evaluator reads the setting the same way (a bundle's --amp false must not switch autocast on)
    evaluator = MTTEvaluator(device="cpu", val_data_loader=[], network=torch.nn.Identity(), amp="false")
    assert evaluator.amp is False
