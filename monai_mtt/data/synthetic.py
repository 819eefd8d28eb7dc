"""Synthetic dermoscopy-like data set in the official ISIC 2017 layout (the bundle's default data).

:func:`make_synthetic_isic` writes::

    ISIC-2017_Training_Data/SYN_xxxxxxx.jpg                      n_train images, size x size
    ISIC-2017_Training_Part1_GroundTruth/SYN_xxxxxxx_segmentation.png
    ISIC-2017_Training_Part3_GroundTruth.csv
    ISIC-2017_Validation_Data/...                                 n_val images, size x int(1.25 size)
    ISIC-2017_Validation_Part1_GroundTruth/...                    (height x width; non-square on
    ISIC-2017_Validation_Part3_GroundTruth.csv                     purpose, to catch axis-order bugs)
    ISIC-Additional/SYN_xxxxxxx.jpg + ISIC-Additional_Part3_GroundTruth.csv   n_unlabeled, no masks
    synthetic.json                                                parameters + SHA-256 of every file

so :func:`~monai_mtt.data.isic2017.read_isic2017` and
:func:`~monai_mtt.data.isic_additional.read_isic_additional` read it like the real thing.

Images: a skin-tone background with vignetting, low- and high-frequency texture and noise; one
lesion whose border is a polar radius perturbed by random harmonics; a few dark curved hairs drawn
over everything (not part of the mask, as in ISIC annotations). Classes are made learnable by a
small network:

* nevus (0): small, round, regular, uniformly brown with a darker centre;
* melanoma (1): large, irregular border, multi-coloured (black, blue-grey, dark and light brown);
* seborrheic keratosis (2): elongated, lighter tan/yellowish, waxy ridged texture with bright
  milia-like dots.

Masks are 8-bit PNG with exactly the lesion's pixels at 255 and the rest 0. Classes are balanced
(counts differ by at most one) and shuffled. Output is deterministic for a given seed (same bytes
on the same Pillow/libjpeg), and the call is idempotent: a complete set with the same parameters
(checked against the manifest's hashes) is left untouched.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SYNTHETIC_MANIFEST", "make_synthetic_isic", "synthetic_lesion"]

SYNTHETIC_MANIFEST = "synthetic.json"
logger = logging.getLogger(__name__)
_FORMAT_VERSION = 1
_ADDITIONAL = "ISIC-Additional"


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Band-limited noise, roughly in [-2, 2], with about ``cells`` blobs across the image."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC))


def synthetic_lesion(rng: np.random.Generator, height: int, width: int, cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic dermoscopy image and its lesion mask.

    Args:
        rng: random generator (consumed deterministically).
        height: image height in pixels.
        width: image width in pixels.
        cls: 0 nevus, 1 melanoma, 2 seborrheic keratosis.

    Returns:
        ``(image, mask)``: uint8 arrays of shape ``(height, width, 3)`` and ``(height, width)``
        with mask values 0/255.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    side = float(min(height, width))

    # skin: tone, vignetting, texture, noise
    tone = np.array([rng.uniform(200, 235), rng.uniform(150, 185), rng.uniform(120, 155)], np.float32)
    radial = np.sqrt(((yy - (height - 1) / 2) / (height / 2)) ** 2 + ((xx - (width - 1) / 2) / (width / 2)) ** 2)
    vignette = 1.0 - rng.uniform(0.25, 0.45) * np.clip(radial, 0, 1.6) ** 2
    texture = 1.0 + 0.04 * _smooth_noise(rng, height, width, 6) + 0.02 * _smooth_noise(rng, height, width, 24)
    image = tone * texture[..., None]

    # lesion geometry: polar radius with random harmonics, rotated and stretched
    radius_range, aspect_range, harmonics, amplitude = {
        0: ((0.15, 0.21), (1.0, 1.15), range(2, 5), 0.03),
        1: ((0.24, 0.30), (1.0, 1.3), range(2, 10), 0.09),
        2: ((0.17, 0.22), (1.4, 1.7), range(2, 6), 0.05),
    }[cls]
    cy = (height - 1) / 2 + rng.normal(0, 0.05) * height
    cx = (width - 1) / 2 + rng.normal(0, 0.05) * width
    base = rng.uniform(*radius_range) * side
    aspect = rng.uniform(*aspect_range)
    angle = rng.uniform(0, np.pi)
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / aspect
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    perturbation = np.zeros_like(theta)
    for k in harmonics:
        perturbation += rng.uniform(0.3, 1.0) * amplitude * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    t = rho / (base * (1.0 + perturbation))  # 0 at the centre, 1 on the border
    mask = t <= 1.0

    # lesion colour per class
    blobs_a = _smooth_noise(rng, height, width, 5)
    blobs_b = _smooth_noise(rng, height, width, 7)
    if cls == 0:
        brown = np.array([150, 100, 70], np.float32) * rng.uniform(0.85, 1.1)
        lesion = brown * (0.8 + 0.2 * t[..., None]) * (1 + 0.03 * blobs_a[..., None])
    elif cls == 1:
        lesion = np.empty((height, width, 3), np.float32)
        lesion[:] = np.array([100, 62, 45], np.float32) * rng.uniform(0.85, 1.1)
        lesion[blobs_a > 0.4] = (35, 25, 25)  # black
        lesion[blobs_b > 0.6] = (85, 95, 128)  # blue-grey veil
        lesion[blobs_a < -0.7] = (165, 112, 80)  # light brown
        lesion *= 1 + 0.05 * blobs_b[..., None]
    else:
        tan = np.array([195, 160, 112], np.float32) * rng.uniform(0.92, 1.05)
        ridges = np.sin(0.9 * (u * np.cos(1.0) + v * np.sin(1.0)) + 3.0 * blobs_a)
        lesion = tan * (1 + 0.12 * ridges[..., None] + 0.03 * blobs_b[..., None])
        for _ in range(int(rng.integers(3, 8))):  # milia-like cysts
            r = rng.uniform(0.0, 0.7)
            phi = rng.uniform(0, 2 * np.pi)
            py = cy + r * base * np.sin(phi)
            px = cx + r * base * aspect * np.cos(phi)
            dot = (yy - py) ** 2 + (xx - px) ** 2 <= rng.uniform(1.0, 2.5) ** 2
            lesion[dot] = (238, 228, 190)
    image = np.where(mask[..., None], lesion, image) * vignette[..., None]
    image += rng.normal(0, 3.0, image.shape).astype(np.float32)
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="RGB")

    # hairs: dark quadratic Bezier curves over everything
    draw = ImageDraw.Draw(pil)
    steps = np.linspace(0, 1, 40)[:, None]
    for _ in range(int(rng.integers(0, 5))):
        p0, p1, p2 = (rng.uniform((0, 0), (width, height)) for _ in range(3))
        curve = (1 - steps) ** 2 * p0 + 2 * (1 - steps) * steps * p1 + steps**2 * p2
        shade = int(rng.integers(25, 60))
        width_px = int(rng.integers(1, 3))
        draw.line([tuple(p) for p in curve.tolist()], fill=(shade, shade - 10, shade - 15), width=width_px)
    return np.asarray(pil), (mask * 255).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    else:
        Image.fromarray(array, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plan(n_train: int, n_val: int, n_unlabeled: int, size: int) -> list[dict]:
    """Every set: (name, data folder, mask folder or None, CSV path, ids, (height, width))."""
    sets, start = [], 0
    for name, count, data_dir, mask_dir, csv_name, shape in (
        (
            "Training",
            n_train,
            "ISIC-2017_Training_Data",
            "ISIC-2017_Training_Part1_GroundTruth",
            "ISIC-2017_Training_Part3_GroundTruth.csv",
            (size, size),
        ),
        (
            "Validation",
            n_val,
            "ISIC-2017_Validation_Data",
            "ISIC-2017_Validation_Part1_GroundTruth",
            "ISIC-2017_Validation_Part3_GroundTruth.csv",
            (size, int(size * 1.25)),
        ),
        (
            "Additional",
            n_unlabeled,
            _ADDITIONAL,
            None,
            f"{_ADDITIONAL}/{_ADDITIONAL}_Part3_GroundTruth.csv",
            (size, size),
        ),
    ):
        ids = [f"SYN_{start + i:07d}" for i in range(count)]
        start += count
        sets.append({"name": name, "data": data_dir, "masks": mask_dir, "csv": csv_name, "ids": ids, "shape": shape})
    return sets


def _planned_files(sets: list[dict]) -> list[str]:
    files = []
    for s in sets:
        files.append(s["csv"])
        for case_id in s["ids"]:
            files.append(f"{s['data']}/{case_id}.jpg")
            if s["masks"]:
                files.append(f"{s['masks']}/{case_id}_segmentation.png")
    return files


def _is_complete(root: Path, params: dict) -> bool:
    try:
        manifest = json.loads((root / SYNTHETIC_MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not manifest.get("complete") or manifest.get("params") != params:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_inside(root, rel) for rel in files):
        return False
    return all((root / rel).is_file() and _sha256(root / rel) == digest for rel, digest in files.items())


def _inside(root: Path, rel: object) -> bool:
    """A manifest entry is a relative path of a generated file (image or CSV) that stays inside ``root``.

    A crafted or corrupt manifest (``../x``, an absolute path, a link out of the folder) is never
    followed: those entries are ignored (logged), so nothing outside the folder is read or deleted.
    """
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in Path(rel).parts:
        return False
    if Path(rel).suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".csv"):
        return False
    real_root = root.resolve()
    real = (root / rel).resolve()
    return real != real_root and real_root in real.parents


def _remove_previous(root: Path) -> None:
    """Delete the files an earlier (interrupted or different) generation planned, then empty folders.

    Only entries that pass :func:`_inside` are touched.
    """
    try:
        manifest = json.loads((root / SYNTHETIC_MANIFEST).read_text())
        previous = list(manifest.get("files", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        previous = []
    outside = [rel for rel in previous if not _inside(root, rel)]
    if outside:
        manifest_path = root / SYNTHETIC_MANIFEST
        logger.warning(f"{manifest_path}: ignoring {len(outside)} entries outside the folder: {outside[:5]}")
    previous = [rel for rel in previous if rel not in outside]
    for rel in previous:
        path = root / rel
        if path.is_file():
            path.unlink()
    for folder in sorted({(root / rel).parent for rel in previous}, reverse=True):
        if folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _write_manifest(root: Path, content: dict) -> None:
    tmp = root / f".{SYNTHETIC_MANIFEST}.tmp"
    tmp.write_text(json.dumps(content, indent=1, sort_keys=True))
    os.replace(tmp, root / SYNTHETIC_MANIFEST)


def make_synthetic_isic(
    root: str | Path,
    n_train: int = 48,
    n_val: int = 12,
    n_unlabeled: int = 48,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write (or reuse) a synthetic ISIC-2017-layout data set under ``root``.

    Args:
        root: output folder; created if needed. It must be empty or hold an earlier synthetic set
            (recognised by its ``synthetic.json``), which is replaced when its parameters differ
            or its files changed.
        n_train: training images (with masks).
        n_val: validation images (with masks), ``size`` high and ``int(1.25 * size)`` wide.
        n_unlabeled: classification-only images in ``ISIC-Additional/`` (no masks).
        size: image height (and training/additional width) in pixels; at least 32.
        seed: random seed; the same seed gives byte-identical files.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: invalid sizes or counts.
        FileExistsError: ``root`` is a non-empty folder without a synthetic manifest.
    """
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    if min(n_train, n_val, n_unlabeled) < 0 or n_train + n_val == 0:
        raise ValueError("counts must be non-negative, with at least one training or validation image")
    root = Path(root)
    params = {"n_train": n_train, "n_val": n_val, "n_unlabeled": n_unlabeled, "size": size, "seed": seed}
    if _is_complete(root, params):
        return root
    root.mkdir(parents=True, exist_ok=True)
    if not (root / SYNTHETIC_MANIFEST).is_file() and any(root.iterdir()):
        raise FileExistsError(
            f"refusing to write synthetic data into non-empty folder {root}: it has no {SYNTHETIC_MANIFEST}, "
            "so it was not made by make_synthetic_isic. Choose an empty or new folder."
        )
    _remove_previous(root)
    sets = [dict(s, index=i) for i, s in enumerate(_plan(n_train, n_val, n_unlabeled, size)) if s["ids"]]
    manifest: dict[str, Any] = {
        "generator": "monai_mtt.data.synthetic.make_synthetic_isic",
        "format_version": _FORMAT_VERSION,
        "params": params,
        "complete": False,
        "files": dict.fromkeys(_planned_files(sets), ""),
    }
    _write_manifest(root, manifest)  # marks the folder as ours before anything else is written

    for s in sets:
        set_index = s["index"]  # stable even when an earlier set is empty
        order_rng = np.random.default_rng(np.random.SeedSequence([seed, set_index]))
        classes = order_rng.permutation(np.arange(len(s["ids"])) % 3).tolist()
        (root / s["data"]).mkdir(parents=True, exist_ok=True)
        if s["masks"]:
            (root / s["masks"]).mkdir(parents=True, exist_ok=True)
        rows = []
        for index, (case_id, cls) in enumerate(zip(s["ids"], classes)):
            rng = np.random.default_rng(np.random.SeedSequence([seed, set_index, index]))
            image, mask = synthetic_lesion(rng, s["shape"][0], s["shape"][1], int(cls))
            files = {f"{s['data']}/{case_id}.jpg": _encode(image, "JPEG")}
            if s["masks"]:
                files[f"{s['masks']}/{case_id}_segmentation.png"] = _encode(mask, "PNG")
            for rel, data in files.items():
                (root / rel).write_bytes(data)
                manifest["files"][rel] = hashlib.sha256(data).hexdigest()
            rows.append((case_id, "1.0" if cls == 1 else "0.0", "1.0" if cls == 2 else "0.0"))
        csv_path = root / s["csv"]
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("image_id", "melanoma", "seborrheic_keratosis"))
            writer.writerows(rows)
        manifest["files"][s["csv"]] = _sha256(csv_path)
    manifest["complete"] = True
    _write_manifest(root, manifest)
    return root
