"""The one mask rule: the loader, ``prepare``'s validation and ``score`` read every mask file alike.

Each case is a real file written with PIL; the expected ``{0, 1}`` array is written out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_mtt.data.validation import check_mask
from monai_mtt.metrics.scoring import read_mask
from monai_mtt.transforms import LoadDermoscopyd
from monai_mtt.transforms.mask import MaskError, binarize_mask

# the lesion every accepted case encodes, 3 rows x 4 columns
A = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]], np.uint8)


def _grey(levels: np.ndarray, dtype: type = np.uint8) -> Image.Image:
    return Image.fromarray(levels.astype(dtype))


def _palette() -> Image.Image:
    img = Image.fromarray(A, mode="L").convert("P")
    img.putpalette([0, 0, 0, 255, 255, 255] + [0, 0, 0] * 254)
    return img


def _exif_rotated() -> Image.Image:
    """Stored 3 wide x 4 high, EXIF orientation 6 (display rotated 90 degrees clockwise): shows ``A``."""
    raw = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1]], np.uint8) * 255
    img = Image.fromarray(raw)
    img.info["exif"] = _orientation_exif(6)
    return img


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


ACCEPTED = {
    "0_1": lambda: _grey(A),
    "0_255": lambda: _grey(A * 255),
    "16bit_0_65535": lambda: _grey(A.astype(np.uint16) * 65535, np.uint16),
    "16bit_0_1": lambda: _grey(A, np.uint16),
    "1bit": lambda: Image.fromarray(A.astype(bool)),
    "rgb_grey": lambda: Image.fromarray(np.dstack([A * 255] * 3)),
    "rgba_grey_alpha_ignored": lambda: Image.fromarray(np.dstack([A * 255] * 3 + [np.full_like(A, 7)])),
    "palette_grey": _palette,
    "exif_rotated": _exif_rotated,
}

REFUSED = {
    "0_128_255": (lambda: _grey(np.array([[0, 128, 255, 0], [0] * 4, [0] * 4])), "3 grey levels (0, 128, 255)"),
    "rgb_coloured": (lambda: Image.fromarray(np.dstack([A * 255, A * 0, A * 0])), "colour image (mode RGB)"),
    "16bit_0_255": (lambda: _grey(A.astype(np.uint16) * 255, np.uint16), "expected two levels {0, 65535} or {0, 1}"),
}


def _save(img: Image.Image, path: Path) -> Path:
    exif = img.info.get("exif")
    img.save(path, **({"exif": exif} if exif else {}))
    return path


def _load(mask: Path, tmp_path: Path) -> np.ndarray:
    image = tmp_path / "image.png"
    Image.new("RGB", (4, 3), (200, 150, 120)).save(image)
    d = LoadDermoscopyd()({"image": str(image), "label": str(mask)})
    return np.asarray(d["label"][0])


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_masks_read_alike_everywhere(case: str, tmp_path: Path) -> None:
    path = _save(ACCEPTED[case](), tmp_path / f"{case}.png")
    with Image.open(path) as img:
        got = binarize_mask(img)
    assert got.dtype == np.uint8 and got.shape == (3, 4)
    np.testing.assert_array_equal(got, A)
    np.testing.assert_array_equal(_load(path, tmp_path), A.astype(np.float32))  # loader
    np.testing.assert_array_equal(read_mask(path), A.astype(bool))  # monai-mtt score
    assert check_mask(path, (4, 3)) == []  # monai-mtt prepare


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_masks_refused_everywhere(case: str, tmp_path: Path) -> None:
    make, detail = REFUSED[case]
    path = _save(make(), tmp_path / f"{case}.png")
    with Image.open(path) as img, pytest.raises(MaskError) as info:
        binarize_mask(img)
    assert detail in str(info.value) and str(path) in str(info.value) and "PNG" in info.value.fix
    with pytest.raises(Exception, match="not a binary mask") as loader_error:  # MONAI may wrap it
        _load(path, tmp_path)
    assert str(path) in str(loader_error.value)
    with pytest.raises(ValueError, match=f"{case}.png: not a binary mask") as score_error:
        read_mask(path)
    assert detail in str(score_error.value)
    problems = check_mask(path, (4, 3))
    assert len(problems) == 1 and problems[0].problem.startswith("mask is not binary: ")
    assert detail in problems[0].problem


def test_exif_is_applied_to_masks_as_to_images(tmp_path: Path) -> None:
    """The stored (unrotated) array differs from ``A``: only the EXIF-aware read gives ``A``."""
    path = _save(_exif_rotated(), tmp_path / "m.png")
    with Image.open(path) as img:
        assert img.size == (3, 4) and not np.array_equal(np.asarray(img).shape, A.shape)
    image = tmp_path / "photo.png"
    photo = Image.new("RGB", (3, 4))
    photo.save(image, exif=_orientation_exif(6))
    d = LoadDermoscopyd()({"image": str(image), "label": str(path)})
    assert tuple(d["image"].shape[1:]) == tuple(d["label"].shape[1:]) == (3, 4)
