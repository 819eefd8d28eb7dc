"""What happened to every input file of one Deploy application run: ``summary.csv`` and ``status.json``.

:class:`RunReport` is shared by the operators of a run (:mod:`monai_mtt.apps.deploy.operators`): files that
cannot be read, or that fail later, are recorded and skipped; the application writes the summary from it and
sets its exit code. Needs no Deploy SDK.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_mtt import CLASS_NAMES

__all__ = ["SUMMARY_COLUMNS", "RunReport"]

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "image_id",
    "file",
    "status",
    "predicted_class",
    *CLASS_NAMES,
    "width",
    "height",
    "lesion_pixels",
    "model_version",
    "problem",
)


@dataclass
class RunReport:
    """What happened to every input file; shared by the operators of one application run."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_version: str = ""

    def ok(self, image_id: str, row: dict[str, Any]) -> None:
        self.rows[image_id] = {"status": "ok", **row}

    def bad(self, path: str | os.PathLike, problem: str, image_id: str | None = None) -> None:
        image_id = image_id or Path(str(path)).stem
        key = image_id if image_id not in self.rows else f"{image_id} ({path})"
        self.rows[key] = {"image_id": image_id, "file": str(path), "status": "error", "problem": problem}
        logger.error("skipped %s: %s", path, problem)

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] != "ok"]

    @property
    def processed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] == "ok"]

    def write_summary(self, path: str | os.PathLike) -> Path:
        """``summary.csv``: one row per input file (processed first, in file order, then the bad ones)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = sorted(self.processed, key=lambda r: r["file"]) + sorted(self.problems, key=lambda r: r["file"])
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                out = {k: r.get(k, "") for k in SUMMARY_COLUMNS}
                for k in CLASS_NAMES:
                    if isinstance(out[k], float):
                        out[k] = f"{out[k]:.6f}"
                w.writerow(out)
        return path

    def write_status(self, path: str | os.PathLike, exit_code: int, error: str = "") -> Path:
        """``status.json``: the run's exit code, counts and bad inputs, for callers that cannot see the exit code.

        A MAP's entry script exits 0 even when the application fails, so the outcome is also written here:
        ``{"exit_code", "status" ("ok" / "bad_files" / "failed"), "processed", "bad_files": [{"file", "problem"}],
        "model_version", "error"}``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        status = {0: "ok", 1: "bad_files"}.get(exit_code, "failed")
        problems = sorted(self.problems, key=lambda r: r["file"])
        bad = [{"file": r["file"], "problem": r.get("problem", "")} for r in problems]
        doc = {
            "exit_code": int(exit_code),
            "status": status,
            "processed": len(self.processed),
            "bad_files": bad,
            "model_version": self.model_version,
            "error": error,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)  # never a half-written status
        return path
