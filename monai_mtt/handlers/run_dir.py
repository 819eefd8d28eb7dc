"""One training per output folder: a lock held for the run, and the stale temporary files of killed runs removed.

``claim_output_dir`` is the first step of the training configs' ``initialize``. It takes an
exclusive ``flock`` on ``<output_dir>/.monai_mtt.lock`` (released by the operating system when the
process ends, so a killed run never leaves a stale lock); a second training into the same folder
stops at once with a message naming the folder and the running process, before touching anything.
Holding the lock, it deletes the temporary files that :func:`~monai_mtt.handlers.atomic_save` leaves
when a run is killed mid-save (``.latest.pt.XXXXXXXX.tmp``, ``.model.pt.XXXXXXXX.tmp``, ~350 MB
each): all of them in ``output_dir``; in other folders (a ``ckpt_dir`` shared by several runs) only
those older than an hour.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["claim_output_dir", "remove_stale_temporaries", "LOCK_NAME"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".monai_mtt.lock"
# atomic_save's names: mkstemp(prefix=".<name>.", suffix=".tmp") -> ".latest.pt.k3j_x9a2.tmp"
_TEMP = re.compile(r"^\.(latest|model)\.pt\.[A-Za-z0-9_]{6,12}\.tmp$|^(latest|model)\.json\.tmp$")
_held: dict[str, IO] = {}  # folder -> open lock file, kept for the life of the process


def remove_stale_temporaries(folder: str | os.PathLike, min_age_s: float = 0.0) -> list[Path]:
    """Delete our own checkpoint temporaries in ``folder`` (not recursive) older than ``min_age_s``.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.iterdir():
        if not _TEMP.match(path.name) or not path.is_file() or path.is_symlink():
            continue
        try:
            if now - path.stat().st_mtime < min_age_s:
                continue
            size = path.stat().st_size
            path.unlink()
        except OSError:
            continue
        removed.append(path)
        logger.warning(f"removed {path} ({size / 1e6:.0f} MB), left by a run killed while saving")
    return removed


def claim_output_dir(output_dir: str | os.PathLike, *other_dirs: str | os.PathLike | None) -> Path:
    """Lock ``output_dir`` for this run (rank 0 only) and clean stale checkpoint temporaries.

    Args:
        output_dir: the run's folder (created).
        other_dirs: further folders the run saves into (``ckpt_dir``), cleaned of temporaries older
            than an hour.

    Returns:
        The lock file.

    Raises:
        SystemExit: (status 2) another process holds the lock; the message names the folder and its pid.
    """
    folder = Path(output_dir).resolve()
    lock = folder / LOCK_NAME
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 holds the lock for the run
        return lock
    key = str(folder)
    if key not in _held:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        f = open(lock, "a+")  # noqa: SIM115 - held open (in _held) for the run: the lock lives with it
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            print(
                f"error: {folder} is in use by another training ({holder}). Wait for it to finish, or pass "
                "another --output_dir.",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(2) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        _held[key] = f
    remove_stale_temporaries(folder)
    for other in other_dirs:
        if other and Path(other).resolve() != folder:
            remove_stale_temporaries(other, min_age_s=3600.0)
    return lock
