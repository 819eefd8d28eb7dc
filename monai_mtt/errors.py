"""Messages instead of tracebacks for a user's mistakes in ``python -m monai.bundle run ...``.

MONAI's bundle runner wraps every error of a config expression in ``RuntimeError("Failed to evaluate
...")`` and Python prints the whole chain. For the errors our workflows raise on purpose, whose
message already names the file and the fix (:data:`USER_ERRORS`), the hook installed here prints
``error: <message>`` and ends the process with status 2; any other exception keeps its traceback.
It is installed only when ``monai_mtt`` is imported by MONAI's bundle runner (``sys.argv[0]`` is
``monai/bundle/__main__.py``), never in a user's own program or notebook.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

__all__ = ["user_error", "install_bundle_excepthook", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2


def _user_error_types() -> tuple[type[BaseException], ...]:
    from monai_mtt.data.validation import DataValidationError
    from monai_mtt.networks.checkpoint import CheckpointError
    from monai_mtt.transforms.io import ImageTooLargeError

    return (DataValidationError, CheckpointError, ImageTooLargeError, FileExistsError, FileNotFoundError)


def user_error(exc: BaseException | None) -> BaseException | None:
    """The first of our deliberate user-facing errors along ``exc``'s cause/context chain, or None."""
    try:
        types = _user_error_types()
    except Exception:  # noqa: BLE001 - a broken install: keep the traceback
        return None
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, types):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _hook(previous):
    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        err = user_error(value)
        if err is None:
            previous(kind, value, tb)
            return
        print(f"error: {err}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_USER_ERROR)  # sys.exit is not possible from an excepthook

    return hook


def install_bundle_excepthook() -> bool:
    """Install the hook when running under ``python -m monai.bundle``; returns whether it was installed."""
    main = sys.argv[0].replace("\\", "/") if sys.argv and sys.argv[0] else ""
    if not main.endswith("monai/bundle/__main__.py") or getattr(sys.excepthook, "_monai_mtt", False):
        return False
    sys.excepthook = _hook(sys.excepthook)
    sys.excepthook._monai_mtt = True  # type: ignore[attr-defined]
    return True
