"""Stratified, seeded k-fold assignment (PH2 cross-validation).

Items are grouped by a stratification key (``"class"`` by default; ``"ph2_diagnosis"`` balances
PH2's three clinical groups too), each group is sorted by id and shuffled with ``random.Random(seed)``,
and the items are dealt to the folds round-robin. The dealer carries on from where the previous
group stopped, so every fold's per-group count is ``floor`` or ``ceil`` of ``n_group / k`` *and*
fold sizes differ by at most one. The result depends only on the ids, keys and seed, not on the
input order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from monai_mtt.keys import BatchKeys

__all__ = ["assign_folds", "fold_split", "fold_datalists"]


def shuffled_strata(items: Sequence[dict], key: str, seed: int, purpose: str = "split") -> list[list[int]]:
    """Item indices grouped by ``key`` (items lacking it form a group), each group shuffled reproducibly.

    Groups come in sorted order of ``repr(value)``; each is sorted by ``"id"`` and then shuffled by one
    ``random.Random(seed)``, so the result depends only on ids, keys and seed.

    Raises:
        ValueError: an item has no ``"id"`` (``purpose`` names what needed it).
    """
    if any("id" not in item for item in items):
        raise ValueError(f"every item needs an 'id' for a reproducible {purpose}")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[repr(item.get(key))].append(index)
    rng = random.Random(seed)
    strata = []
    for group in sorted(groups):
        members = sorted(groups[group], key=lambda i: str(items[i]["id"]))
        rng.shuffle(members)
        strata.append(members)
    return strata


def assign_folds(items: Sequence[dict], num_folds: int = 4, seed: int = 0, key: str = BatchKeys.CLASS) -> list[dict]:
    """Assign a ``"fold"`` in ``[0, num_folds)`` to each item, stratified by ``key``.

    Args:
        items: datalist items, each with a unique ``"id"`` (items lacking ``key`` form their own group).
        num_folds: number of folds (at least 2).
        seed: shuffling seed; the same seed gives the same folds.
        key: item field to stratify on.

    Returns:
        Copies of the items, in input order, each with ``"fold"`` added (the inputs are not modified).

    Raises:
        ValueError: fewer than 2 folds, more folds than items, or items without ``"id"``.
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    if len(items) < num_folds:
        raise ValueError(f"cannot split {len(items)} items into {num_folds} folds")
    fold_of: dict[int, int] = {}
    dealer = 0
    for members in shuffled_strata(items, key, seed, "fold assignment"):
        for index in members:
            fold_of[index] = dealer
            dealer = (dealer + 1) % num_folds
    return [{**item, "fold": fold_of[index]} for index, item in enumerate(items)]


def fold_split(items: Sequence[dict], fold: int) -> tuple[list[dict], list[dict]]:
    """Split fold-assigned items into training (all other folds) and validation (``fold``).

    Args:
        items: items carrying ``"fold"`` (see :func:`assign_folds`).
        fold: the held-out fold.

    Returns:
        ``(train_items, val_items)``.

    Raises:
        ValueError: an item has no ``"fold"`` or no item is in ``fold``.
    """
    if any("fold" not in item for item in items):
        raise ValueError("items have no 'fold'; call assign_folds first")
    val = [item for item in items if item["fold"] == fold]
    if not val:
        raise ValueError(f"no item is in fold {fold}")
    return [item for item in items if item["fold"] != fold], val


def fold_datalists(
    dataset_dir: str,
    fold: int | None,
    num_folds: int = 4,
    seed: int = 0,
    validate: bool = True,
    key: str = "ph2_diagnosis",
    val_fraction: float = 0.2,
) -> dict[str, list[dict]]:
    """The PH2 protocols as datalists (paper section 4.6).

    With ``fold=None`` (direct test): every case is ``"test"`` (and ``"val"``; nothing is trained).
    With ``fold=k``: the cases are assigned to ``num_folds`` stratified, seeded folds
    (:func:`assign_folds`, stratified on the PH2 clinical diagnosis so common/atypical nevi and
    melanomas spread evenly); fold ``k`` is ``"test"``, reported untouched. The checkpoint is never
    selected on it: a stratified, seeded ``val_fraction`` of the other folds
    (:func:`~monai_mtt.data.datalist.split_validation`, same key and seed) is ``"val"``, the rest
    ``"train"``; ``"unlabeled"`` is empty. (The authors' code selected on the test fold.) A datalist
    JSON written by ``monai-mtt prepare ph2`` already carrying ``"fold"`` keeps its folds.

    Args:
        dataset_dir: PH2 root or a datalist JSON (``train`` items with or without ``fold``).
        fold: held-out test fold, or None.
        num_folds: k.
        seed: fold and validation-split seed.
        validate: run the validation pass.
        key: stratification field (falls back to ``class`` where absent).
        val_fraction: share of the training folds held out for checkpoint selection, in ``(0, 1)``.

    Raises:
        ValueError: ``fold`` outside ``[0, num_folds)`` or ``val_fraction`` outside ``(0, 1)``.
    """
    from monai_mtt.data.datalist import load_datalist, split_validation

    lists = load_datalist(dataset_dir, validate=validate)
    items = [it for split in ("train", "val", "test") for it in lists.get(split, [])]
    if fold is None:
        return {"train": [], "val": items, "test": items, "unlabeled": []}
    if not 0 <= int(fold) < num_folds:
        raise ValueError(f"fold must be in [0, {num_folds}), got {fold}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be in (0, 1), got {val_fraction}: fine-tuning selects its checkpoint on a "
            "validation part of the training folds, never on the test fold."
        )
    strat = key if all(key in it for it in items) else BatchKeys.CLASS
    if not all("fold" in it for it in items):
        items = assign_folds(items, num_folds=num_folds, seed=seed, key=strat)
    train, test = fold_split(items, int(fold))
    train, val = split_validation(train, val_fraction, seed, key=strat)
    return {"train": train, "val": val, "test": test, "unlabeled": []}
