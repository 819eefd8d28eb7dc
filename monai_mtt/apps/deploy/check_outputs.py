"""Check what the MONAI Deploy app wrote, and compare two runs of it (a MAP against the app outside it).

    python -m monai_mtt.apps.deploy.check_outputs --inputs IMAGES --output OUT \
        [--reference REF --reference-exit-code N] [--container-log LOG] [--json REPORT]

For every image file directly in ``IMAGES`` (the files the app reads): a ``summary.csv`` row; for a
processed one an 8-bit 0/255 ``<id>_segmentation.png`` at the image's own width x height (EXIF orientation
applied) and an ``<id>.json`` whose probabilities sum to 1, whose ``predicted_class`` is the most probable
class and whose ``width``/``height``/``lesion_pixels`` agree with the mask; for a bad one neither file.
``status.json`` must hold the exit code the app would return (0, or 1 with bad files) and the bad files.
With ``--reference``: the same rows, equal masks and probabilities within ``--atol``, the same exit code.
With ``--container-log``: the MAP entry script's "Application exited with N" line must agree with
``status.json`` (the entry script itself exits 0 whatever the app returns).

Used by ``scripts/package_map.sh --smoke-test``. Exit code 0 when nothing is wrong, 1 otherwise.
Needs only PIL and numpy (no MONAI Deploy SDK).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from monai_mtt import CLASS_NAMES
from monai_mtt.data import is_image_file, oriented_size

__all__ = ["check_output_folder", "compare_output_folders", "container_exit_codes", "main"]

_EXITED = re.compile(r"Application exited with (\d+)")


def _read_summary(output: Path) -> dict[str, dict[str, str]]:
    with open(output / "summary.csv", newline="") as f:
        return {Path(r["file"]).name: r for r in csv.DictReader(f)}


def check_output_folder(inputs: str | os.PathLike, output: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """Check one output folder against the images it was made from.

    Args:
        inputs: the folder the app read (its image files directly inside).
        output: the app's output folder.

    Returns:
        ``(facts, problems)``: facts ``{"images", "processed", "bad_files", "exit_code", "sizes"}`` (sizes are
        ``[width, height]`` per processed id) and a list of problems, empty when everything is right.
    """
    inputs, output = Path(inputs), Path(output)
    problems: list[str] = []
    files = sorted(p for p in inputs.iterdir() if p.is_file() and is_image_file(p))
    facts: dict[str, Any] = {"images": len(files), "processed": [], "bad_files": [], "exit_code": None, "sizes": {}}
    if not (output / "summary.csv").is_file():
        return facts, [f"{output}: no summary.csv"]
    rows = _read_summary(output)
    if set(rows) != {p.name for p in files}:
        problems.append(f"summary.csv lists {sorted(rows)}, the input folder holds {sorted(p.name for p in files)}")
    for path in files:
        row = rows.get(path.name)
        if row is None:
            continue
        image_id = row["image_id"]
        mask_path, json_path = output / f"{image_id}_segmentation.png", output / f"{image_id}.json"
        if row["status"] != "ok":
            facts["bad_files"].append(path.name)
            if mask_path.exists() or json_path.exists():
                problems.append(f"{path.name} is marked '{row['status']}' but has outputs")
            continue
        facts["processed"].append(image_id)
        if not (mask_path.is_file() and json_path.is_file()):
            problems.append(f"{path.name}: {mask_path.name} or {json_path.name} is missing")
            continue
        with Image.open(path) as img:
            size = oriented_size(img)  # as displayed: EXIF orientation applied
        facts["sizes"][image_id] = list(size)
        with Image.open(mask_path) as m:
            mode, mask = m.mode, np.asarray(m)
        if mode != "L" or mask.shape != (size[1], size[0]):
            problems.append(f"{mask_path.name}: mode {mode} shape {mask.shape}, expected 'L' {(size[1], size[0])}")
            continue
        if not set(np.unique(mask).tolist()) <= {0, 255}:
            problems.append(f"{mask_path.name}: values other than 0/255")
        doc = json.loads(json_path.read_text())
        probs = doc.get("probabilities", {})
        if list(probs) != list(CLASS_NAMES) or abs(sum(probs.values()) - 1.0) > 1e-4:
            problems.append(f"{json_path.name}: probabilities {probs} are not the 3 classes summing to 1")
        elif doc.get("predicted_class") != max(probs, key=probs.get):
            problems.append(f"{json_path.name}: predicted_class {doc.get('predicted_class')} is not the most probable")
        if (doc.get("width"), doc.get("height")) != size or doc.get("lesion_pixels") != int((mask > 0).sum()):
            problems.append(f"{json_path.name}: width/height/lesion_pixels disagree with the mask")
    if not (output / "status.json").is_file():
        problems.append(f"{output}: no status.json")
        return facts, problems
    status = json.loads((output / "status.json").read_text())
    facts["exit_code"] = status.get("exit_code")
    expected_code = 1 if facts["bad_files"] else 0
    if status.get("exit_code") != expected_code:
        problems.append(
            f"status.json exit_code {status.get('exit_code')} ({status.get('error')}), expected {expected_code}"
        )
    if sorted(Path(b["file"]).name for b in status.get("bad_files", [])) != sorted(facts["bad_files"]):
        problems.append(f"status.json bad_files {status.get('bad_files')} != summary.csv errors {facts['bad_files']}")
    if status.get("processed") != len(facts["processed"]):
        problems.append(f"status.json processed {status.get('processed')} != {len(facts['processed'])}")
    return facts, problems


def compare_output_folders(
    output: str | os.PathLike, reference: str | os.PathLike, atol: float = 1e-4
) -> tuple[dict[str, Any], list[str]]:
    """Compare two output folders of the app made from the same images and model.

    Args:
        output: the folder to check (e.g. the MAP's).
        reference: the folder it must equal (e.g. the app's run outside the container).
        atol: largest allowed difference of a class probability.

    Returns:
        ``(facts, problems)``: facts ``{"mask_pixels_differing", "max_probability_difference"}``.
    """
    output, reference = Path(output), Path(reference)
    problems: list[str] = []
    facts: dict[str, Any] = {"mask_pixels_differing": 0, "max_probability_difference": 0.0}
    missing = [str(f) for f in (output, reference) if not (f / "summary.csv").is_file()]
    if missing:
        return facts, [f"cannot compare: no summary.csv in {', '.join(missing)}"]
    rows, ref_rows = _read_summary(output), _read_summary(reference)
    if {k: r["status"] for k, r in rows.items()} != {k: r["status"] for k, r in ref_rows.items()}:
        problems.append("summary.csv files/statuses differ from the reference")
    for name, row in rows.items():
        if row["status"] != "ok" or ref_rows.get(name, {}).get("status") != "ok":
            continue
        image_id = row["image_id"]
        mask = np.asarray(Image.open(output / f"{image_id}_segmentation.png"))
        ref = np.asarray(Image.open(reference / f"{image_id}_segmentation.png"))
        if mask.shape != ref.shape:
            problems.append(f"{image_id}: mask shape {mask.shape} != reference {ref.shape}")
            continue
        differing = int((mask != ref).sum())
        facts["mask_pixels_differing"] += differing
        if differing:
            problems.append(f"{image_id}: {differing} mask pixels differ from the reference")
        probs = json.loads((output / f"{image_id}.json").read_text())["probabilities"]
        ref_probs = json.loads((reference / f"{image_id}.json").read_text())["probabilities"]
        diff = max(abs(probs[k] - ref_probs[k]) for k in CLASS_NAMES)
        facts["max_probability_difference"] = max(facts["max_probability_difference"], diff)
        if diff > atol:
            problems.append(f"{image_id}: probabilities differ from the reference by {diff:.2e} > {atol}")
    for folder in (output, reference):
        if not (folder / "status.json").is_file():
            problems.append(f"{folder}: no status.json")
    if not problems:
        status = json.loads((output / "status.json").read_text())
        ref_status = json.loads((reference / "status.json").read_text())
        if status["exit_code"] != ref_status["exit_code"]:
            problems.append(f"exit code {status['exit_code']} != reference {ref_status['exit_code']}")
    return facts, problems


def container_exit_codes(log_text: str) -> list[int]:
    """The exit codes the MAP entry script logged ("Application exited with N")."""
    return [int(m) for m in _EXITED.findall(log_text)]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m monai_mtt.apps.deploy.check_outputs", description=__doc__.splitlines()[0]
    )
    p.add_argument("--inputs", required=True, type=Path, help="the folder of images the app read")
    p.add_argument("--output", required=True, type=Path, help="the app's output folder to check")
    p.add_argument("--reference", type=Path, help="an output folder of the same app, images and model to compare with")
    p.add_argument("--reference-exit-code", type=int, help="the exit code of the reference run")
    p.add_argument("--container-log", type=Path, help="the MAP run's log (its 'Application exited with N' line)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed class-probability difference")
    p.add_argument("--json", type=Path, help="write the facts and problems here")
    args = p.parse_args(argv)

    facts, problems = check_output_folder(args.inputs, args.output)
    report: dict[str, Any] = {"output": facts}
    if args.reference is not None:
        ref_facts, ref_problems = check_output_folder(args.inputs, args.reference)
        problems += [f"reference: {q}" for q in ref_problems]
        if args.reference_exit_code is not None and args.reference_exit_code != ref_facts["exit_code"]:
            problems.append(
                f"reference exited {args.reference_exit_code} but its status.json says {ref_facts['exit_code']}"
            )
        cmp_facts, cmp_problems = compare_output_folders(args.output, args.reference, args.atol)
        report["comparison"] = cmp_facts
        problems += cmp_problems
    if args.container_log is not None:
        codes = container_exit_codes(args.container_log.read_text(errors="replace"))
        report["container_logged_exit_codes"] = codes
        if not codes or set(codes) != {facts["exit_code"]}:  # the entry script prints the line twice (log, banner)
            problems.append(f"the MAP log says the app exited with {codes}, status.json says {facts['exit_code']}")
    report["problems"] = problems
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{facts['images']} image file(s): {len(facts['processed'])} processed, {len(facts['bad_files'])} bad "
        f"{facts['bad_files']}; status.json exit_code {facts['exit_code']}; sizes {facts['sizes']}"
    )
    if "comparison" in report:
        c = report["comparison"]
        print(f"against the reference: {c['mask_pixels_differing']} mask pixels differ, "
              f"max probability difference {c['max_probability_difference']:.2e}")  # fmt: skip
    for q in problems:
        print(f"PROBLEM: {q}")
    print("outputs OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
