"""``monai-mtt prepare``: validate a data set and write its datalist JSON.

Usage::

    monai-mtt prepare isic2017   --root DIR --out datalist.json
    monai-mtt prepare ph2        --root DIR --out datalist.json [--folds 4 --seed 0] [--labels FILE]
    monai-mtt prepare additional --root DIR --out datalist.json [--labels FILE]

Writes split -> items with absolute paths (``"train"``/``"val"``/``"test"``; PH2 gives ``"train"``
with a stratified ``"fold"`` per item, 4 folds unless ``--folds 0``; ``additional`` gives
``"unlabeled"``), then prints counts per split and class and the image size range.

Exit codes: 0 written; 1 ``--out`` exists (pass ``--overwrite``) or bad arguments; 2 ``--out`` is an input,
inside ``--root``, a folder, under a file or not writable, or the data set has
problems, each printed on its own line (nothing is written).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from monai_mtt import CLASS_NAMES
from monai_mtt.data.folds import assign_folds
from monai_mtt.data.isic2017 import read_isic2017
from monai_mtt.data.isic_additional import read_isic_additional
from monai_mtt.data.ph2 import read_ph2
from monai_mtt.data.validation import DataValidationError, oriented_size
from monai_mtt.keys import BatchKeys

__all__ = ["register", "prepare", "summarize"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``prepare`` sub-command to an ``argparse`` sub-parsers object.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The new sub-parser (its ``func`` default runs :func:`prepare`).
    """
    parser = subparsers.add_parser(
        "prepare",
        help="validate a data set and write its datalist JSON",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("dataset", choices=("isic2017", "ph2", "additional"), help="data set layout")
    parser.add_argument("--root", required=True, help="folder holding the data set")
    parser.add_argument("--out", required=True, help="datalist JSON to write")
    parser.add_argument("--labels", default=None, help="label file (ph2, additional); default: found in --root")
    parser.add_argument(
        "--folds",
        type=int,
        default=None,
        help="stratified folds written as 'fold' (default 4 for ph2, none otherwise; 0 = none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="fold seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--no-check-pixels",
        dest="check_pixels",
        action="store_false",
        help="read headers only (fast; misses truncation)",
    )
    parser.set_defaults(func=prepare)
    return parser


def summarize(datalist: dict[str, list[dict]]) -> str:
    """Human-readable counts per split and class, and the image size range.

    Args:
        datalist: split -> items.

    Returns:
        A multi-line summary (reads image headers for the sizes).
    """
    lines = []
    sizes = []
    for split, items in datalist.items():
        counts = Counter(item.get(BatchKeys.CLASS) for item in items)
        per_class = ", ".join(
            f"{CLASS_NAMES[c] if isinstance(c, int) and 0 <= c < 3 else 'unknown'} {n}"
            for c, n in sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        )
        folds = sorted({item["fold"] for item in items if "fold" in item})
        fold_text = f"; folds {len(folds)}" if folds else ""
        lines.append(f"{split}: {len(items)} items ({per_class}){fold_text}")
        for item in items:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(item[BatchKeys.IMAGE]) as img:
                    sizes.append(oriented_size(img))
    if sizes:
        widths, heights = [s[0] for s in sizes], [s[1] for s in sizes]
        lines.append(f"image size (width x height): {min(widths)}x{min(heights)} to {max(widths)}x{max(heights)}")
    return "\n".join(lines)


def prepare(args: argparse.Namespace) -> int:
    """Run ``monai-mtt prepare`` with parsed arguments.

    Args:
        args: namespace from the parser built by :func:`register`.

    Returns:
        Exit code: 0 written, 1 refused/bad arguments, 2 data problems.
    """
    from monai_mtt.cli import check_out_path

    out = Path(args.out)
    problem = check_out_path(out, [args.labels], [args.root], create_parents=True)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if out.exists() and not args.overwrite:
        print(f"error: {out} already exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    folds = args.folds if args.folds is not None else (4 if args.dataset == "ph2" else 0)
    try:
        if args.dataset == "isic2017":
            datalist = read_isic2017(args.root, check_pixels=args.check_pixels)
        elif args.dataset == "ph2":
            datalist = {"train": read_ph2(args.root, labels=args.labels, check_pixels=args.check_pixels)}
        else:
            datalist = {
                "unlabeled": read_isic_additional(args.root, labels_csv=args.labels, check_pixels=args.check_pixels)
            }
    except DataValidationError as exc:
        print(f"{len(exc.problems)} problem(s) found in {exc.what}:", file=sys.stderr)
        for data_problem in exc.problems:
            print(f"  {data_problem}", file=sys.stderr)
        return 2
    if folds:
        split = "train" if "train" in datalist else next(iter(datalist))
        key = "ph2_diagnosis" if args.dataset == "ph2" else "class"
        try:
            datalist[split] = assign_folds(datalist[split], num_folds=folds, seed=args.seed, key=key)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(datalist, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write --out {out} ({exc.strerror or exc}); choose another file.", file=sys.stderr)
        return 2
    print(summarize(datalist))
    print(f"wrote {out}")
    return 0
