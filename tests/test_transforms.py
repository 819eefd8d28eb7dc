"""Loading, level set (eq. 4) and augmentation transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose, RandFlipd, Resized
from PIL import Image

from monai_mtt.transforms import EnsureClassd, LevelSet, LevelSetd, LoadDermoscopyd, RandMultiScaleCropd


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)


def test_level_set_of_a_disk_matches_the_analytic_distance():
    h = w = 101
    r = 30
    mask = _disk(h, w, 50, 50, r)
    lsf = LevelSet()(mask[None])[0]
    yy, xx = np.mgrid[:h, :w]
    rho = np.sqrt((yy - 50) ** 2 + (xx - 50) ** 2)
    inside = mask > 0
    # inside: distance to the boundary is r - rho, normalised by its maximum (r at the centre)
    assert np.abs(lsf[inside] - (-(r - rho[inside]) / r))[rho[inside] < r - 2].max() < 1.5 / r
    # outside: rho - r normalised by the largest outside distance (the corner)
    far = np.sqrt(50**2 + 50**2) - r
    assert np.abs(lsf[~inside] - (rho[~inside] - r) / far).max() < 1.5 / far
    assert lsf.min() == pytest.approx(-1.0) and lsf.max() == pytest.approx(1.0)
    assert np.all(lsf[inside] <= 0) and np.all(lsf[~inside] > 0)
    # the inner boundary is exactly zero
    assert lsf[50, 50 + r] == 0.0 and lsf[50 - r, 50] == 0.0


def test_level_set_empty_and_full_masks():
    assert np.all(LevelSet()(np.zeros((1, 8, 9))) == 1.0)
    assert np.all(LevelSet()(np.ones((1, 8, 9))) == -1.0)
    t = LevelSet()(torch.zeros(1, 4, 4))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and not torch.isnan(t).any()


def _asymmetric_item(scale=1):
    """An L-shaped lesion on a (64, 96) * ``scale`` image: no flip or rotation maps it onto itself."""
    h, w = 64 * scale, 96 * scale
    m = np.zeros((h, w), np.float32)
    m[8 * scale : 40 * scale, 10 * scale : 22 * scale] = 1
    m[28 * scale : 40 * scale, 10 * scale : 60 * scale] = 1
    img = np.stack([m, 1 - m, np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))])
    return {"image": torch.from_numpy(img), "label": torch.from_numpy(m[None].copy())}


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_keeps_image_mask_and_level_set_aligned(seed):
    keys = ["image", "label"]
    mode = RandMultiScaleCropd.modes[seed % 2]
    t = Compose(
        [
            RandMultiScaleCropd(keys, prob=1.0, mode=mode, min_scale=0.6),
            Resized(keys, spatial_size=(48, 48), mode=("bilinear", "nearest")),
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            LevelSetd("label", "lsf"),
        ]
    ).set_random_state(seed)
    # 128x192 resized down to 48x48: the bilinear/nearest boundary difference stays small in both modes
    d = t(_asymmetric_item(scale=2))
    img, lab, lsf = d["image"], d["label"], d["lsf"]
    assert img.shape == (3, 48, 48) and lab.shape == (1, 48, 48) and lsf.shape == (1, 48, 48)
    assert torch.as_tensor(lab).sum() > 0 and torch.as_tensor(lab).mean() < 1
    assert set(torch.unique(torch.as_tensor(lab)).tolist()) <= {0.0, 1.0}
    # image channel 0 is the mask itself (bilinear): it must agree with the nearest-resized mask
    disagree = ((torch.as_tensor(img[0]) > 0.5).float() != torch.as_tensor(lab[0])).float().mean().item()
    assert disagree < 0.03
    # level set computed after the geometric transforms: sign matches the mask the network sees
    lab_np, lsf_np = np.asarray(lab[0]), np.asarray(lsf[0])
    assert np.all(lsf_np[lab_np == 0] > 0) and np.all(lsf_np[lab_np == 1] <= 0)
    assert float(np.asarray(img[2]).min()) >= 0 and float(np.asarray(img[2]).max()) <= 1


def test_multiscale_crop_is_centred_and_probabilistic():
    item = {"image": torch.arange(100.0).view(1, 10, 10)}
    crop = RandMultiScaleCropd("image", prob=1.0, mode="centred_scale", min_scale=0.5).set_random_state(0)
    out = crop(item)["image"]
    h, w = out.shape[-2:]
    assert 5 <= h <= 10 and 5 <= w <= 10
    # centred: equal margins (to one pixel) on both sides
    top = int(out[0, 0, 0].item()) // 10
    assert abs(top - (10 - h - top)) <= 1
    never = RandMultiScaleCropd("image", prob=0.0)
    assert never(item)["image"].shape == (1, 10, 10)


def test_authors_crop_exact_box_for_a_seeded_draw():
    # a 1024x768 ISIC image (mean side 896): margins 30, 60, ..., 210 px (< (W + H) / 8 = 224), as the authors
    h, w = 768, 1024
    item = {"image": torch.arange(h * w, dtype=torch.float32).view(1, h, w), "label": torch.zeros(1, h, w)}
    crop = RandMultiScaleCropd(["image", "label"], prob=0.5)
    assert crop.mode == "authors" and crop.num_margins == 7
    for seed in range(8):
        rs = np.random.RandomState(seed)  # the transform's draws: crop if rand() < prob, then k in 1..7
        cropped, k = rs.rand() < 0.5, rs.randint(1, 8)
        out = crop.set_random_state(seed)(item)
        if not cropped:
            assert out["image"].shape == (1, h, w)
            continue
        m = 30 * k
        assert out["image"].shape == (1, h - 2 * m, w - 2 * m) == out["label"].shape
        # the kept box starts at (m, m): its first pixel is image[m, m] and its last image[h-m-1, w-m-1]
        assert out["image"][0, 0, 0].item() == m * w + m
        assert out["image"][0, -1, -1].item() == (h - m - 1) * w + (w - m - 1)


def test_authors_crop_margins_at_another_resolution():
    # the bundle crops a 280x280 cache (224 * 1.25): step 30/896 * 280 = 9.375 px, rounded half up
    crop = RandMultiScaleCropd("image", prob=1.0)
    expected = [9, 19, 28, 38, 47, 56, 66]  # round(9.375 k), k = 1..7
    got = []
    for k in range(1, 8):
        crop._k = k
        got.append(crop.margin(280, 280))
    assert got == expected
    # margins are relative to the mean side: a 112x168 image (mean 140) gets half the 280 margins (unrounded)
    crop._k = 4
    assert crop.margin(112, 168) == 19  # 4 * 30 / 896 * 140 = 18.75
    # never more than leaves one pixel
    wide = RandMultiScaleCropd("image", prob=1.0, margin_step=0.2, max_margin=0.45)
    wide._k = 2
    assert wide.margin(10, 200) == 4
    with pytest.raises(ValueError, match="crop_mode"):
        RandMultiScaleCropd("image", mode="random")
    with pytest.raises(ValueError, match="margin_step"):
        RandMultiScaleCropd("image", margin_step=0.3)


def test_authors_crop_distribution_bounds():
    s = 896
    crop = RandMultiScaleCropd("image", prob=0.5).set_random_state(123)
    item = {"image": torch.zeros(1, s, s)}
    sides = [crop(item)["image"].shape[-1] for _ in range(2000)]
    allowed = {s} | {s - 60 * k for k in range(1, 8)}
    assert set(sides) == allowed  # every margin drawn, nothing else
    assert min(sides) / s == pytest.approx(1 - 2 * 7 * 30 / 896)  # min kept fraction 0.53125
    p_none = sides.count(s) / len(sides)
    assert abs(p_none - 0.5) < 0.04  # 4.5 sigma of a binomial(2000, 0.5)
    # each of the 7 margins about equally often among the crops (1/7 each)
    crops = [x for x in sides if x != s]
    assert all(abs(crops.count(v) / len(crops) - 1 / 7) < 0.05 for v in allowed - {s})


def test_ensure_class_defaults_to_unknown():
    t = EnsureClassd()
    assert t({"image": 0})["class"].item() == -1
    assert t({"class": 2})["class"].item() == 2
    assert t({"class": None})["class"].item() == -1


def test_load_odd_images_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    grey = (rng.random((20, 30)) * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((grey.astype(np.uint16) * 257)).save(tmp_path / "g16.png")
    Image.fromarray(grey > 127).save(tmp_path / "m1.bmp")  # 1-bit mask
    load = LoadDermoscopyd()
    for name in ("grey.png", "rgba.png", "g16.png"):
        d = load({"image": str(tmp_path / name), "label": str(tmp_path / "m1.bmp")})
        assert d["image"].shape == (3, 20, 30), name
        np.testing.assert_allclose(np.asarray(d["image"][1]), grey / 255.0, atol=1 / 255 + 1e-6)
        np.testing.assert_array_equal(np.asarray(d["label"][0]), (grey > 127).astype(np.float32))


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # bright left band
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    d = LoadDermoscopyd(label_key=None)({"image": str(tmp_path / "r.jpg")})
    assert d["image"].shape == (3, 20, 10)  # displayed orientation: portrait
    assert d["image"][0, :5].mean() > 0.9  # the left band is now on top


def test_real_isic_and_ph2_load_aligned(shared_data, tmp_path):
    load = LoadDermoscopyd()
    isic = sorted((shared_data / "isic2017" / "ISIC-2017_Training_Data").glob("ISIC_*.jpg"))[0]
    isic_mask = shared_data / "isic2017" / "ISIC-2017_Training_Part1_GroundTruth" / (isic.stem + "_segmentation.png")
    ph2_case = sorted((shared_data / "ph2" / "PH2 Dataset images").glob("IMD*"))[0]
    ph2 = ph2_case / f"{ph2_case.name}_Dermoscopic_Image" / f"{ph2_case.name}.bmp"
    ph2_mask = ph2_case / f"{ph2_case.name}_lesion" / f"{ph2_case.name}_lesion.bmp"
    for img_path, mask_path in ((isic, isic_mask), (ph2, ph2_mask)):
        d = load({"image": str(img_path), "label": str(mask_path)})
        w, h = Image.open(img_path).size
        assert h != w  # the check below only means something on non-square images
        assert d["image"].shape == (3, h, w) and d["label"].shape == (1, h, w)
        lab = np.asarray(d["label"][0])
        assert set(np.unique(lab)) == {0.0, 1.0}
        # lesions are darker than the surrounding skin: the mask lies on the image
        bright = np.asarray(d["image"]).mean(0)
        assert bright[lab == 1].mean() < bright[lab == 0].mean() - 0.05
        # a mask saved from our arrays with PIL is the original file, pixel for pixel
        Image.fromarray((lab * 255).astype(np.uint8)).save(tmp_path / "back.png")
        original = np.asarray(Image.open(mask_path).convert("L")) > 0
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "back.png")) > 0, original)
