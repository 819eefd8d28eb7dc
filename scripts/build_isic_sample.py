#!/usr/bin/env python
"""Build the embedded ISIC-2017 sample (``monai_mtt/data/sample/isic2017_sample/``) from the
ISIC 2017 training set resized to 256x256.

    python scripts/build_isic_sample.py --source ../shared/data/isic2017_256 [--out DIR]

The sample is a stratified subset of the 2000 official ISIC 2017 *training* images, split into four
disjoint parts, each in the layout the package's readers expect:

* ``ISIC-2017_Training_*``    labeled training part (images, Part 1 masks, Part 3 CSV);
* ``ISIC-Additional/``        classification-only part: images and a Part 3 CSV, masks withheld
                              (the ISIC additional set's role in the semi-supervised stream);
* ``ISIC-2017_Validation_*``  validation part, for model selection during training;
* ``ISIC-2017_Test_v2_*``     held-out test part, for the final evaluation.

Each part keeps the class proportions of the full training set (374 melanoma, 254 seborrheic
keratosis, 1372 nevus). Images are reduced 2x with a box filter (area average) and written as
baseline JPEG (quality 75, 4:2:0, no optimisation); masks are reduced with the same box filter and
thresholded at 128, written as 8-bit PNG with values {0, 255}. The selection depends only on the
sorted image ids and ``SEED``, so the same source and the same Pillow build give the same bytes;
``SHA256SUMS`` lists every file. ``--check`` rebuilds into a temporary folder and compares.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import sys
import tempfile
from pathlib import Path

from PIL import Image

from monai_mtt import CLASS_NAMES

SEED = 2017
SIZE = 128
JPEG_SETTINGS = {"format": "JPEG", "quality": 75, "subsampling": 2, "optimize": False, "progressive": False}
PNG_SETTINGS = {"format": "PNG", "compress_level": 9}
PARTS = {  # part -> number of images; classes follow the source proportions
    "Training": 290,
    "Additional": 145,
    "Validation": 40,
    "Test_v2": 80,
}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "monai_mtt" / "data" / "sample" / "isic2017_sample"
SOURCE_CSV = "ISIC-2017_Training_Part3_GroundTruth.csv"

LICENSE_TEXT = """\
ISIC 2017 sample embedded in monai_mtt
======================================

What: {total} dermoscopy images (and the segmentation masks of {with_masks} of them) from the
training set of the ISIC 2017 challenge "Skin Lesion Analysis Toward Melanoma Detection"
(Part 1: lesion segmentation, Part 3: lesion classification), with their official Part 3 labels.
Images and masks are reduced to {size}x{size} pixels from a published 256x256 copy of the
training set (aspect ratio not kept); see scripts/build_isic_sample.py in the monai_mtt repository,
which builds this folder deterministically and whose SHA256SUMS lists every file.

Parts (all images come from the official ISIC-2017 *training* set; the folder names only give each
part the official layout the readers expect, they are NOT the official validation or test sets):
{parts}

Licence: the ISIC 2017 challenge data are released under CC-0 (public domain dedication), by the
International Skin Imaging Collaboration (ISIC), https://challenge.isic-archive.com/data/

Please cite:
  Codella N, Gutman D, Celebi ME, Helba B, Marchetti MA, Dusza S, Kalloo A, Liopyris K, Mishra N,
  Kittler H, Halpern A. Skin Lesion Analysis Toward Melanoma Detection: A Challenge at the 2017
  International Symposium on Biomedical Imaging (ISBI), Hosted by the International Skin Imaging
  Collaboration (ISIC). arXiv:1710.05006, 2017.

Research and demonstration use only; not for clinical diagnosis.
"""


def read_classes(source: Path) -> dict[str, int]:
    """Official Part 3 labels of the source: image id -> 0 nevus, 1 melanoma, 2 keratosis."""
    classes = {}
    with open(source / SOURCE_CSV, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            mel, sk = float(row["melanoma"]), float(row["seborrheic_keratosis"])
            classes[row["image_id"]] = 1 if mel == 1.0 else (2 if sk == 1.0 else 0)
    return classes


def select(classes: dict[str, int]) -> dict[str, list[str]]:
    """Disjoint, class-stratified parts: part -> sorted image ids."""
    total = len(classes)
    by_class = {c: sorted(i for i, k in classes.items() if k == c) for c in range(3)}
    rng = random.Random(SEED)
    for c in range(3):
        rng.shuffle(by_class[c])
    taken = dict.fromkeys(range(3), 0)
    parts: dict[str, list[str]] = {}
    for part, n in PARTS.items():
        counts = {c: round(n * len(by_class[c]) / total) for c in (1, 2)}
        counts[0] = n - counts[1] - counts[2]
        ids = []
        for c in range(3):
            ids += by_class[c][taken[c] : taken[c] + counts[c]]
            taken[c] += counts[c]
        parts[part] = sorted(ids)
    return parts


def _save(image: Image.Image, path: Path, settings: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **settings)


def _write_csv(path: Path, ids: list[str], classes: dict[str, int]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write("image_id,melanoma,seborrheic_keratosis\n")
        for i in ids:
            f.write(f"{i},{float(classes[i] == 1)},{float(classes[i] == 2)}\n")


def build(source: Path, out: Path) -> Path:
    """Write the sample into ``out`` (which must be empty or absent); returns ``out``."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; remove it first (the build never overwrites files)")
    classes = read_classes(source)
    parts = select(classes)
    out.mkdir(parents=True, exist_ok=True)
    for part, ids in parts.items():
        if part == "Additional":
            image_dir, mask_dir = out / "ISIC-Additional", None
            csv_path = out / "ISIC-Additional" / "ISIC-Additional_Part3_GroundTruth.csv"
        else:
            image_dir = out / f"ISIC-2017_{part}_Data"
            mask_dir = out / f"ISIC-2017_{part}_Part1_GroundTruth"
            csv_path = out / f"ISIC-2017_{part}_Part3_GroundTruth.csv"
        for i in ids:
            with Image.open(source / "ISIC-2017_Training_Data" / f"{i}.jpg") as im:
                small_rgb = im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BOX)
            _save(small_rgb, image_dir / f"{i}.jpg", JPEG_SETTINGS)
            if mask_dir is not None:
                with Image.open(source / "ISIC-2017_Training_Part1_GroundTruth" / f"{i}_segmentation.png") as m:
                    small = m.convert("L").resize((SIZE, SIZE), Image.Resampling.BOX)
                _save(small.point(lambda v: 255 if v >= 128 else 0), mask_dir / f"{i}_segmentation.png", PNG_SETTINGS)
        _write_csv(csv_path, ids, classes)
    lines = []
    for part, ids in parts.items():
        counts = [sum(classes[i] == c for i in ids) for c in range(3)]
        where = "ISIC-Additional/ (no masks)" if part == "Additional" else f"ISIC-2017_{part}_*"
        lines.append(
            f"  {where:<32} {len(ids):>4} images: "
            + ", ".join(f"{n} {name}" for n, name in zip(counts, CLASS_NAMES))
        )
    (out / "LICENSE.txt").write_text(
        LICENSE_TEXT.format(
            total=sum(map(len, parts.values())),
            with_masks=sum(len(v) for k, v in parts.items() if k != "Additional"),
            size=SIZE,
            parts="\n".join(lines),
        ),
        encoding="utf-8",
    )
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (out / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}\n" for p in files),
        encoding="utf-8",
    )
    return out


def compare(a: Path, b: Path) -> list[str]:
    """Relative paths whose bytes differ between two folders (or exist in only one)."""
    def listing(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*")
            if p.is_file()
        }

    la, lb = listing(a), listing(b)
    return sorted(k for k in la.keys() | lb.keys() if la.get(k) != lb.get(k))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, required=True, help="the 256x256 ISIC 2017 training set (official layout)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--check", action="store_true", help="rebuild into a temporary folder and compare with --out")
    args = parser.parse_args(argv)
    if not (args.source / SOURCE_CSV).is_file():
        parser.error(
            f"--source {args.source} lacks {SOURCE_CSV}; give the folder holding the ISIC-2017_Training_* entries"
        )
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            rebuilt = build(args.source, Path(tmp) / "sample")
            differ = compare(args.out, rebuilt)
        print(f"{len(differ)} file(s) differ" + (": " + ", ".join(differ[:10]) if differ else ""))
        return 1 if differ else 0
    build(args.source, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
