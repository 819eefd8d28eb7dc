"""Reader for the ISIC 2017 challenge data set in its official folder layout.

Layout (one set of three entries per split, ``Split`` in ``Training``, ``Validation``, ``Test_v2``)::

    ISIC-2017_{Split}_Data/ISIC_xxxxxxx.jpg
    ISIC-2017_{Split}_Part1_GroundTruth/ISIC_xxxxxxx_segmentation.png
    ISIC-2017_{Split}_Part3_GroundTruth.csv        image_id,melanoma,seborrheic_keratosis

``*_superpixels.png`` files, hidden files and non-image files (e.g. ``*_metadata.csv``) inside the
data folders are ignored. Class index: 0 nevus, 1 melanoma, 2 seborrheic keratosis.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from monai_mtt.data.validation import (
    DataProblem,
    index_images,
    raise_for_problems,
    real_path,
    rows_without_images,
    validate_items,
)
from monai_mtt.keys import BatchKeys

__all__ = ["ISIC2017_SPLITS", "find_isic2017_root", "read_part3_csv", "read_isic2017"]

ISIC2017_SPLITS = {"Training": "train", "Validation": "val", "Test_v2": "test"}
"""Official split folder names -> datalist split keys."""

_EXPECTED_LAYOUT = (
    "ISIC-2017_{Split}_Data/ (images ISIC_xxxxxxx.jpg), ISIC-2017_{Split}_Part1_GroundTruth/ "
    "(masks ISIC_xxxxxxx_segmentation.png) and ISIC-2017_{Split}_Part3_GroundTruth.csv, "
    "with Split one of Training, Validation, Test_v2"
)


def _has_layout(folder: Path) -> bool:
    return any((folder / f"ISIC-2017_{split}_Data").is_dir() for split in ISIC2017_SPLITS)


def find_isic2017_root(root: str | Path, search_children: bool = True) -> Path | None:
    """Locate the folder that holds the ``ISIC-2017_*`` entries.

    Accepts the folder itself, one of its ``ISIC-2017_*_Data`` folders, or a wrapper folder
    containing exactly one such folder one level down (as zip extractions often produce).

    Args:
        root: user-supplied path.
        search_children: also look one level down.

    Returns:
        The folder holding the layout, or None when none (or more than one candidate) is found.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    if _has_layout(root):
        return root
    if root.name.startswith("ISIC-2017_") and _has_layout(root.parent):
        return root.parent
    if not search_children:
        return None
    candidates = [child for child in sorted(root.iterdir()) if child.is_dir() and _has_layout(child)]
    return candidates[0] if len(candidates) == 1 else None


def _parse_flag(value: str) -> float | None:
    try:
        flag = float(value)
    except (TypeError, ValueError):
        return None
    return flag if flag in (0.0, 1.0) else None


def read_part3_csv(path: str | Path) -> tuple[dict[str, int], list[DataProblem], set[str]]:
    """Read an ISIC 2017 Part 3 ground-truth CSV (``image_id,melanoma,seborrheic_keratosis``).

    Args:
        path: the CSV file.

    Returns:
        ``(classes, problems, rejected)``: ``classes`` maps image id to class index (0 nevus,
        1 melanoma, 2 seborrheic keratosis) for every valid row; ``problems`` lists bad rows (both
        flags set, values other than 0/1, duplicate ids) and a missing/unreadable file or header;
        ``rejected`` holds the ids whose row was bad (so callers do not also call them unlabelled).
    """
    path = Path(path)
    classes: dict[str, int] = {}
    problems: list[DataProblem] = []
    rejected: set[str] = set()
    fix_row = "correct the row from the official ground-truth file (flags are 0.0 or 1.0; nevus = both 0)"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [name.strip() for name in (reader.fieldnames or [])]
            missing = [c for c in ("image_id", "melanoma", "seborrheic_keratosis") if c not in fields]
            if missing:
                return (
                    {},
                    [
                        DataProblem(
                            str(path),
                            f"label CSV lacks column(s) {', '.join(missing)} (found: {', '.join(fields) or 'nothing'})",
                            "use the official Part 3 CSV with header image_id,melanoma,seborrheic_keratosis",
                        )
                    ],
                    rejected,
                )
            reader.fieldnames = fields
            for line, row in enumerate(reader, start=2):
                case_id = (row.get("image_id") or "").strip()
                if not case_id:
                    problems.append(DataProblem(f"{path}:{line}", "row has an empty image_id", fix_row))
                    continue
                mel, sk = _parse_flag(row.get("melanoma", "")), _parse_flag(row.get("seborrheic_keratosis", ""))
                if mel is None or sk is None:
                    problems.append(
                        DataProblem(
                            f"{path}:{line}",
                            f"{case_id}: melanoma={row.get('melanoma')!r}, seborrheic_keratosis="
                            f"{row.get('seborrheic_keratosis')!r} are not both 0/1",
                            fix_row,
                        )
                    )
                    rejected.add(case_id)
                    continue
                if mel == 1.0 and sk == 1.0:
                    problems.append(
                        DataProblem(
                            f"{path}:{line}",
                            f"{case_id} is labelled both melanoma and seborrheic keratosis",
                            "the classes are exclusive: " + fix_row,
                        )
                    )
                    rejected.add(case_id)
                    continue
                if case_id in classes:
                    problems.append(
                        DataProblem(
                            f"{path}:{line}",
                            f"duplicate label row for {case_id}",
                            "keep exactly one row per image id",
                        )
                    )
                    continue
                classes[case_id] = 1 if mel == 1.0 else (2 if sk == 1.0 else 0)
    except FileNotFoundError:
        return (
            {},
            [
                DataProblem(
                    str(path),
                    "label CSV is missing",
                    f"download {path.name} from the ISIC 2017 challenge and put it next to the data folder",
                )
            ],
            rejected,
        )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return {}, [DataProblem(str(path), f"label CSV cannot be read ({exc})", "restore the original CSV")], rejected
    return classes, problems, rejected


def _read_split(root: Path, split: str, problems: list[DataProblem]) -> list[dict]:
    data_dir = root / f"ISIC-2017_{split}_Data"
    mask_dir = root / f"ISIC-2017_{split}_Part1_GroundTruth"
    csv_path = root / f"ISIC-2017_{split}_Part3_GroundTruth.csv"

    images = index_images(sorted(data_dir.iterdir()), problems)
    if not images:
        problems.append(
            DataProblem(
                str(data_dir),
                "image folder is empty (no .jpg/.png/.bmp/.tif images)",
                f"extract ISIC-2017_{split}_Data.zip here, or remove the empty folder",
            )
        )
    if not mask_dir.is_dir():
        problems.append(
            DataProblem(
                str(mask_dir),
                "segmentation ground-truth folder is missing",
                f"extract ISIC-2017_{split}_Part1_GroundTruth.zip next to {data_dir.name}",
            )
        )
    classes, csv_problems, rejected = read_part3_csv(csv_path)
    problems += csv_problems
    csv_ok = csv_path.is_file() and not any(p.path == str(csv_path) for p in csv_problems)

    items = []
    for case_id, image in images.items():
        item: dict = {BatchKeys.IMAGE: str(image.resolve()), "id": case_id}
        if mask_dir.is_dir():  # a missing folder is reported once above, not once per image
            item[BatchKeys.LABEL] = real_path(mask_dir / f"{case_id}_segmentation.png")
        if case_id in classes:
            item[BatchKeys.CLASS] = classes[case_id]
        elif csv_ok and case_id not in rejected:
            problems.append(
                DataProblem(str(image), f"image has no row in {csv_path.name}", "add its row or remove the image")
            )
        items.append(item)
    if csv_ok and images:
        problems.extend(rows_without_images(classes, images, csv_path, f"in {data_dir.name}"))
    return items


def read_isic2017(
    root: str | Path,
    splits: Sequence[str] = ("Training", "Validation", "Test_v2"),
    validate: bool = True,
    check_pixels: bool = True,
) -> dict[str, list[dict]]:
    """Read an ISIC 2017 data set (Part 1 masks + Part 3 classes) into a datalist.

    Args:
        root: the folder holding the ``ISIC-2017_*`` entries (or see :func:`find_isic2017_root`).
        splits: official split names to read; those absent on disk are skipped.
        validate: collect structural problems and check every file (see
            :mod:`monai_mtt.data.validation`); when False, nothing is checked and items lacking a
            label row simply have no ``"class"``.
        check_pixels: with ``validate``, fully decode images and masks (slower; finds truncation
            and non-binary masks).

    Returns:
        Split key (``"train"``, ``"val"``, ``"test"``) -> list of items with ``"image"``,
        ``"label"``, ``"class"`` and ``"id"``, sorted by id.

    Raises:
        DataValidationError: wrong root, or (with ``validate``) every problem found.
        ValueError: an unknown split name.
    """
    unknown = [s for s in splits if s not in ISIC2017_SPLITS]
    if unknown:
        raise ValueError(f"unknown ISIC 2017 split(s) {unknown}; choose from {list(ISIC2017_SPLITS)}")
    found = find_isic2017_root(root)
    present = [s for s in splits if found is not None and (found / f"ISIC-2017_{s}_Data").is_dir()]
    if found is None or not present:
        raise_for_problems(
            [
                DataProblem(
                    str(root),
                    f"no ISIC 2017 layout found for split(s) {', '.join(splits)}; expected {_EXPECTED_LAYOUT}",
                    "point the root at the folder that contains the ISIC-2017_* folders and CSVs",
                )
            ],
            "ISIC 2017 data set",
        )
    assert found is not None
    problems: list[DataProblem] = []
    datalist = {ISIC2017_SPLITS[s]: _read_split(found, s, problems) for s in present}
    if validate:
        problems += validate_items([item for items in datalist.values() for item in items], check_pixels=check_pixels)
        raise_for_problems(problems, f"ISIC 2017 data set at {found}")
    return datalist
