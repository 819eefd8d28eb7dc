"""Validation pass: a generated bad-input corpus (one case per problem type), all reported at once;
odd-but-usable images accepted; the data folder is never written to."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from monai_mtt.data import (
    DataValidationError,
    check_image,
    check_mask,
    load_datalist,
    read_isic2017,
    read_isic_additional,
    read_ph2,
)
from monai_mtt.data.prepare import register


def _rgb(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def _mask(width: int = 40, height: int = 30, levels: tuple[int, int] = (0, 255)) -> Image.Image:
    arr = np.full((height, width), levels[0], np.uint8)
    arr[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = levels[1]
    return Image.fromarray(arr)


def _jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def make_bad_isic(root: Path) -> dict[str, Path]:
    """An ISIC-2017-layout folder with one instance of each problem type, plus odd-but-fine images."""
    data, masks = root / "ISIC-2017_Training_Data", root / "ISIC-2017_Training_Part1_GroundTruth"
    data.mkdir(parents=True)
    masks.mkdir()
    (root / "ISIC-2017_Validation_Data").mkdir()  # empty folder
    (root / "ISIC-2017_Validation_Part1_GroundTruth").mkdir()
    (root / "ISIC-2017_Validation_Part3_GroundTruth.csv").write_text("image_id,melanoma,seborrheic_keratosis\n")
    rows = []

    def good(case_id: str, image: Image.Image | None = None, row: str = "0.0,0.0", ext: str = ".jpg") -> Path:
        image = image if image is not None else _rgb()
        path = data / f"{case_id}{ext}"
        image.save(path)
        w, h = image.size
        _mask(w, h).save(masks / f"{case_id}_segmentation.png")
        if row is not None:
            rows.append(f"{case_id},{row}")
        return path

    paths = {"fine": good("ISIC_0000001")}
    paths["corrupt"] = data / "ISIC_0000002.jpg"
    paths["corrupt"].write_bytes(b"this is not a jpeg at all" * 10)
    _mask().save(masks / "ISIC_0000002_segmentation.png")
    rows.append("ISIC_0000002,0.0,0.0")
    paths["truncated"] = data / "ISIC_0000003.jpg"
    paths["truncated"].write_bytes(_jpeg_bytes(_rgb(200, 150))[:1500])
    _mask(200, 150).save(masks / "ISIC_0000003_segmentation.png")
    rows.append("ISIC_0000003,1.0,0.0")
    paths["no_mask"] = good("ISIC_0000004")
    (masks / "ISIC_0000004_segmentation.png").unlink()
    paths["grey_mask"] = good("ISIC_0000005")
    Image.fromarray(np.array([[0, 128, 255, 255] * 10] * 30, np.uint8)).save(masks / "ISIC_0000005_segmentation.png")
    paths["small_mask"] = good("ISIC_0000006")
    _mask(20, 15).save(masks / "ISIC_0000006_segmentation.png")
    paths["no_row"] = good("ISIC_0000007", row=None)
    rows.append("ISIC_0000008,0.0,1.0")  # row without image
    paths["both"] = good("ISIC_0000009", row="1.0,1.0")
    paths["dup"] = good("ISIC_0000010")
    _rgb().save(data / "ISIC_0000010.png")  # same id, second format
    # odd but usable: greyscale, RGBA, 16-bit PNG, EXIF-rotated JPEG, 1-bit mask, {0,1} mask
    good("ISIC_0000011", _rgb().convert("L"))
    good("ISIC_0000012", _rgb().convert("RGBA"), ext=".png")
    good("ISIC_0000013", Image.fromarray(np.full((30, 40), 40000, np.uint16)), ext=".png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 40x30, displayed 30x40
    (data / "ISIC_0000014.jpg").write_bytes(_jpeg_bytes(_rgb(), exif=exif))
    _mask(30, 40).save(masks / "ISIC_0000014_segmentation.png")
    rows.append("ISIC_0000014,0.0,1.0")
    good("ISIC_0000015")
    _mask().convert("1").save(masks / "ISIC_0000015_segmentation.png")
    good("ISIC_0000016")
    _mask(levels=(0, 1)).save(masks / "ISIC_0000016_segmentation.png")
    # ignored entries
    (data / "ISIC_0000011_superpixels.png").write_bytes(b"junk")
    (data / "ISIC-2017_Training_Data_metadata.csv").write_text("image_id,age\n")
    (data / "._ISIC_0000001.jpg").write_bytes(b"macOS resource fork")
    (root / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\n" + "\n".join(rows) + "\n"
    )
    return paths


EXPECTED = {
    "corrupt": "image cannot be identified as an image",
    "truncated": "image cannot be decoded",
    "no_mask": "segmentation mask is missing",
    "grey_mask": "mask is not binary: 3 grey levels (0, 128, 255)",
    "small_mask": "mask is 20x15 but its image",
    "no_row": "image has no row in ISIC-2017_Training_Part3_GroundTruth.csv",
    "both": "ISIC_0000009 is labelled both melanoma and seborrheic keratosis",
    "row_without_image": "label row ISIC_0000008 has no image",
    "dup": "duplicate id 'ISIC_0000010'",
    "empty": "image folder is empty",
}


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 for every file, and '<dir>' for every folder."""
    return {
        str(p.relative_to(root)): ("<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
    }


def test_bad_isic_corpus_reports_every_problem_at_once(tmp_path: Path) -> None:
    paths = make_bad_isic(tmp_path / "bad")
    with pytest.raises(DataValidationError) as info:
        read_isic2017(tmp_path / "bad")
    message = str(info.value)
    problems = info.value.problems
    for key, text in EXPECTED.items():
        assert text in message, f"{key}: {text!r} not reported"
    assert message.startswith(f"{len(problems)} problems found in ISIC 2017 data set")
    assert len(message.splitlines()) == len(problems) + 1
    assert all(f"{p.path}: {p.problem} — {p.fix}" in message for p in problems)
    # each problem is attributed to the right file
    by_path = {}
    for p in problems:
        by_path.setdefault(Path(p.path.split(":")[0]).name, []).append(p.problem)
    assert any("cannot be identified" in t for t in by_path["ISIC_0000002.jpg"])
    assert any("truncated" in t for t in by_path["ISIC_0000003.jpg"])
    assert by_path["ISIC_0000004_segmentation.png"][0].startswith("segmentation mask is missing")
    assert "30 (width x height" in by_path["ISIC_0000006_segmentation.png"][0]
    # odd-but-usable files and ignored entries raise nothing
    for case in range(11, 17):
        assert not any(f"ISIC_00000{case}" in p.path or f"ISIC_00000{case}" in p.problem for p in problems), case
    assert not any("superpixels" in m or "metadata" in m or "._" in m for m in message.splitlines())
    assert len(problems) == 10
    # without pixel checks the header-level problems remain, decode-level ones go
    with pytest.raises(DataValidationError) as fast:
        read_isic2017(tmp_path / "bad", check_pixels=False)
    fast_text = str(fast.value)
    assert "cannot be identified" in fast_text and "not binary" not in fast_text and "truncated" not in fast_text


def test_validate_false_returns_best_effort(tmp_path: Path) -> None:
    make_bad_isic(tmp_path / "bad")
    datalist = read_isic2017(tmp_path / "bad", validate=False)
    ids = {i["id"]: i for i in datalist["train"]}
    assert "class" not in ids["ISIC_0000007"] and ids["ISIC_0000001"]["class"] == 0
    assert datalist["val"] == []


def test_wrong_root_names_expected_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DataValidationError, match=r"expected ISIC-2017_\{Split\}_Data/.*Part3_GroundTruth.csv"):
        read_isic2017(tmp_path)
    with pytest.raises(DataValidationError, match="no PH2 layout found; expected 'PH2 Dataset images/IMDxxx"):
        read_ph2(tmp_path)
    with pytest.raises(DataValidationError, match="no label CSV in the folder"):
        read_isic_additional(tmp_path)


def test_missing_csv_and_mask_folder(tmp_path: Path) -> None:
    data = tmp_path / "ISIC-2017_Test_v2_Data"
    data.mkdir()
    _rgb().save(data / "ISIC_0000001.jpg")
    with pytest.raises(DataValidationError) as info:
        read_isic2017(tmp_path)
    message = str(info.value)
    assert "ISIC-2017_Test_v2_Part1_GroundTruth: segmentation ground-truth folder is missing" in message
    assert "ISIC-2017_Test_v2_Part3_GroundTruth.csv: label CSV is missing" in message
    assert len(info.value.problems) == 2


def test_exif_orientation_is_respected(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    image = tmp_path / "rotated.jpg"
    image.write_bytes(_jpeg_bytes(_rgb(40, 30), exif=exif))
    size, problems = check_image(image)
    assert size == (30, 40) and not problems
    upright, stored = tmp_path / "upright.png", tmp_path / "stored.png"
    _mask(30, 40).save(upright)
    _mask(40, 30).save(stored)
    assert check_mask(upright, size) == []
    assert "mask is 40x30 but its image is 30x40" in check_mask(stored, size)[0].problem


def test_large_image_is_fine_and_bomb_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.jpg"
    Image.new("L", (6000, 4000), 128).save(big, quality=50)
    assert check_image(big) == ((6000, 4000), [])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 24 MP is now > 2x PIL's limit
    size, problems = check_image(big)
    assert size is None and "too large (24.0 megapixels; the limit is 2.0)" in problems[0].problem
    monkeypatch.undo()
    monkeypatch.setenv("MONAI_MTT_MAX_IMAGE_PIXELS", "20000000")  # our own limit, from the header
    size, problems = check_image(big)
    assert size is None and "too large (6000 x 4000, 24.0 megapixels; the limit is 20.0)" in problems[0].problem
    assert "MONAI_MTT_MAX_IMAGE_PIXELS" in problems[0].fix


def test_colour_mask_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    arr = np.zeros((30, 40, 3), np.uint8)
    arr[5:10, 5:10, 0] = 255
    Image.fromarray(arr).save(path)
    assert "colour image (mode RGB)" in check_mask(path, (40, 30))[0].problem
    grey_rgb = tmp_path / "g.png"
    _mask().convert("RGB").save(grey_rgb)
    assert check_mask(grey_rgb, (40, 30)) == []


def test_ph2_structural_problems(tmp_path: Path) -> None:
    images = tmp_path / "PH2 Dataset images"
    for case in ("IMD001", "IMD002"):
        (images / case / f"{case}_Dermoscopic_Image").mkdir(parents=True)
        (images / case / f"{case}_lesion").mkdir()
        _rgb().save(images / case / f"{case}_Dermoscopic_Image" / f"{case}.bmp")
    _mask().convert("1").save(images / "IMD001" / "IMD001_lesion" / "IMD001_lesion.bmp")
    (tmp_path / "ph2_labels.csv").write_text("image_name,clinical_diagnosis\nIMD001,2\nIMD003,0\n")
    with pytest.raises(DataValidationError) as info:
        read_ph2(tmp_path)
    message = str(info.value)
    assert "IMD002_lesion.bmp: segmentation mask is missing" in message
    assert "case IMD002 has no row in ph2_labels.csv" in message
    assert "label row IMD003 has no case folder" in message
    assert len(info.value.problems) == 3


def test_additional_archive_metadata_other_diagnoses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(5):
        _rgb(seed=i).save(tmp_path / f"ISIC_{i:07d}.jpg")
    (tmp_path / "metadata.csv").write_text(
        "isic_id,diagnosis,age\nISIC_0000000,nevus,30\nISIC_0000001,melanoma,50\n"
        "ISIC_0000002,Seborrheic keratosis,60\nISIC_0000003,basal cell carcinoma,70\nISIC_0000004,,\n"
    )
    with caplog.at_level(logging.WARNING):
        items = read_isic_additional(tmp_path)
    assert [(i["id"], i["class"]) for i in items] == [("ISIC_0000000", 0), ("ISIC_0000001", 1), ("ISIC_0000002", 2)]
    assert all("label" not in i for i in items)
    assert "skipped 2 image(s)" in caplog.text and "basal cell carcinoma: 1 (ISIC_0000003)" in caplog.text
    with pytest.raises(DataValidationError, match=r"\(blank\): 1 \(ISIC_0000004\)"):
        read_isic_additional(tmp_path, on_other_diagnosis="error")


def test_additional_part3_problems(tmp_path: Path) -> None:
    _rgb().save(tmp_path / "A.jpg")
    _rgb().save(tmp_path / "B.jpg")
    (tmp_path / "labels.csv").write_text("image_id,melanoma,seborrheic_keratosis\nA,1.0,0.0\nC,0.0,0.0\nA,0.0,1.0\n")
    with pytest.raises(DataValidationError) as info:
        read_isic_additional(tmp_path)
    message = str(info.value)
    assert "B.jpg: image has no row in labels.csv" in message
    assert "label row C has no image" in message
    assert "duplicate label row for A" in message


def test_readers_and_prepare_never_write_into_data(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    make_bad_isic(data_root / "bad")
    if SHARED_DATA.is_dir():  # a few real files in their layouts
        isic = data_root / "isic"
        for sub, name in (("ISIC-2017_Training_Data", "ISIC_0000007.jpg"),
                          ("ISIC-2017_Training_Part1_GroundTruth", "ISIC_0000007_segmentation.png")):
            (isic / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(SHARED_DATA / "isic2017" / sub / name, isic / sub / name)
        (isic / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
            "image_id,melanoma,seborrheic_keratosis\nISIC_0000007,0.0,0.0\n"
        )
        ph2 = data_root / "ph2" / "PH2 Dataset images" / "IMD006"
        shutil.copytree(SHARED_DATA / "ph2" / "PH2 Dataset images" / "IMD006", ph2)
        (data_root / "ph2" / "ph2_labels.csv").write_text("image_name,clinical_diagnosis\nIMD006,1\n")
    before = tree_digest(data_root)
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    for reader in (read_isic2017, read_ph2, read_isic_additional, load_datalist):
        for root in sorted(p for p in data_root.iterdir()):
            try:
                reader(root)
            except DataValidationError:
                pass
    for kind, root in (("isic2017", "bad"), ("isic2017", "isic"), ("ph2", "ph2"), ("additional", "bad")):
        if (data_root / root).exists():
            target = str(out / f"{kind}_{root}.json")
            argv = ["prepare", kind, "--root", str(data_root / root), "--out", target, "--folds", "0"]
            args = parser.parse_args(argv)
            args.func(args)
    assert tree_digest(data_root) == before
    if SHARED_DATA.is_dir():
        assert (out / "isic2017_isic.json").is_file() and (out / "ph2_ph2.json").is_file()
