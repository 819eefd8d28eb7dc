"""INT8 export: a calibrated QDQ model that loads like the float one and stays close to it."""

from __future__ import annotations

import pytest
import torch
from conftest import SMALL_NET, with_trained_statistics

from monai_mtt.inferers import MultiScaleTTAInferer
from monai_mtt.networks import MTTransUNet, load_inference_network
from monai_mtt.networks.checkpoint import CheckpointError, load_checkpoint

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from monai_mtt.networks.onnx import OnnxRuntimeNetwork, export_onnx  # noqa: E402
from monai_mtt.networks.quantize import (  # noqa: E402
    CalibrationImages,
    calibration_items,
    export_int8_onnx,
    main,
)


def _small_net() -> MTTransUNet:
    torch.manual_seed(0)
    return with_trained_statistics(MTTransUNet(**SMALL_NET))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(float ONNX path, int8 ONNX path) for the small network at 64 px."""
    tmp = tmp_path_factory.mktemp("int8")
    net = _small_net()
    items = calibration_items(None, num_images=4)  # the embedded sample's training images
    int8 = export_int8_onnx(net, tmp / "model.int8.onnx", items, image_size=64, exporter="legacy")  # the fast exporter
    fp32 = export_onnx(net, tmp / "model.onnx", image_size=64, exporter="legacy")
    return fp32, int8


def test_calibration_items_are_training_images_spread_over_the_set():
    items = calibration_items(None, num_images=4)
    assert len(items) == 4
    assert all("ISIC-2017_Training_Data" in it["image"] for it in items)  # never validation or test images
    assert len({it["image"] for it in items}) == 4
    x = next(CalibrationImages(items[:1], (48,)).inputs())["image"]
    assert x.shape == (1, 3, 48, 48) and x.dtype == "float32"
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.3  # LoadDermoscopyd's [0, 1] RGB, not 0..255


def test_int8_graph_is_quantized(models):
    fp32, int8 = models
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in onnx.load(str(fp32)).graph.node}
    # the int8 weights are stored as 8-bit initialisers: the file is much smaller than the float one
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size


def test_int8_loads_like_the_float_model_and_agrees_with_it(models):
    fp32, int8 = models
    q = load_inference_network(MTTransUNet(**SMALL_NET), int8)
    f = OnnxRuntimeNetwork(fp32)
    assert isinstance(q, OnnxRuntimeNetwork)
    # real images (not the calibration ones), at a size other than the calibration size
    reader = CalibrationImages(calibration_items(None, num_images=12)[5:8], (80,))
    x = torch.cat([torch.from_numpy(d["image"]) for d in reader.inputs()])
    seg_q, cls_q = q(x)
    seg_f, cls_f = f(x)
    assert seg_q.shape == (3, 2, 80, 80) and cls_q.shape == (3, 3)
    assert torch.allclose(seg_q.sum(1), torch.ones(3, 80, 80), atol=1e-3)
    assert torch.allclose(cls_q.sum(1), torch.ones(3), atol=1e-3)
    assert not torch.equal(seg_q, seg_f)  # really a different (quantized) computation
    # 8-bit activations carry about 1/255 of each tensor's range; through this small network the probabilities
    # move by about 1e-4 on average and the class probabilities by under 0.01 (measured), so the bounds below
    # leave a wide margin while a wrong scale or a broken calibration (errors of tenths) still fails them
    assert (seg_q - seg_f).abs().mean() < 0.01 and (cls_q - cls_f).abs().max() < 0.05
    # the random network calls nearly every pixel lesion with probabilities spread by only ~1e-3, so its
    # masks say little; instead the int8 lesion probabilities must follow the float ones pixel by pixel
    # (Pearson correlation measured 0.995; unrelated maps give ~0)
    corr = torch.corrcoef(torch.stack([seg_q[:, 1].flatten(), seg_f[:, 1].flatten()]))[0, 1]
    assert corr > 0.95
    # and through the TTA inferer, as the bundle runs it
    tta = MultiScaleTTAInferer(scales=(48, 64), views=("identity", "hflip"))
    a, b = tta(x, q), tta(x, f)
    assert a["seg"].shape == (3, 2, 80, 80) and (a["seg"] - b["seg"]).abs().mean() < 0.01


def test_cli_and_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ONNX Runtime's intermediate files must not land in the working directory
    import monai_mtt.networks.onnx as onnx_mod

    small = dict(SMALL_NET)
    small.pop("num_layers")
    monkeypatch.setattr(onnx_mod, "_network", lambda num_layers: MTTransUNet(num_layers=num_layers, **small))
    ckpt = tmp_path / "model.pt"
    torch.save({"model": _small_net().state_dict()}, ckpt)
    images = tmp_path / "calib"
    images.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no calibration images found in .*calib"):
        calibration_items(images)
    with pytest.raises(SystemExit, match=r"error: no calibration images found in .*calib"):
        main(["--checkpoint", str(ckpt), "--calibration_dir", str(images), "--out", str(tmp_path / "q.onnx")])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--checkpoint", str(ckpt), "--calibration_dir", str(tmp_path / "no"), "--out", str(tmp_path / "q.onnx")])
    for it in calibration_items(None, num_images=2):
        (images / it["image"].rsplit("/", 1)[1]).symlink_to(it["image"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_checkpoint(MTTransUNet(**SMALL_NET), bad)
    with pytest.raises(SystemExit, match=r"bad\.pt.* not a readable PyTorch checkpoint"):
        main(["--checkpoint", str(bad), "--calibration_dir", str(images), "--out", str(tmp_path / "q.onnx")])
    out = tmp_path / "q.onnx"
    from monai_mtt.cli import build_parser  # also the `monai-mtt quantize` sub-command

    assert build_parser().parse_args(["quantize", "--checkpoint", "m.pt", "--out", "q.onnx"]).func.__module__ == (
        "monai_mtt.networks.quantize"
    )
    assert main(["--checkpoint", str(ckpt), "--calibration_dir", str(images), "--out", str(out),
                 "--num_layers", "2", "--image_size", "32", "--exporter", "legacy"]) == 0
    seg, cls = OnnxRuntimeNetwork(out)(torch.rand(1, 3, 48, 48))
    assert seg.shape == (1, 2, 48, 48) and cls.shape == (1, 3)
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):  # nothing a user made is replaced
        main(["--checkpoint", str(ckpt), "--calibration_dir", str(images), "--out", str(out)])
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "calib", "model.pt", "q.onnx"]
