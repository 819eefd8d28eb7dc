"""One entry point for every supported data source: :func:`load_datalist`.

``dataset_dir`` may be

* an ISIC 2017 root (official layout, see :mod:`monai_mtt.data.isic2017`),
* a PH2 root (see :mod:`monai_mtt.data.ph2`; all cases come back as ``"train"``, use
  :func:`~monai_mtt.data.folds.assign_folds` / :func:`~monai_mtt.data.folds.fold_split`),
* a MONAI-style datalist JSON file (split -> list of items; relative ``"image"``/``"label"``
  paths are resolved against the JSON's folder; ``training``/``validation``/``testing`` keys are
  accepted as ``train``/``val``/``test``; non-list top-level entries such as ``"name"`` are ignored),
* ``None`` or ``""``: the ISIC-2017 sample embedded in the package
  (:func:`~monai_mtt.data.embedded.isic2017_sample_root`).

Returned splits: ``"train"``, ``"val"`` and ``"test"`` where present, plus ``"unlabeled"`` (the
classification-only images from ``unlabeled_dir``, or the embedded sample's ``ISIC-Additional`` part). No
validation split is invented when the source has none; :func:`split_validation` is offered for the
caller to make one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from monai_mtt.data.embedded import ISIC2017_SAMPLE_ADDITIONAL, isic2017_sample_root
from monai_mtt.data.folds import shuffled_strata
from monai_mtt.data.isic2017 import find_isic2017_root, read_isic2017
from monai_mtt.data.isic_additional import read_isic_additional
from monai_mtt.data.ph2 import PH2_IMAGES_FOLDER, find_ph2_root, read_ph2
from monai_mtt.data.validation import DataProblem, raise_for_problems, validate_items
from monai_mtt.keys import BatchKeys

__all__ = [
    "SPLIT_ALIASES",
    "read_datalist_json",
    "load_datalist",
    "split_validation",
    "training_datalists",
    "evaluation_items",
]

SPLIT_ALIASES = {"training": "train", "validation": "val", "testing": "test"}
"""MONAI/Decathlon split names -> this package's split names."""


def read_datalist_json(path: str | Path, validate: bool = True, check_pixels: bool = True) -> dict[str, list[dict]]:
    """Read a datalist JSON (split -> items), resolving relative paths against its folder.

    Args:
        path: the JSON file.
        validate: check every referenced file (see :func:`~monai_mtt.data.validation.validate_items`).
        check_pixels: with ``validate``, fully decode images and masks.

    Returns:
        Split -> items, with absolute ``"image"``/``"label"`` paths and split aliases normalised.

    Raises:
        DataValidationError: unreadable JSON, wrong structure, or (with ``validate``) file problems.
    """
    path = Path(path)
    what = f"datalist {path}"
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise_for_problems(
            [
                DataProblem(
                    str(path), f"datalist JSON cannot be read ({exc})", "fix or regenerate it with `monai-mtt prepare`"
                )
            ],
            what,
        )
    if not isinstance(content, dict):
        raise_for_problems(
            [DataProblem(str(path), "datalist JSON is not an object of split -> list of items", "regenerate it")], what
        )
    problems: list[DataProblem] = []
    datalist: dict[str, list[dict]] = {}
    base = path.parent
    for split, items in content.items():
        if not isinstance(items, list):
            continue  # metadata such as "name", "description", "labels"
        key = SPLIT_ALIASES.get(split, split)
        resolved = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or BatchKeys.IMAGE not in item:
                problems.append(
                    DataProblem(
                        f"{path}:{split}[{index}]", "item is not an object with an 'image' path", "fix the entry"
                    )
                )
                continue
            item = dict(item)
            for field in (BatchKeys.IMAGE, BatchKeys.LABEL):
                if isinstance(item.get(field), str):
                    item[field] = str((base / item[field]).resolve())
            resolved.append(item)
        datalist[key] = resolved
    if not datalist and not problems:
        problems.append(
            DataProblem(str(path), "datalist JSON holds no split lists", "regenerate it with `monai-mtt prepare`")
        )
    if validate:
        problems += validate_items([i for items in datalist.values() for i in items], check_pixels=check_pixels)
    raise_for_problems(problems, what)
    return datalist


def _detect(folder: Path) -> str | None:
    if find_isic2017_root(folder, search_children=False) is not None:
        return "isic2017"
    if find_ph2_root(folder, search_children=False) is not None:
        return "ph2"
    return None


def _read_folder(source: Path, validate: bool, check_pixels: bool) -> dict[str, list[dict]]:
    kind = _detect(source) if source.is_dir() else None
    if kind is None and source.is_dir():
        found = [(child, _detect(child)) for child in sorted(source.iterdir()) if child.is_dir()]
        found = [(child, k) for child, k in found if k is not None]
        if len(found) > 1:
            raise_for_problems(
                [
                    DataProblem(
                        str(source),
                        "several data sets found one level down: " + ", ".join(f"{c.name} ({k})" for c, k in found),
                        "point the dataset path at one of them",
                    )
                ],
                "dataset",
            )
        if found:
            source, kind = found[0]
    if kind == "isic2017":
        return read_isic2017(source, validate=validate, check_pixels=check_pixels)
    if kind == "ph2":
        return {"train": read_ph2(source, validate=validate, check_pixels=check_pixels)}
    if not source.exists():
        state = "does not exist"
    elif source.is_dir() and not any(source.iterdir()):
        state = "is an empty folder"
    else:
        state = "has no recognised layout"
    raise_for_problems(
        [
            DataProblem(
                str(source),
                f"dataset path {state}; looked for an ISIC 2017 root (ISIC-2017_{{Training,Validation,Test_v2}}_Data/ "
                f"with _Part1_GroundTruth/ and _Part3_GroundTruth.csv), a PH2 root ('{PH2_IMAGES_FOLDER}/' "
                "with PH2_dataset.txt/.xlsx or ph2_labels.csv) or a datalist .json file",
                "point it at one of those, or leave it empty to use the embedded ISIC-2017 sample",
            )
        ],
        "dataset",
    )
    raise AssertionError("unreachable")


def load_datalist(
    dataset_dir: str | Path | None,
    unlabeled_dir: str | Path | None = None,
    validate: bool = True,
    check_pixels: bool = True,
) -> dict[str, list[dict]]:
    """Build the datalist for any supported source, detecting its layout.

    Args:
        dataset_dir: ISIC 2017 root, PH2 root, datalist JSON, or None/``""`` for the embedded
            ISIC-2017 sample.
        unlabeled_dir: optional classification-only image folder or label CSV (see
            :func:`~monai_mtt.data.isic_additional.read_isic_additional`), returned as ``"unlabeled"``;
            with an empty ``dataset_dir`` and no ``unlabeled_dir``, the sample's ``ISIC-Additional`` part.
        validate: run the validation pass (all problems raised together).
        check_pixels: with ``validate``, fully decode every image and mask.

    Returns:
        Split -> items (``"train"``, optional ``"val"``, ``"test"``, ``"unlabeled"``).

    Raises:
        FileNotFoundError: the embedded sample is requested but not installed.
        DataValidationError: unrecognised source (naming the layouts looked for) or data problems.
    """
    if dataset_dir is None or str(dataset_dir) == "":
        root = isic2017_sample_root()
        datalist = read_isic2017(root, validate=validate, check_pixels=check_pixels)
        if unlabeled_dir is None or str(unlabeled_dir) == "":
            unlabeled_dir = root / ISIC2017_SAMPLE_ADDITIONAL
    else:
        source = Path(dataset_dir)
        if source.is_file() and source.suffix.lower() == ".json":
            datalist = read_datalist_json(source, validate=validate, check_pixels=check_pixels)
        else:
            datalist = _read_folder(source, validate, check_pixels)
    if unlabeled_dir is not None and str(unlabeled_dir) != "":
        datalist["unlabeled"] = read_isic_additional(unlabeled_dir, validate=validate, check_pixels=check_pixels)
    return datalist


def split_validation(
    items: Sequence[dict], fraction: float = 0.2, seed: int = 0, key: str = BatchKeys.CLASS
) -> tuple[list[dict], list[dict]]:
    """Hold out a stratified, seeded validation subset (by ``key``; items lacking it form a group).

    Each group contributes ``round(fraction * n_group)`` items (at least one when ``fraction > 0``
    and the group has two or more). The result depends only on ids, keys and seed.

    Args:
        items: items with unique ``"id"``.
        fraction: share of each group to hold out, in ``[0, 1)``.
        seed: shuffling seed.
        key: item field to stratify on (``"class"``; PH2 uses ``"ph2_diagnosis"``).

    Returns:
        ``(train_items, val_items)``, each in input order.

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)`` or items without ``"id"``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    held: set[int] = set()
    for members in shuffled_strata(items, key, seed, "split"):
        count = round(fraction * len(members))
        if fraction > 0 and count == 0 and len(members) >= 2:
            count = 1
        held.update(members[:count])
    return [it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held]


def training_datalists(
    dataset_dir: str | Path | None,
    unlabeled_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    validate: bool = True,
    max_items: int | None = None,
    train_as_unlabeled: bool = False,
) -> dict[str, list[dict]]:
    """The datalists a training run needs: ``train``, ``val`` and ``unlabeled`` (possibly empty).

    Wraps :func:`load_datalist`; when the source has no validation split (PH2, the resized ISIC
    training set, a JSON with only ``train``), a stratified ``val_fraction`` of ``train`` is held
    out with :func:`split_validation` (never the test split). Where there is no classification-only
    set, ``unlabeled`` is empty and training uses the labeled stream alone (eq. 11), which is logged.

    Args:
        dataset_dir, unlabeled_dir, validate: as :func:`load_datalist`.
        val_fraction: share of ``train`` held out when the source has no ``val``.
        seed: seed of that split.
        max_items: keep at most this many items per split (quick runs and tests), or None for all.
        train_as_unlabeled: also feed the ``train`` items (never ``val``) to the classification-only
            stream (their masks are dropped by the bundle's unlabeled dataset), after any
            ``unlabeled_dir`` items: for roots without an additional set, so that the semi-supervised
            terms and a class-balanced sampler see the labeled images too.
    """
    import logging

    lists = load_datalist(dataset_dir, unlabeled_dir=unlabeled_dir, validate=validate)
    if not lists.get("train"):
        raise_for_problems(
            [DataProblem(str(dataset_dir), "has no training images with masks", "point dataset_dir at a labeled set")],
            "training data",
        )
    if not lists.get("val"):
        lists["train"], lists["val"] = split_validation(lists["train"], val_fraction, seed)
    lists.setdefault("unlabeled", [])
    if max_items is not None:
        lists = {k: v[: int(max_items)] for k, v in lists.items()}
    if train_as_unlabeled:
        lists["unlabeled"] = lists["unlabeled"] + lists["train"]
    if not lists["unlabeled"]:
        logging.getLogger(__name__).warning(
            "no classification-only (unlabeled) images: training on the labeled stream alone (eq. 11); "
            "set unlabeled_dir to use the semi-supervised losses on extra images."
        )
    return lists


def evaluation_items(
    dataset_dir: str | Path | None,
    split: str = "auto",
    validate: bool = True,
    max_items: int | None = None,
) -> list[dict]:
    """The items to evaluate: ``split`` of :func:`load_datalist`, or with ``"auto"`` the test split
    if the source has one, else the validation split, else everything in ``train`` (e.g. PH2's
    direct-test protocol).

    Raises:
        DataValidationError: the split is missing or empty, or the data has problems.
    """
    lists = load_datalist(dataset_dir, validate=validate)
    lists.pop("unlabeled", None)
    if split == "auto":
        split = next((s for s in ("test", "val", "train") if lists.get(s)), "test")
    items = lists.get(split) or []
    if not items:
        raise_for_problems(
            [DataProblem(str(dataset_dir), f"has no '{split}' split", f"choose one of {sorted(lists)} as eval_split")],
            "evaluation data",
        )
    return items[: int(max_items)] if max_items is not None else items
