"""``monai-mtt score``: score anyone's ISIC 2017 predictions against the official ground truth.

Sub-commands::

    monai-mtt score seg TRUTH_DIR PRED_DIR [--out FILE.json] [--overwrite]
    monai-mtt score cls TRUTH_CSV PRED_CSV [--protocol {isic2017,ph2}] [--decision {argmax,threshold}]
                        [--out FILE.json] [--overwrite]

``seg`` pairs ``TRUTH_DIR/ISIC_xxxxxxx_segmentation.png`` with ``PRED_DIR/ISIC_xxxxxxx_segmentation.png``
or ``PRED_DIR/ISIC_xxxxxxx.png`` by the 7-digit id and reports the per-image and mean ISIC 2017 scores
of :mod:`monai_mtt.metrics.segmentation` at the original resolution. Masks are read by the package's
one mask rule (:func:`monai_mtt.transforms.mask.binarize_mask`, as for training and ``prepare``):
1-bit, 8/16-bit greyscale, or grey palette/RGB PNGs whose values are ``{0, 1}`` or ``{0, full scale}``.

``cls`` reads CSVs with the header ``image_id,melanoma,seborrheic_keratosis`` (the official ISIC 2017
Part 3 layout; extra columns are ignored). Truth values are 0/1 (nevus = both 0); predictions are
probabilities in ``[0, 1]`` scored as in :mod:`monai_mtt.metrics.classification`. The nevus
probability of a prediction is taken as ``max(0, 1 - melanoma - seborrheic_keratosis)`` (the two
ISIC 2017 probabilities are independent one-vs-rest scores and may sum to more than 1); it enters
only the default ``--decision argmax`` rule (a case is melanoma when melanoma is the largest of the
three), while ``--decision threshold`` calls each class positive at probability >= 0.5, as the ISIC
2017 challenge did. The result names the rule. ``--protocol ph2`` scores melanoma vs nevus only (the truth's keratosis
column must then be all 0).

Both print the result as JSON on standard output (undefined scores are ``null``, explained under
``notes``) and write it to ``--out`` when given; nothing else is ever written, and an existing
``--out`` is only replaced with ``--overwrite``. Input problems are all collected and listed at once
on standard error with exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_mtt.transforms.io import read_binary_mask
from monai_mtt.transforms.mask import MaskError
from monai_mtt.utils import nan_to_none

from .classification import (
    CLASS_NAMES,
    DECISION_RULES,
    describe_decision,
    isic2017_classification_scores,
    ph2_classification_scores,
    undefined_notes,
)
from .segmentation import JACCARD_THRESHOLD, SegmentationReport

__all__ = [
    "EXIT_OK",
    "EXIT_INPUT_ERROR",
    "ScoringInputError",
    "read_mask",
    "score_segmentation_dirs",
    "score_classification_csvs",
    "register",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_INPUT_ERROR = 2

CSV_COLUMNS: tuple[str, ...] = ("image_id", "melanoma", "seborrheic_keratosis")

_TRUTH_MASK = re.compile(r"^(ISIC_\d{7})_segmentation\.png$", re.IGNORECASE)
_PRED_MASK = re.compile(r"^(ISIC_\d{7})(_segmentation)?\.png$", re.IGNORECASE)

SEGMENTATION_CONVENTIONS = (
    "Per-image scores at the original resolution, averaged over images (ISIC 2017). "
    "JA=TP/(TP+FP+FN), DI=2TP/(2TP+FP+FN), AC=(TP+TN)/all, SE=TP/(TP+FN), SP=TN/(TN+FP); "
    f"JA_thresholded = JA if JA >= {JACCARD_THRESHOLD} else 0. Both masks empty: JA=DI=1; "
    "empty truth: SE=1; all-lesion truth: SP=1."
)
CLASSIFICATION_CONVENTIONS = (
    "One-vs-rest: melanoma (M_*) and seborrheic keratosis (K_*). Decision (see 'decision'): argmax over "
    "(nevus, melanoma, seborrheic_keratosis) by default, or with --decision threshold each class positive "
    "when its probability >= 0.5. AUC: area under the ROC curve (ties count 1/2). AVG_ACC=(M_ACC+K_ACC)/2. "
    "Nevus probability of a prediction = max(0, 1 - melanoma - seborrheic_keratosis)."
)


class ScoringInputError(ValueError):
    """Raised with every problem found in the inputs of a scoring run.

    Args:
        problems: one human-readable line per offending file, row or id.
        hint: what to do about them.
    """

    def __init__(self, problems: Sequence[str], hint: str = "") -> None:
        self.problems = list(problems)
        self.hint = hint
        text = f"{len(self.problems)} problem(s) found:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text + (f"\n{hint}" if hint else ""))


# --------------------------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------------------------


def read_mask(path: str | Path) -> np.ndarray:
    """Read a binary mask image as a boolean ``HxW`` array, by the package's one mask rule.

    Args:
        path: PNG (or any PIL-readable) file, read as
            :func:`monai_mtt.transforms.mask.binarize_mask` says (the rule the loader and
            ``monai-mtt prepare`` use: EXIF orientation applied, 0/1 or 0/full-scale levels,
            grey stored as colour accepted, coloured masks refused).

    Returns:
        boolean array, ``True`` for lesion.

    Raises:
        ValueError: if the file cannot be read or is not a binary mask (the message names the file).
    """
    path = Path(path)
    try:
        return read_binary_mask(path).astype(bool)
    except MaskError as e:
        raise ValueError(f"{path.name}: not a binary mask: {e.detail}") from e
    except Exception as e:  # PIL raises many types for unreadable files
        raise ValueError(f"{path.name}: cannot be read as an image ({e}).") from e


def _index_masks(folder: Path, pattern: re.Pattern[str], role: str) -> tuple[dict[str, Path], list[str], list[str]]:
    """Map ISIC id -> file in ``folder``; return (index, problems, unrecognised png names)."""
    index: dict[str, Path] = {}
    problems: list[str] = []
    unrecognised: list[str] = []
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        m = pattern.match(f.name)
        if m is None:
            if f.suffix.lower() == ".png":
                unrecognised.append(f.name)
            continue
        image_id = "ISIC_" + m.group(1)[5:]
        if image_id in index:
            problems.append(
                f"{role} {image_id}: two files for one image ({index[image_id].name} and {f.name}); keep one."
            )
            continue
        index[image_id] = f
    return index, problems, unrecognised


def score_segmentation_dirs(truth_dir: str | Path, pred_dir: str | Path) -> dict[str, Any]:
    """Score every predicted mask in ``pred_dir`` against its truth in ``truth_dir``.

    Args:
        truth_dir: folder of ``ISIC_xxxxxxx_segmentation.png`` ground-truth masks.
        pred_dir: folder of ``ISIC_xxxxxxx_segmentation.png`` or ``ISIC_xxxxxxx.png`` predictions,
            one per truth mask, each at the truth's resolution.

    Returns:
        ``{"task", "truth", "prediction", "count", "mean", "per_image", "conventions"}``.

    Raises:
        ScoringInputError: listing every missing pair, unreadable or non-binary mask and size mismatch.
    """
    truth_dir, pred_dir = Path(truth_dir), Path(pred_dir)
    problems = [
        f"{role} folder does not exist: {d}"
        for role, d in (("truth", truth_dir), ("prediction", pred_dir))
        if not d.is_dir()
    ]
    if problems:
        raise ScoringInputError(problems, "Pass the folder holding the PNG masks.")
    truth, p1, _ = _index_masks(truth_dir, _TRUTH_MASK, "truth")
    pred, p2, unrecognised = _index_masks(pred_dir, _PRED_MASK, "prediction")
    problems = p1 + p2
    if not truth:
        problems.append(f"no ground-truth masks named ISIC_xxxxxxx_segmentation.png in {truth_dir}")
    for image_id in sorted(set(truth) - set(pred)):
        problems.append(
            f"missing prediction for {truth[image_id].name}: expected {pred_dir / (image_id + '_segmentation.png')} "
            f"or {pred_dir / (image_id + '.png')}"
        )
    for image_id in sorted(set(pred) - set(truth)):
        problems.append(
            f"prediction {pred[image_id].name} has no ground truth {truth_dir / (image_id + '_segmentation.png')}; "
            "remove it or add its truth"
        )
    if unrecognised and (set(truth) - set(pred)):
        problems.append(
            "these prediction files were ignored because their names do not follow ISIC_xxxxxxx_segmentation.png "
            "or ISIC_xxxxxxx.png: " + ", ".join(unrecognised)
        )

    report = SegmentationReport()
    for image_id in sorted(set(truth) & set(pred)):
        masks = {}
        for role, f in (("truth", truth[image_id]), ("prediction", pred[image_id])):
            try:
                masks[role] = read_mask(f)
            except ValueError as e:
                problems.append(f"{role} {e}")
        if len(masks) < 2:
            continue
        t, p = masks["truth"], masks["prediction"]
        if t.shape != p.shape:
            problems.append(
                f"size mismatch for {image_id}: prediction {pred[image_id].name} is {p.shape[1]}x{p.shape[0]} (WxH) "
                f"but truth {truth[image_id].name} is {t.shape[1]}x{t.shape[0]}; resize the prediction back to the "
                "original image size (nearest neighbour) before scoring"
            )
            continue
        if not problems:
            report.update(p, t, image_id)
    if problems:
        raise ScoringInputError(
            problems,
            "Masks must be single-lesion binary PNGs ({0, 255} or {0, 1}; see README 'Masks') at the size of the "
            "original image, one prediction per ground-truth mask, paired by the 7-digit ISIC id.",
        )
    result = report.aggregate()
    return {
        "task": "isic2017_segmentation",
        "truth": str(truth_dir),
        "prediction": str(pred_dir),
        "count": result["count"],
        "mean": result["mean"],
        "per_image": result["per_image"],
        "conventions": SEGMENTATION_CONVENTIONS,
    }


# --------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------


def _read_label_csv(
    path: Path, role: str, problems: list[str], seen: set[str]
) -> dict[str, tuple[float, float]] | None:
    """Parse an ISIC 2017 Part 3 CSV; append problems and every id met (valid row or not) to ``seen``;
    return ``{id: (melanoma, keratosis)}`` of the valid rows, or None when the file is unusable."""
    if path.is_dir():
        problems.append(f"{role} CSV {path} is a folder; give the CSV file inside it")
        return None
    if not path.is_file():
        problems.append(f"{role} CSV does not exist: {path}")
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as e:
        problems.append(f"{role} CSV {path} is not UTF-8 text (byte {e.start}: {e.reason}); save it as a UTF-8 CSV")
        return None
    except (OSError, csv.Error) as e:
        problems.append(f"{role} CSV {path} cannot be read ({type(e).__name__}: {e}); check the file")
        return None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        problems.append(f"{role} CSV {path.name} is empty; expected header {','.join(CSV_COLUMNS)}")
        return None
    header = [c.strip() for c in rows[0]]
    missing = [c for c in CSV_COLUMNS if c not in header]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or duplicated:
        what = (f"lacks column(s) {', '.join(missing)}" if missing else "") + (
            f"{'; ' if missing else ''}repeats column(s) {', '.join(duplicated)}" if duplicated else ""
        )
        problems.append(
            f"{role} CSV {path.name}: bad header {','.join(header)!r} ({what}); expected {','.join(CSV_COLUMNS)}"
        )
        return None
    col = {c: header.index(c) for c in CSV_COLUMNS}
    out: dict[str, tuple[float, float]] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        where = f"{role} CSV {path.name} line {line_no}"
        if len(row) != len(header):
            problems.append(f"{where}: {len(row)} fields, header has {len(header)}")
            if len(row) > col["image_id"] and row[col["image_id"]].strip():
                seen.add(row[col["image_id"]].strip())
            continue
        image_id = row[col["image_id"]].strip()
        if not image_id:
            problems.append(f"{where}: empty image_id")
            continue
        seen.add(image_id)
        try:
            mel, ker = (float(row[col[c]]) for c in CSV_COLUMNS[1:])
        except ValueError:
            problems.append(
                f"{where} ({image_id}): non-numeric value in {row[col['melanoma']]!r}, "
                f"{row[col['seborrheic_keratosis']]!r}"
            )
            continue
        if role == "truth":
            if mel not in (0.0, 1.0) or ker not in (0.0, 1.0):
                problems.append(
                    f"{where} ({image_id}): truth values must be 0 or 1, got melanoma={mel:g}, "
                    f"seborrheic_keratosis={ker:g}"
                )
                continue
            if mel == 1.0 and ker == 1.0:
                problems.append(
                    f"{where} ({image_id}): both melanoma and seborrheic_keratosis are 1; a lesion has one diagnosis"
                )
                continue
        else:
            bad = [
                f"{n}={v:g}"
                for n, v in (("melanoma", mel), ("seborrheic_keratosis", ker))
                if not (math.isfinite(v) and 0.0 <= v <= 1.0)
            ]
            if bad:
                problems.append(f"{where} ({image_id}): probabilities outside [0, 1]: {', '.join(bad)}")
                continue
        if image_id in out:
            problems.append(f"{where}: image_id {image_id} appears more than once")
            continue
        out[image_id] = (mel, ker)
    return out


def score_classification_csvs(
    truth_csv: str | Path, pred_csv: str | Path, protocol: str = "isic2017", decision: str = "argmax"
) -> dict[str, Any]:
    """Score ISIC 2017 Part 3 style predictions.

    Args:
        truth_csv: ``image_id,melanoma,seborrheic_keratosis`` with 0/1 values.
        pred_csv: same header, probabilities in ``[0, 1]``, one row per truth row.
        protocol: ``"isic2017"`` (M_*, K_*, AVG_ACC) or ``"ph2"`` (melanoma vs nevus: M_*).
        decision: ``"argmax"`` (default) or ``"threshold"`` (0.5); see
            :mod:`monai_mtt.metrics.classification`.

    Returns:
        ``{"task", "protocol", "decision", "threshold", "truth", "prediction", "count", "scores",
        "notes", "per_image", "conventions"}``; undefined scores are NaN and explained in ``notes``.

    Raises:
        ScoringInputError: listing every bad header, bad row, missing id and extra id.
    """
    if protocol not in ("isic2017", "ph2"):
        raise ValueError(f"protocol must be 'isic2017' or 'ph2', got {protocol!r}.")
    describe_decision(decision)  # validates it
    truth_csv, pred_csv = Path(truth_csv), Path(pred_csv)
    problems: list[str] = []
    truth_ids: set[str] = set()
    pred_ids: set[str] = set()
    truth = _read_label_csv(truth_csv, "truth", problems, truth_ids)
    pred = _read_label_csv(pred_csv, "prediction", problems, pred_ids)
    if truth is not None and pred is not None:
        missing = sorted(truth_ids - pred_ids)
        extra = sorted(pred_ids - truth_ids)
        if missing:
            problems.append(
                f"{len(missing)} truth id(s) missing from prediction CSV {pred_csv.name}: {', '.join(missing)}"
            )
        if extra:
            problems.append(f"{len(extra)} prediction id(s) not in truth CSV {truth_csv.name}: {', '.join(extra)}")
        if not truth_ids:
            problems.append(f"truth CSV {truth_csv.name} has no rows")
    if truth is not None and protocol == "ph2":
        ker_ids = sorted(i for i, (_, k) in truth.items() if k == 1.0)
        if ker_ids:
            problems.append(
                f"protocol ph2 is melanoma vs nevus, but truth marks seborrheic keratosis for: {', '.join(ker_ids)}"
            )
    if problems:
        raise ScoringInputError(
            problems,
            f"Both CSVs need the header {','.join(CSV_COLUMNS)} and exactly the same image ids; truth values 0/1 "
            "(at most one 1 per row), prediction values probabilities in [0, 1].",
        )
    assert truth is not None and pred is not None
    ids = sorted(truth)
    labels = np.array([1 if truth[i][0] == 1.0 else 2 if truth[i][1] == 1.0 else 0 for i in ids])
    mel = np.array([pred[i][0] for i in ids])
    ker = np.array([pred[i][1] for i in ids])
    nevus = np.clip(1.0 - mel - ker, 0.0, None)
    probs = np.stack([nevus, mel, ker], axis=1)
    if protocol == "isic2017":
        scores = isic2017_classification_scores(probs, labels, decision=decision)
    else:
        scores = ph2_classification_scores(probs, labels, decision=decision)
    per_image = {
        i: {"label": CLASS_NAMES[lab], "nevus": float(n), "melanoma": float(m), "seborrheic_keratosis": float(k)}
        for i, lab, n, m, k in zip(ids, labels, nevus, mel, ker)
    }
    return {
        "task": f"{protocol}_classification",
        "protocol": protocol,
        "decision": decision,
        "threshold": 0.5,
        "truth": str(truth_csv),
        "prediction": str(pred_csv),
        "count": len(ids),
        "scores": scores,
        "notes": undefined_notes(scores),
        "per_image": per_image,
        "conventions": CLASSIFICATION_CONVENTIONS,
    }


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _fail(command: str, message: str) -> int:
    print(f"monai-mtt score {command}: {message}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def _check_out(args: argparse.Namespace) -> str | None:
    from monai_mtt.cli import check_out_path

    out: Path | None = args.out
    if out is None:
        return None
    if out.is_dir():
        return f"--out {out} is a folder; give a file name such as {out / 'scores.json'}."
    inputs = [getattr(args, k, None) for k in ("truth_csv", "pred_csv")]
    dirs = [getattr(args, k, None) for k in ("truth_dir", "pred_dir")]
    problem = check_out_path(out, inputs, dirs)
    if problem:
        return problem
    if out.exists() and not args.overwrite:
        return f"--out {out} already exists; pass --overwrite to replace it or choose another file."
    return None


def _emit(args: argparse.Namespace, result: dict[str, Any]) -> int:
    text = json.dumps(nan_to_none(result), indent=2, allow_nan=False)
    if args.out is not None:
        try:
            args.out.write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            return _fail(args.score_command, f"cannot write --out {args.out} ({e.strerror or e}); choose another file.")
    print(text)
    return EXIT_OK


def _run(args: argparse.Namespace, command: str, fn: Any, *fn_args: Any) -> int:
    out_problem = _check_out(args)
    if out_problem:
        return _fail(command, out_problem)
    try:
        result = fn(*fn_args)
    except ScoringInputError as e:
        return _fail(command, str(e))
    return _emit(args, result)


def _run_seg(args: argparse.Namespace) -> int:
    return _run(args, "seg", score_segmentation_dirs, args.truth_dir, args.pred_dir)


def _run_cls(args: argparse.Namespace) -> int:
    return _run(args, "cls", score_classification_csvs, args.truth_csv, args.pred_csv, args.protocol, args.decision)


def _add_out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="also write the JSON result to this file (never overwritten without --overwrite)",
    )
    p.add_argument("--overwrite", action="store_true", help="allow replacing an existing --out file")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``score`` sub-command (with ``seg`` and ``cls``) to a CLI.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        the ``score`` parser; each leaf parser sets ``func(args) -> int`` (the exit status).
    """
    score = subparsers.add_parser(
        "score",
        help="score ISIC 2017 segmentation masks or classification CSVs",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = score.add_subparsers(dest="score_command", required=True, metavar="{seg,cls}")
    seg = sub.add_parser(
        "seg",
        help="score predicted lesion masks (JA, DI, AC, SE, SP, JA_thresholded)",
        description="Pair TRUTH_DIR/ISIC_xxxxxxx_segmentation.png with PRED_DIR/ISIC_xxxxxxx_segmentation.png "
        "(or ISIC_xxxxxxx.png) and print per-image and mean ISIC 2017 scores as JSON. " + SEGMENTATION_CONVENTIONS,
    )
    seg.add_argument("truth_dir", type=Path, metavar="TRUTH_DIR", help="ground-truth mask folder")
    seg.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="predicted mask folder")
    _add_out_args(seg)
    seg.set_defaults(func=_run_seg)

    cls = sub.add_parser(
        "cls",
        help="score classification probabilities (M_*, K_*, AVG_ACC)",
        description="Score a prediction CSV image_id,melanoma,seborrheic_keratosis against the truth CSV and "
        "print the result as JSON. " + CLASSIFICATION_CONVENTIONS,
    )
    cls.add_argument("truth_csv", type=Path, metavar="TRUTH_CSV", help="ground-truth CSV (0/1 values)")
    cls.add_argument("pred_csv", type=Path, metavar="PRED_CSV", help="prediction CSV (probabilities)")
    cls.add_argument(
        "--protocol",
        choices=("isic2017", "ph2"),
        default="isic2017",
        help="isic2017: melanoma and keratosis vs rest; ph2: melanoma vs nevus only",
    )
    cls.add_argument(
        "--decision",
        choices=DECISION_RULES,
        default="argmax",
        help="ACC/SE/SP decisions: argmax of the three probabilities (default, the paper's) or "
        "each class probability >= 0.5 (threshold)",
    )
    _add_out_args(cls)
    cls.set_defaults(func=_run_cls)
    return score


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with only the ``score`` command (``python -m monai_mtt.metrics.scoring``)."""
    parser = argparse.ArgumentParser(prog="monai-mtt")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``score ...`` from ``argv`` and return the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
