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


def _asymmetric_item(h=64, w=96):
    """An L-shaped lesion: no flip or rotation maps it onto itself."""
    m = np.zeros((h, w), np.float32)
    m[8:40, 10:22] = 1
    m[28:40, 10:60] = 1
    img = np.stack([m, 1 - m, np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))])
    return {"image": torch.from_numpy(img), "label": torch.from_numpy(m[None].copy())}


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_keeps_image_mask_and_level_set_aligned(seed):
    keys = ["image", "label"]
    t = Compose(
        [
            RandMultiScaleCropd(keys, prob=1.0, min_scale=0.6),
            Resized(keys, spatial_size=(48, 48), mode=("bilinear", "nearest")),
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            LevelSetd("label", "lsf"),
        ]
    ).set_random_state(seed)
    d = t(_asymmetric_item())
    img, lab, lsf = d["image"], d["label"], d["lsf"]
    assert img.shape == (3, 48, 48) and lab.shape == (1, 48, 48) and lsf.shape == (1, 48, 48)
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
    crop = RandMultiScaleCropd("image", prob=1.0, min_scale=0.5).set_random_state(0)
    out = crop(item)["image"]
    h, w = out.shape[-2:]
    assert 5 <= h <= 10 and 5 <= w <= 10
    # centred: equal margins (to one pixel) on both sides
    top = int(out[0, 0, 0].item()) // 10
    assert abs(top - (10 - h - top)) <= 1
    never = RandMultiScaleCropd("image", prob=0.0)
    assert never(item)["image"].shape == (1, 10, 10)


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
