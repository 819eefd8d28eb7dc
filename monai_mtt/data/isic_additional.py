"""Reader for classification-only ISIC images (no segmentation masks).

Two label formats are accepted:

* an ISIC 2017 Part 3 CSV (``image_id,melanoma,seborrheic_keratosis``), as written by
  :func:`monai_mtt.data.synthetic.make_synthetic_isic` for ``ISIC-Additional/``;
* the ISIC archive metadata CSV (columns ``isic_id`` and ``diagnosis``, e.g. ``"nevus"``,
  ``"melanoma"``, ``"seborrheic keratosis"``).

Archive rows whose diagnosis is none of the three classes (basal cell carcinoma, lentigo, blank,
...) are *skipped, not reported as problems*: the archive legitimately holds many other
diagnoses and this model has no class for them. The skipped ids are listed, grouped by diagnosis,
in a ``logging`` warning, and ``on_other_diagnosis="error"`` turns them into problems instead.

Images are searched recursively under the folder (hidden files and ``*_superpixels.png`` ignored);
an image's id is its file stem. Items carry ``"image"``, ``"class"`` and ``"id"`` but no ``"label"``.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from pathlib import Path
from typing import Literal

from monai_mtt.data.isic2017 import read_part3_csv
from monai_mtt.data.validation import (
    DataProblem,
    index_images,
    raise_for_problems,
    rows_without_images,
    validate_items,
)
from monai_mtt.keys import BatchKeys

__all__ = ["ARCHIVE_DIAGNOSES", "read_archive_metadata_csv", "find_label_csv", "read_isic_additional"]

logger = logging.getLogger(__name__)

ARCHIVE_DIAGNOSES = {"nevus": 0, "melanoma": 1, "seborrheic keratosis": 2}
"""ISIC archive ``diagnosis`` values (normalised: lower case, ``_`` as space) -> class index."""


def read_archive_metadata_csv(
    path: str | Path,
) -> tuple[dict[str, int], dict[str, list[str]], list[DataProblem]]:
    """Read an ISIC archive metadata CSV (``isic_id``, ``diagnosis``).

    Args:
        path: the CSV file.

    Returns:
        ``(classes, others, problems)``: ``classes`` maps id to class index for the three known
        diagnoses; ``others`` maps every other diagnosis (``""`` for blank) to its ids; ``problems``
        lists missing columns and duplicate ids.
    """
    path = Path(path)
    classes: dict[str, int] = {}
    others: dict[str, list[str]] = defaultdict(list)
    problems: list[DataProblem] = []
    seen: set[str] = set()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [name.strip() for name in (reader.fieldnames or [])]
            missing = [c for c in ("isic_id", "diagnosis") if c not in fields]
            if missing:
                return (
                    {},
                    {},
                    [
                        DataProblem(
                            str(path),
                            f"metadata CSV lacks column(s) {', '.join(missing)} (found: {', '.join(fields)})",
                            "export the metadata from the ISIC archive with isic_id and diagnosis columns",
                        )
                    ],
                )
            reader.fieldnames = fields
            for line, row in enumerate(reader, start=2):
                case_id = (row.get("isic_id") or "").strip()
                if not case_id:
                    continue
                if case_id in seen:
                    problems.append(
                        DataProblem(f"{path}:{line}", f"duplicate row for {case_id}", "keep one row per isic_id")
                    )
                    continue
                seen.add(case_id)
                diagnosis = " ".join((row.get("diagnosis") or "").strip().lower().replace("_", " ").split())
                if diagnosis in ARCHIVE_DIAGNOSES:
                    classes[case_id] = ARCHIVE_DIAGNOSES[diagnosis]
                else:
                    others[diagnosis].append(case_id)
    except FileNotFoundError:
        return {}, {}, [DataProblem(str(path), "metadata CSV is missing", "give the path of the CSV")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return {}, {}, [DataProblem(str(path), f"CSV cannot be read ({exc})", "restore the original CSV")]
    return classes, dict(others), problems


def find_label_csv(root: Path) -> tuple[Path | None, list[DataProblem]]:
    """Find the single ``*.csv`` label file directly inside ``root``.

    Args:
        root: the image folder.

    Returns:
        ``(csv_path, problems)``; ``csv_path`` is None with a problem when there is none or several.
    """
    found = sorted(p for p in root.glob("*.csv") if not p.name.startswith("."))
    if len(found) == 1:
        return found[0], []
    what = "no label CSV" if not found else f"{len(found)} CSV files ({', '.join(p.name for p in found)})"
    return None, [
        DataProblem(
            str(root),
            f"{what} in the folder; expected one Part 3 CSV (image_id,melanoma,seborrheic_keratosis) "
            "or ISIC archive metadata CSV (isic_id,diagnosis)",
            "put exactly one label CSV next to the images, or pass its path explicitly",
        )
    ]


def _csv_kind(path: Path) -> str:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return "part3"  # let the Part 3 reader report the failure
    return "archive" if "isic_id" in [h.strip() for h in header] else "part3"


def read_isic_additional(
    root: str | Path,
    labels_csv: str | Path | None = None,
    validate: bool = True,
    check_pixels: bool = True,
    on_other_diagnosis: Literal["skip", "error"] = "skip",
) -> list[dict]:
    """Read a classification-only image folder with its labels.

    Args:
        root: folder with the images (searched recursively), or the label CSV itself, in which
            case the images are searched under the CSV's folder.
        labels_csv: the label CSV; by default the single ``*.csv`` directly inside ``root``.
        validate: collect problems (image without label row, row without image, bad rows,
            unreadable images, duplicate ids) and raise them all; when False, unlabelled images
            are skipped silently.
        check_pixels: with ``validate``, fully decode every image.
        on_other_diagnosis: archive rows with another diagnosis are ``"skip"``-ped (logged) or
            reported as problems (``"error"``).

    Returns:
        Items with ``"image"``, ``"class"`` and ``"id"``, sorted by id.

    Raises:
        DataValidationError: with ``validate``, every problem found; always for a missing folder.
    """
    root = Path(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        labels_csv, root = root, root.parent
    what = f"classification-only image set at {root}"
    if not root.is_dir():
        raise_for_problems(
            [
                DataProblem(
                    str(root),
                    "folder does not exist; expected a folder of images with one label CSV",
                    "give the folder holding the images and their CSV",
                )
            ],
            what,
        )
    problems: list[DataProblem] = []
    if labels_csv is None:
        labels_csv, csv_problems = find_label_csv(root)
        problems += csv_problems
    classes: dict[str, int] = {}
    others: dict[str, list[str]] = {}
    rejected: set[str] = set()
    if labels_csv is not None:
        labels_csv = Path(labels_csv)
        if _csv_kind(labels_csv) == "archive":
            classes, others, csv_problems = read_archive_metadata_csv(labels_csv)
        else:
            classes, csv_problems, rejected = read_part3_csv(labels_csv)
        problems += csv_problems
    skipped = {case_id for ids in others.values() for case_id in ids}

    images = index_images(sorted(root.rglob("*")), problems)
    if not images:
        problems.append(DataProblem(str(root), "no images found in the folder", "put the images here"))

    items: list[dict] = []
    labels_ok = labels_csv is not None and not any(p.path == str(labels_csv) for p in problems)
    for case_id, image in images.items():
        if case_id in skipped:
            continue
        if case_id in classes:
            items.append({BatchKeys.IMAGE: str(image.resolve()), BatchKeys.CLASS: classes[case_id], "id": case_id})
        elif labels_ok and labels_csv and case_id not in rejected:
            problems.append(
                DataProblem(str(image), f"image has no row in {labels_csv.name}", "add its row or remove the image")
            )
    if labels_ok and labels_csv and images:
        problems.extend(rows_without_images(classes, images, labels_csv, f"under {root}"))
    present_others = {d: [i for i in ids if i in images] for d, ids in others.items()}
    present_others = {d: ids for d, ids in present_others.items() if ids}
    if present_others:
        listing = "; ".join(
            f"{d or '(blank)'}: {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
            for d, ids in sorted(present_others.items())
        )
        if on_other_diagnosis == "error":
            problems.append(
                DataProblem(
                    str(labels_csv),
                    f"images with a diagnosis outside nevus/melanoma/seborrheic keratosis: {listing}",
                    "remove them, or read with on_other_diagnosis='skip'",
                )
            )
        else:
            logger.warning(
                "%s: skipped %d image(s) whose diagnosis is not nevus/melanoma/seborrheic keratosis: %s",
                labels_csv,
                sum(len(v) for v in present_others.values()),
                listing,
            )
    if validate:
        problems += validate_items(items, check_pixels=check_pixels)
        raise_for_problems(problems, what)
    return items
