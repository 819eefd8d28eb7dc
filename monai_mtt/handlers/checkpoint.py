"""Crash-safe checkpoints: the latest training state for resuming, and the best validated model."""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import CheckpointLoader
from monai.utils import min_version, optional_import

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["atomic_save", "LatestCheckpoint", "BestCheckpoint"]

logger = logging.getLogger(__name__)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A kill at any moment leaves either the previous file or the new one, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _state(obj: Any) -> Any:
    obj = getattr(obj, "module", obj)  # DistributedDataParallel / DataParallel
    return obj.state_dict()


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


class LatestCheckpoint:
    """Save the whole training state every ``interval`` epochs and resume from it on the next run.

    ``save_dict`` names the objects (``model``, ``optimizer``, ``lr_scheduler``, ...) as for MONAI's
    ``CheckpointSaver``; the engine it is attached to is added as ``engine_key`` (``trainer``), which
    keeps the config free of a trainer -> handler -> trainer reference cycle. At attach time, if ``save_dir/filename``
    exists, it is loaded at
    ``STARTED`` through MONAI's ``CheckpointLoader`` (which also restores the engine's epoch and
    iteration), so rerunning the same command after a kill continues where the last save left off.
    Files are written with :func:`atomic_save`; only rank 0 writes.

    Args:
        save_dir: folder of the checkpoint.
        save_dict: name -> object with ``state_dict``/``load_state_dict``.
        filename: checkpoint file name (``latest.pt``).
        interval: save every this many epochs (and at completion).
        resume: load an existing checkpoint at start.
        map_location: as ``torch.load``.
        engine_key: name under which the engine's own state (epoch, iteration) is stored.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: dict[str, Any],
        filename: str = "latest.pt",
        interval: int = 1,
        resume: bool = True,
        map_location: Any = "cpu",
        engine_key: str = "trainer",
    ) -> None:
        self.path = Path(save_dir) / filename
        self.save_dict = dict(save_dict)
        self.engine_key = engine_key
        self.interval = max(1, int(interval))
        self.resume = resume
        self.map_location = map_location
        self.resumed_from: Path | None = None

    def attach(self, engine: Engine) -> None:
        self.save_dict.setdefault(self.engine_key, engine)
        if self.resume and self.path.is_file():
            logger.info(f"resuming from {self.path}")
            CheckpointLoader(str(self.path), self.save_dict, map_location=self.map_location).attach(engine)
            self.resumed_from = self.path
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save)

    def save(self, engine: Engine) -> None:
        if _is_main_process():
            atomic_save({name: _state(obj) for name, obj in self.save_dict.items()}, self.path)


class BestCheckpoint:
    """Keep the network weights of the best validation score (attach to the validation evaluator).

    Writes ``{"model": state_dict}`` to ``save_dir/filename`` atomically whenever the evaluator's
    ``metric_name`` improves, with a JSON side file (``model.json``) holding the metric, its value, the
    training epoch and the run (``run_dir``, resolved).

    A run's best model belongs to that run: the score in an existing ``model.json`` is adopted only
    when it was written by the same run and that run is being resumed (``run_dir/latest.pt``
    exists). A new run starts from no score, so it always saves its first validated model; a model
    of another run found there is first moved aside to ``model.<its time>.pt`` (and ``.json``) with a
    log line, never silently replaced (``keep_previous=False`` replaces it, as MONAI Label's
    fine-tuning does with ``models/model.pt``). Every save and every non-improving validation is logged.

    Args:
        save_dir: folder of the best model (the bundle's ``models``, or ``<output_dir>/models``).
        network: the network whose weights are saved.
        metric_name: evaluator metric to maximise (default: the evaluator's key metric).
        filename: ``model.pt``, the file MONAI bundles, Label and Deploy load.
        run_dir: the run's output folder (where ``latest.pt`` lives); None: every start is a new run.
        keep_previous: move another run's model aside instead of replacing it.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        network: torch.nn.Module,
        metric_name: str | None = None,
        filename: str = "model.pt",
        run_dir: str | os.PathLike | None = None,
        keep_previous: bool = True,
    ) -> None:
        self.path = Path(save_dir) / filename
        self.info_path = self.path.with_suffix(".json")
        self.network = network
        self.metric_name = metric_name
        self.run = str(Path(run_dir).resolve()) if run_dir is not None else None
        self.keep_previous = keep_previous
        self.best = -math.inf
        self._foreign = False  # the files at self.path belong to another run
        info: dict = {}
        if self.info_path.is_file():
            try:
                info = json.loads(self.info_path.read_text())
                float(info["value"])
            except (ValueError, KeyError, TypeError, OSError):
                logger.warning(f"ignoring unreadable {self.info_path}")
                info = {}
        resuming = self.run is not None and (Path(self.run) / "latest.pt").is_file()
        if info and resuming and info.get("run") == self.run:
            self.best = float(info["value"])
            logger.info(f"resumed run: best {info.get('metric')} so far {self.best:.4f} ({self.path})")
        elif self.path.is_file():
            self._foreign = True
            logger.info(f"{self.path} is from another run; this run saves its own best model there")

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def _move_previous(self) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.path.stat().st_mtime))
        for src in (self.path, self.info_path):
            if src.is_file():
                dst = src.with_name(f"{self.path.stem}.{stamp}{src.suffix}")
                n = 1
                while dst.exists():
                    dst = src.with_name(f"{self.path.stem}.{stamp}-{n}{src.suffix}")
                    n += 1
                os.replace(src, dst)
                logger.warning(f"kept the previous run's {src.name} as {dst}")

    def __call__(self, engine: Engine) -> None:
        name = self.metric_name or str(getattr(engine.state, "key_metric_name", ""))  # MONAI workflows set it
        value = engine.state.metrics.get(name)
        if not _is_main_process():
            return
        if value is None or not math.isfinite(float(value)):
            logger.warning(f"best model not saved: metric {name!r} is {value} at epoch {engine.state.epoch}")
            return
        if float(value) <= self.best:
            logger.info(f"{name} {float(value):.4f} <= best {self.best:.4f}: {self.path} kept")
            return
        if self._foreign and self.path.is_file() and self.keep_previous:
            self._move_previous()
        self._foreign = False
        self.best = float(value)
        atomic_save({"model": _state(self.network)}, self.path)
        info = {"metric": name, "value": self.best, "epoch": int(engine.state.epoch), "run": self.run}
        tmp = self.info_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.info_path)
        logger.info(f"best {name} {self.best:.4f}: saved {self.path}")
