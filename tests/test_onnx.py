"""ONNX export: onnxruntime matches the eager network at several sizes and under the TTA inferer."""

from __future__ import annotations

import pytest
import torch

from conftest import SMALL_NET, with_trained_statistics
from monai_mtt.inferers import MTTSimpleInferer, MultiScaleTTAInferer
from monai_mtt.networks import MTTransUNet, MTTransUNetInfer

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from monai_mtt.networks.onnx import OnnxRuntimeNetwork, export_onnx, main, to_export_network  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = with_trained_statistics(MTTransUNet(**SMALL_NET))
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "model.onnx", image_size=32, dynamic=True)
    return net, OnnxRuntimeNetwork(path, threads=2)


@pytest.mark.parametrize("size", [32, (48, 80)])
def test_parity_dynamic_shapes(exported, size):
    net, ort = exported
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        out = net(x)
    seg, cls = ort(x)
    assert seg.shape == (2, 2, h, w) and cls.shape == (2, 3)
    assert torch.allclose(seg, out["seg"].softmax(1), atol=1e-4)
    assert torch.allclose(cls, out["cls"].softmax(1), atol=1e-4)
    assert torch.allclose(cls.sum(1), torch.ones(2), atol=1e-5)


def test_tta_inferer_with_onnxruntime_equals_eager(exported):
    net, ort = exported
    assert not hasattr(ort, "outputs")  # used as a fixed-tuple export by the inferers
    images = torch.rand(2, 3, 40, 56)
    tta = MultiScaleTTAInferer(scales=(32, 48), views=("identity", "hflip", "rot90"))
    a, b = tta(images, net), tta(images, ort)
    assert torch.allclose(a["seg"], b["seg"], atol=1e-4) and torch.allclose(a["cls"], b["cls"], atol=1e-4)
    # mixed-size list input, and the plain inferer
    mixed = [torch.rand(3, 32, 48), torch.rand(3, 64, 32)]
    a, b = tta(mixed, net), tta(mixed, ort)
    for sa, sb in zip(a["seg"], b["seg"]):
        assert torch.allclose(sa, sb, atol=1e-4)
    simple = MTTSimpleInferer()
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(simple(x, net)["seg"], simple(x, ort)["seg"], atol=1e-4)


def test_legacy_exporter_and_static_graph(tmp_path):
    net = with_trained_statistics(MTTransUNet(**SMALL_NET))
    path = export_onnx(net, tmp_path / "static.onnx", image_size=32, dynamic=False, exporter="legacy")
    ort = OnnxRuntimeNetwork(path)
    x = torch.rand(1, 3, 32, 32)
    seg, cls = ort(x)
    ref = to_export_network(net)(x)
    assert torch.allclose(seg, ref[0], atol=1e-4) and torch.allclose(cls, ref[1], atol=1e-4)
    assert isinstance(to_export_network(net), MTTransUNetInfer) and net.training is False
    with pytest.raises(ValueError, match="multiple of 16"):
        export_onnx(net, tmp_path / "bad.onnx", image_size=30)


def test_cli_exports_a_checkpoint(tmp_path, monkeypatch):
    import monai_mtt.networks.onnx as onnx_mod

    small = dict(SMALL_NET)
    small.pop("num_layers")
    monkeypatch.setattr(onnx_mod, "_network", lambda num_layers: MTTransUNet(num_layers=num_layers, **small))
    net = MTTransUNet(**SMALL_NET)
    ckpt = tmp_path / "model.pt"
    torch.save({"model": net.state_dict()}, ckpt)
    out = main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "cli.onnx"), "--num_layers", "2",
                "--image_size", "32", "--exporter", "legacy", "--check"])
    assert out.is_file()
    seg, _ = OnnxRuntimeNetwork(out)(torch.rand(1, 3, 48, 48))
    assert seg.shape == (1, 2, 48, 48)
