"""Learning curve: the per-iteration loss terms and the validation metrics, as a CSV and a PNG."""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from monai.utils import min_version, optional_import

from monai_mtt.keys import BatchKeys

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["LearningCurve", "CURVE_PANELS"]

logger = logging.getLogger(__name__)

CURVE_PANELS: dict[str, tuple[str, ...]] = {
    "total loss": ("loss",),
    "mask (Dice + CE)": ("lab_mask",),
    "level set": ("lab_lsf",),
    "class (CE)": ("lab_cls", "unl_cls"),
    "DTC": ("lab_dtc", "unl_dtc"),
    "ARC": ("lab_arc", "unl_arc"),
}
"""Figure panel title -> loss-term columns drawn in it (the engine output keys of the trainer)."""


def _float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean())
    return float(value)


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average ignoring NaNs (the first points average what exists so far)."""
    ok = np.isfinite(values)
    v = np.where(ok, values, 0.0)
    csum, ccount = np.cumsum(v), np.cumsum(ok)
    lo = np.maximum(np.arange(len(v)) - window, -1)
    total = csum - np.where(lo >= 0, csum[np.maximum(lo, 0)], 0.0)
    count = ccount - np.where(lo >= 0, ccount[np.maximum(lo, 0)], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class LearningCurve:
    """Record the training loss terms at every iteration and the validation metrics at every validation.

    Attach to the trainer; pass the validation evaluator as ``validator`` (the same object the
    ``ValidationHandler`` runs). After each validation, at every epoch end and at completion it
    writes to ``output_dir`` ``<name>.csv`` (one row per iteration: ``iteration``, the loss terms,
    and the validation metrics on the rows where a validation ran, empty elsewhere) and
    ``<name>.png`` (one panel per loss term group of :data:`CURVE_PANELS`, raw values faint with a
    moving average, and a panel of the validation metrics). Both files are replaced atomically.

    Resuming: at the first iteration of a run, an existing CSV is read back and its rows *before*
    that iteration are kept (rows after the resumed checkpoint, from a killed run, are dropped), so
    a rerun after a kill continues the same curve. A fresh run (iteration 1) starts a new curve.
    Only rank 0 writes.

    Args:
        output_dir: folder of the files (created).
        validator: the validation evaluator whose ``state.metrics`` are recorded, or None.
        output_transform: trainer output -> ``{term: number}`` (the bundle's ``train#loss_terms``);
            by default every number or scalar tensor in the output except ``image``/``label``/``pred``.
        metric_names: the validator metrics to record (default: all of them, whose names must then
            start with ``val`` to be told apart from loss terms when a CSV is read back); the first
            is the one emphasised in the figure (the key metric, e.g. ``val_jaccard``).
        name: file stem.
        smoothing: moving-average window (iterations) of the drawn loss curves.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        validator: Engine | None = None,
        output_transform: Callable[[Any], Mapping[str, Any]] | None = None,
        metric_names: Sequence[str] | None = None,
        name: str = "learning_curve",
        smoothing: int = 25,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.validator = validator
        self.output_transform = output_transform
        self.metric_names = list(metric_names) if metric_names is not None else None
        self.csv_path = self.output_dir / f"{name}.csv"
        self.png_path = self.output_dir / f"{name}.png"
        self.smoothing = max(1, int(smoothing))
        self.rows: dict[int, dict[str, float]] = {}
        self.loss_columns: list[str] = []
        self.metric_columns: list[str] = []
        self._loaded = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration)
        if self.validator is not None:
            self.validator.add_event_handler(Events.COMPLETED, self.validated, engine)
        else:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)
        engine.add_event_handler(Events.COMPLETED, self.write)

    # recording --------------------------------------------------------------------------------------
    def _terms(self, output: Any) -> dict[str, float]:
        if self.output_transform is not None:
            raw = self.output_transform(output)
        else:
            raw = {
                k: v
                for k, v in (output.items() if isinstance(output, Mapping) else [])
                if k not in (BatchKeys.IMAGE, BatchKeys.LABEL, BatchKeys.PRED)
                and (isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1))
            }
        return {str(k): _float(v) for k, v in raw.items()}

    def _resume(self, iteration: int) -> None:
        """Keep the rows of an existing CSV that precede ``iteration`` (the first one of this run)."""
        self._loaded = True
        if iteration <= 1 or not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                it = int(row["iteration"])
                if it >= iteration:
                    continue
                self.rows[it] = {k: float(v) for k, v in row.items() if k != "iteration" and v not in ("", None)}
            columns = [c for c in (reader.fieldnames or []) if c != "iteration"]
        is_metric = (
            (lambda c: c in self.metric_names) if self.metric_names is not None else (lambda c: c.startswith("val"))
        )
        self.metric_columns = [c for c in columns if is_metric(c)]
        self.loss_columns = [c for c in columns if c not in self.metric_columns]
        logger.info(f"learning curve: continuing {self.csv_path} ({len(self.rows)} earlier iterations)")

    def iteration(self, engine: Engine) -> None:
        it = int(engine.state.iteration)
        if not self._loaded:
            self._resume(it)
        terms = self._terms(engine.state.output)
        for k in terms:
            if k not in self.loss_columns:
                self.loss_columns.append(k)
        self.rows[it] = {**self.rows.get(it, {}), **terms}

    def validated(self, validator: Engine, trainer: Engine) -> None:
        it = int(trainer.state.iteration)
        names = self.metric_names if self.metric_names is not None else list(validator.state.metrics)
        values = {n: _float(validator.state.metrics[n]) for n in names if n in validator.state.metrics}
        for k in values:
            if k not in self.metric_columns:
                self.metric_columns.append(k)
        self.rows[it] = {**self.rows.get(it, {}), **values}
        self.write(trainer)

    # writing ----------------------------------------------------------------------------------------
    def table(self) -> tuple[list[str], np.ndarray]:
        """Columns (``iteration`` first) and the ``(N, C)`` float table, NaN where a value is absent."""
        columns = ["iteration", *self.loss_columns, *self.metric_columns]
        its = sorted(self.rows)
        data = np.full((len(its), len(columns)), np.nan)
        for r, it in enumerate(its):
            data[r, 0] = it
            for c, name in enumerate(columns[1:], start=1):
                data[r, c] = self.rows[it].get(name, np.nan)
        return columns, data

    def write(self, engine: Engine | None = None) -> None:
        if not self.rows or not _is_main_process():
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        columns, data = self.table()
        tmp = self.csv_path.with_name(f".{self.csv_path.name}.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for row in data:
                w.writerow([int(row[0])] + ["" if not math.isfinite(v) else repr(float(v)) for v in row[1:]])
        os.replace(tmp, self.csv_path)
        tmp = self.png_path.with_name(f".{self.png_path.stem}.tmp.png")
        self.plot(columns, data, tmp)
        os.replace(tmp, self.png_path)

    def plot(self, columns: list[str], data: np.ndarray, path: Path) -> None:
        col = {c: i for i, c in enumerate(columns)}
        panels = [(t, [k for k in keys if k in col]) for t, keys in CURVE_PANELS.items()]
        panels = [(t, keys) for t, keys in panels if keys]
        n = len(panels) + 1
        ncols = 4 if n > 4 else n
        nrows = math.ceil(n / ncols)
        fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), dpi=100)
        FigureCanvasAgg(fig)
        x = data[:, 0]
        for p, (title, keys) in enumerate(panels):
            ax = fig.add_subplot(nrows, ncols, p + 1)
            for k in keys:
                y = data[:, col[k]]
                (line,) = ax.plot(x, y, linewidth=0.6, alpha=0.3)
                ax.plot(x, _smooth(y, self.smoothing), linewidth=1.5, color=line.get_color(), label=k)
            ax.set_title(title)
            ax.set_xlabel("iteration")
            ax.grid(alpha=0.3)
            if len(keys) > 1:
                ax.legend(fontsize=8)
        ax = fig.add_subplot(nrows, ncols, len(panels) + 1)
        for i, k in enumerate(self.metric_columns):
            y = data[:, col[k]]
            ok = np.isfinite(y)
            ax.plot(x[ok], y[ok], marker="o", markersize=3, linewidth=2.0 if i == 0 else 1.0, label=k)
        ax.set_title("validation")
        ax.set_xlabel("iteration")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if self.metric_columns:
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(path, format="png")
