"""Multi-scale TTA: equality with a naive per-view loop, inverse views, original-size outputs, mixed sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import SMALL_NET
from monai_mtt.inferers import VIEWS, MTTSimpleInferer, MultiScaleTTAInferer, apply_view, invert_view
from monai_mtt.networks import MTTransUNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return MTTransUNet(**SMALL_NET).eval()


def test_views_are_inverted_exactly_on_an_asymmetric_image():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    for v in VIEWS:
        y = apply_view(x, v)
        assert not torch.equal(y, x) or v == "identity"
        torch.testing.assert_close(invert_view(y, v), x, rtol=0, atol=0)
    # conventions: hflip mirrors columns, rot90 turns counter-clockwise (top-right corner goes to top-left)
    assert apply_view(x, "hflip")[0, 0, 0, 0] == x[0, 0, 0, 3]
    assert apply_view(x, "vflip")[0, 0, 0, 0] == x[0, 0, 3, 0]
    assert apply_view(x, "rot90")[0, 0, 0, 0] == x[0, 0, 0, 3]
    with pytest.raises(ValueError):
        apply_view(x, "rot45")


def _naive(net, image, scales, views):
    """One forward per view, mapped back and resized to the original size one by one."""
    h, w = image.shape[-2:]
    segs, clss = [], []
    for s in scales:
        xs = F.interpolate(image[None], size=(s, s), mode="bilinear", align_corners=False, antialias=s < max(h, w))
        for v in views:
            with torch.no_grad():
                out = net(apply_view(xs, v))
            seg = invert_view(out["seg"].softmax(1), v)
            segs.append(F.interpolate(seg, size=(h, w), mode="bilinear", align_corners=False, antialias=s > min(h, w)))
            clss.append(out["cls"].softmax(1))
    return torch.stack(segs).mean(0), torch.stack(clss).mean(0)


def test_tta_equals_the_naive_loop_at_original_size(net):
    torch.manual_seed(1)
    image = torch.rand(3, 50, 70)
    scales = (32, 48, 64)
    got = MultiScaleTTAInferer(scales=scales)(image[None], net)
    seg, cls = _naive(net, image, scales, VIEWS)
    assert got["seg"].shape == (1, 2, 50, 70)
    torch.testing.assert_close(got["seg"], seg, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["cls"], cls, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got["seg"].sum(1), torch.ones(1, 50, 70))


def test_tta_batches_views_into_one_forward_per_scale(net):
    calls = []  # one network pass = one encoder forward (the inferers call `outputs`, not `forward`)
    hook = net.resnet.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    MultiScaleTTAInferer(scales=(32, 48))(torch.rand(2, 3, 40, 40), net)
    hook.remove()
    assert calls == [12, 12]  # 6 views x 2 images, one forward per scale


def test_mixed_sizes_and_attention(net):
    images = [torch.rand(3, 40, 60), torch.rand(3, 90, 30), torch.rand(3, 40, 60)]
    out = MultiScaleTTAInferer(scales=(32,), views=("identity", "rot90"), return_attention=True)(images, net)
    assert [tuple(s.shape) for s in out["seg"]] == [(2, 40, 60), (2, 90, 30), (2, 40, 60)]
    assert out["cls"].shape == (3, 3)
    assert [tuple(a.shape) for a in out["attn"]] == [(1, 40, 60), (1, 90, 30), (1, 40, 60)]
    for a in out["attn"]:
        assert a.sum().item() == pytest.approx(1.0, rel=1e-4)
    # a list of equal-size images gives the same as the batch
    batch = MultiScaleTTAInferer(scales=(32,), views=("identity", "rot90"))(torch.stack([images[0], images[2]]), net)
    torch.testing.assert_close(out["seg"][2], batch["seg"][1], rtol=1e-5, atol=1e-6)


def test_large_image_is_resized_down_and_mapped_back(net):
    image = torch.rand(3, 600, 900)
    out = MultiScaleTTAInferer(scales=(32,), views=("identity",))(image[None], net)
    assert out["seg"].shape == (1, 2, 600, 900)


def test_simple_inferer_identity_view(net):
    x = torch.rand(2, 3, 64, 48)
    out = MTTSimpleInferer()(x, net)
    with torch.no_grad():
        ref = net(x)
    torch.testing.assert_close(out["seg"], ref["seg"].softmax(1))
    out = MTTSimpleInferer(size=32)(torch.rand(1, 3, 50, 50), net)
    assert out["seg"].shape == (1, 2, 50, 50)


def _naive_authors(net, image, scales, views, size):
    """The authors' validate.py, one view at a time: mask logits resized (bicubic) to ``size``, mapped back and
    summed over views and scales, softmax/argmax there; class logits summed over scales, averaged over views."""
    h, w = image.shape[-2:]
    seg_logits, cls_logits = 0, 0
    for s in scales:
        xs = F.interpolate(image[None], size=(s, s), mode="bilinear", align_corners=False, antialias=s < max(h, w))
        for v in views:
            with torch.no_grad():
                out = net(apply_view(xs, v))
            seg_logits = seg_logits + invert_view(F.interpolate(out["seg"], size=(size, size), mode="bicubic"), v)
            cls_logits = cls_logits + out["cls"]
    return seg_logits.softmax(1), (cls_logits / len(views)).softmax(1)


def test_authors_ensemble_equals_their_loop(net):
    torch.manual_seed(2)
    image = torch.rand(3, 50, 70)
    scales, size, views = (32, 48), 40, ("identity", "rot90", "hflip")
    got = MultiScaleTTAInferer(scales=scales, views=views, ensemble="authors", ensemble_size=size)(image[None], net)
    seg40, cls = _naive_authors(net, image, scales, views, size)
    torch.testing.assert_close(got["cls"], cls, rtol=1e-4, atol=1e-6)
    # the mask is decided at 40x40 and brought to 50x70 by nearest neighbour: same decisions, pixel for pixel
    assert got["seg"].shape == (1, 2, 50, 70)
    rows = ((torch.arange(50) + 0.5) * 40 / 50).floor().long()
    cols = ((torch.arange(70) + 0.5) * 40 / 70).floor().long()
    torch.testing.assert_close(got["seg"], seg40[..., rows[:, None], cols[None, :]], rtol=1e-4, atol=1e-5)
    # ... and it is not our default ensemble
    ours = MultiScaleTTAInferer(scales=scales, views=views)(image[None], net)
    assert (ours["cls"] - got["cls"]).abs().max() > 1e-4


def test_authors_ensemble_single_view_is_the_plain_forward(net):
    x = torch.rand(2, 3, 48, 48)
    got = MultiScaleTTAInferer(scales=(48,), views=("identity",), ensemble="authors", ensemble_size=48)(x, net)
    ref = MTTSimpleInferer()(x, net)
    torch.testing.assert_close(got["seg"], ref["seg"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["cls"], ref["cls"], rtol=1e-5, atol=1e-6)


def test_authors_ensemble_needs_logits(net):
    class ProbabilitiesOnly(torch.nn.Module):  # like an MTTransUNetInfer / ONNX export
        def forward(self, x):
            out = net(x)
            return out["seg"].softmax(1), out["cls"].softmax(1)

    x = torch.rand(1, 3, 32, 32)
    MultiScaleTTAInferer(scales=(32,))(x, ProbabilitiesOnly())  # our ensemble works on probabilities
    with pytest.raises(TypeError, match="sums logits"):
        MultiScaleTTAInferer(scales=(32,), ensemble="authors")(x, ProbabilitiesOnly())
    with pytest.raises(ValueError, match="ensemble must be one of"):
        MultiScaleTTAInferer(ensemble="mean")


def test_invalid_configuration():
    with pytest.raises(ValueError, match="multiple of 16"):
        MultiScaleTTAInferer(scales=(100,))
    with pytest.raises(ValueError, match="unknown view"):
        MultiScaleTTAInferer(views=("mirror",))



def test_evaluate_config_offers_both_ensembles():
    from monai.bundle import ConfigParser

    from conftest import REPO

    for ensemble in ("probabilities", "authors"):
        parser = ConfigParser()
        parser.read_config([str(REPO / "bundle" / "configs" / c) for c in ("inference.yaml", "evaluate.yaml")])
        if ensemble != "probabilities":
            parser["tta_ensemble"] = ensemble
        inferer = parser.get_parsed_content("inferer")
        assert isinstance(inferer, MultiScaleTTAInferer) and inferer.ensemble == ensemble
        assert inferer.scales == (224, 256, 288) and inferer.ensemble_size == 224
