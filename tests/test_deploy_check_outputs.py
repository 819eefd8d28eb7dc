"""The output checker of the MAP smoke test (monai_mtt.apps.deploy.check_outputs) on hand-made output folders.

A folder written the way the deploy app writes it (docs/deploy.md) passes; each kind of damage the smoke
test must catch is caught: a mask at the wrong size, non-binary values, probabilities that do not sum to 1,
a status.json that disagrees with summary.csv, a bad file with outputs, a differing pixel or probability
against a reference, and a MAP log whose exit line disagrees with status.json. Needs no MONAI Deploy SDK.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import monai_mtt
from monai_mtt import CLASS_NAMES
from monai_mtt.apps.deploy.check_outputs import check_output_folder, compare_output_folders, main

VERSION = monai_mtt.__version__  # what the app writes as model_version (the bundle's version)
SIZES = {"a": (40, 30), "b": (24, 36)}  # (W, H), non-square both ways
SUMMARY = ["image_id", "file", "status", "predicted_class", *CLASS_NAMES, "width", "height", "lesion_pixels",
           "model_version", "problem"]  # fmt: skip


def _write_outputs(inputs: Path, out: Path) -> None:
    """What the app writes for images a, b and the truncated c.jpg (by hand, from docs/deploy.md)."""
    out.mkdir()
    rows = []
    for i, (image_id, (w, h)) in enumerate(SIZES.items()):
        mask = np.zeros((h, w), np.uint8)
        mask[5:15, 3 + i : 12 + i] = 255
        Image.fromarray(mask).save(out / f"{image_id}_segmentation.png")
        probs = dict(zip(CLASS_NAMES, (0.2, 0.5, 0.3)))
        doc = {"probabilities": probs, "predicted_class": "melanoma", "predicted_index": 1, "model_version": VERSION,
               "width": w, "height": h, "lesion_pixels": int((mask > 0).sum()),
               "file": str(inputs / f"{image_id}.png")}  # fmt: skip
        (out / f"{image_id}.json").write_text(json.dumps(doc))
        rows.append({"image_id": image_id, "file": doc["file"], "status": "ok", "predicted_class": "melanoma",
                     **probs, "width": w, "height": h, "lesion_pixels": doc["lesion_pixels"],
                     "model_version": VERSION})  # fmt: skip
    rows.append({"image_id": "c", "file": str(inputs / "c.jpg"), "status": "error", "problem": "is truncated"})
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in SUMMARY} for r in rows)
    status = {"exit_code": 1, "status": "bad_files", "processed": 2, "error": "", "model_version": VERSION,
              "bad_files": [{"file": str(inputs / "c.jpg"), "problem": "is truncated"}]}  # fmt: skip
    (out / "status.json").write_text(json.dumps(status))


@pytest.fixture
def folders(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for image_id, size in SIZES.items():
        Image.new("RGB", size, (200, 150, 120)).save(inputs / f"{image_id}.png")
    (inputs / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (inputs / "notes.txt").write_text("not an image: ignored by the app")
    out, ref = tmp_path / "out", tmp_path / "ref"
    _write_outputs(inputs, out)
    shutil.copytree(out, ref)
    return inputs, out, ref


def test_good_folder_passes(folders):
    inputs, out, ref = folders
    facts, problems = check_output_folder(inputs, out)
    assert problems == []
    assert facts["images"] == 3 and sorted(facts["processed"]) == ["a", "b"] and facts["bad_files"] == ["c.jpg"]
    assert facts["exit_code"] == 1 and facts["sizes"] == {"a": [40, 30], "b": [24, 36]}
    cmp, problems = compare_output_folders(out, ref)
    assert problems == [] and cmp == {"mask_pixels_differing": 0, "max_probability_difference": 0.0}


def _one_problem(inputs, out, needle):
    problems = check_output_folder(inputs, out)[1]
    assert len(problems) == 1 and needle in problems[0], problems


def test_mask_transposed_is_caught(folders):
    inputs, out, _ = folders
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(out / "a_segmentation.png")  # H and W swapped
    _one_problem(inputs, out, "a_segmentation.png: mode L shape (40, 30), expected 'L' (30, 40)")


def test_non_binary_mask_is_caught(folders):
    inputs, out, _ = folders
    mask = np.asarray(Image.open(out / "b_segmentation.png")).copy()
    mask[mask == 255] = 1  # 0/1 instead of 0/255: lesion_pixels still agree
    Image.fromarray(mask).save(out / "b_segmentation.png")
    _one_problem(inputs, out, "values other than 0/255")


def test_probabilities_and_predicted_class_are_checked(folders):
    inputs, out, _ = folders
    doc = json.loads((out / "a.json").read_text())
    doc["probabilities"]["nevus"] = 0.4  # sums to 1.2
    (out / "a.json").write_text(json.dumps(doc))
    _one_problem(inputs, out, "summing to 1")
    doc["probabilities"] = dict(zip(CLASS_NAMES, (0.6, 0.1, 0.3)))  # sums to 1 but melanoma is not the most probable
    (out / "a.json").write_text(json.dumps(doc))
    _one_problem(inputs, out, "not the most probable")


def test_status_file_must_agree(folders):
    inputs, out, _ = folders
    status = json.loads((out / "status.json").read_text())
    status["exit_code"] = 0  # what a MAP's entry script would claim
    (out / "status.json").write_text(json.dumps(status))
    _one_problem(inputs, out, "exit_code 0")
    (out / "status.json").unlink()
    _one_problem(inputs, out, "no status.json")


def test_bad_file_with_outputs_and_missing_row(folders):
    inputs, out, _ = folders
    shutil.copy(out / "a.json", out / "c.json")
    _one_problem(inputs, out, "c.jpg is marked 'error' but has outputs")
    (out / "c.json").unlink()
    Image.new("RGB", (8, 8)).save(inputs / "d.png")  # an input the app never listed
    _one_problem(inputs, out, "summary.csv lists")


def test_reference_comparison_counts_differences(folders):
    inputs, out, ref = folders
    mask = np.asarray(Image.open(ref / "a_segmentation.png")).copy()
    mask[0, 0] = 255 - mask[0, 0]
    Image.fromarray(mask).save(ref / "a_segmentation.png")
    doc = json.loads((ref / "b.json").read_text())
    doc["probabilities"] = dict(zip(CLASS_NAMES, (0.2, 0.5 - 2e-4, 0.3 + 2e-4)))
    (ref / "b.json").write_text(json.dumps(doc))
    cmp, problems = compare_output_folders(out, ref)
    assert cmp["mask_pixels_differing"] == 1 and cmp["max_probability_difference"] == pytest.approx(2e-4)
    assert len(problems) == 2 and "1 mask pixels differ" in problems[0] and "2.00e-04 > 0.0001" in problems[1]
    assert compare_output_folders(out, ref, atol=1e-3)[1] == [problems[0]]


def test_command_line_with_container_log(folders, tmp_path, capsys):
    inputs, out, ref = folders
    log = tmp_path / "map.log"
    log.write_text("Application exited with 1.\n[INFO] Application exited with 1.\n")  # as holoscan's tools prints it
    report = tmp_path / "check.json"
    args = ["--inputs", str(inputs), "--output", str(out), "--reference", str(ref), "--reference-exit-code", "1",
            "--container-log", str(log), "--json", str(report)]  # fmt: skip
    assert main(args) == 0
    assert "outputs OK" in capsys.readouterr().out
    assert json.loads(report.read_text())["container_logged_exit_codes"] == [1, 1]
    log.write_text("[INFO] Application exited with 0.\n")  # the log and status.json disagree
    assert main(args) == 1
    assert main([*args[:6], "--reference-exit-code", "0", *args[8:]]) == 1  # the reference run's code disagrees
    log.write_text("the entry script never said\n")
    assert main(args) == 1


def test_empty_output_folder(folders, tmp_path):
    """What a MAP leaves when the app dies on import: nothing; both checks say so instead of crashing."""
    inputs, _, ref = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_folder(inputs, empty)[1] == [f"{empty}: no summary.csv"]
    assert compare_output_folders(empty, ref)[1] == [f"cannot compare: no summary.csv in {empty}"]
