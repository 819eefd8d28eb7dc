"""Validation of MONAI Label request values (pure Python: imports neither MONAI Label nor FastAPI).

Every value a client sends to ``/infer`` or ``/train`` is parsed here to its type and range before it
reaches a task: keys come from an allow-list, numbers are numbers within bounds, the device comes
from a fixed set, names are plain file names. The output never holds a string that MONAI's bundle
config parser would evaluate (``$`` expression, ``@`` reference, ``%`` macro): the only strings
that leave :func:`validate_train_request` are the device (a fixed set), ``gpus`` (digits and commas),
``run_id`` (``"run"``), ``model`` and ``model_filename`` (plain names).

A bad value raises :class:`InvalidRequest` naming the parameter and the reason; the app turns it into
an HTTP 4xx answer (422, or 404 for an unknown image, 413 for a too large one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "InvalidRequest",
    "check_name",
    "parse_bool",
    "parse_int",
    "parse_float",
    "parse_device",
    "validate_infer_request",
    "validate_train_request",
    "INFER_LIMITS",
    "TRAIN_LIMITS",
]

# bounds of the numeric request options (inclusive); int bounds for int options, float for float ones
INFER_LIMITS: dict[str, Any] = {"scale": (32, 1024), "n_scales": 8, "attention_grid": (1, 64)}
TRAIN_LIMITS: dict[str, tuple[Any, Any]] = {
    "max_epochs": (1, 1000),
    "epoch_length": (1, 100_000),
    "image_size": (32, 1024),
    "batch_size": (1, 256),
    "num_workers": (0, 32),
    "learning_rate": (1e-9, 1.0),
    "gpu_index": (0, 63),
}
MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 1000
_CONFIG_SIGILS = ("$", "@", "%")
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d{1,2})$")


class InvalidRequest(ValueError):
    """A request value that is refused: ``param`` names it, ``reason`` says why, ``status`` is the HTTP code."""

    def __init__(self, param: str, reason: str, status: int = 422) -> None:
        self.param, self.reason, self.status = param, reason, status
        super().__init__(f"parameter '{param}': {reason}")


def _shown(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def check_name(value: Any, param: str = "image") -> str:
    """A plain file name (an image id, a label tag): no path separator, no ``..``, not absolute.

    Also refused: empty names, names starting with ``.``, ``~``, ``$``, ``@`` or ``%``, control
    characters, ``:`` (drive letters, URLs) and names longer than 200 characters.
    """
    if not isinstance(value, str):
        raise InvalidRequest(param, f"must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(param, f"must be a name of 1 to {MAX_NAME_LENGTH} characters")
    if "/" in value or "\\" in value or ".." in value or ":" in value:
        raise InvalidRequest(param, f"{_shown(value)} is not a plain name (no '/', '\\', '..' or ':')")
    if value[0] in ".~" + "".join(_CONFIG_SIGILS) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        reason = f"{_shown(value)} is not a plain name (starts with '{value[0]}' or has control characters)"
        raise InvalidRequest(param, reason)
    return value


def parse_bool(value: Any, param: str) -> bool:
    """``True``/``False``, 0/1 or the strings true/false/yes/no/1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise InvalidRequest(param, f"must be true or false, got {_shown(value)}")


def parse_int(value: Any, param: str, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]`` from an int, an integral float or a decimal string."""
    if isinstance(value, bool):
        raise InvalidRequest(param, f"must be an integer, got {_shown(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidRequest(param, f"must be an integer, got {_shown(value)}")
    if not lo <= value <= hi:
        raise InvalidRequest(param, f"must be between {lo} and {hi}, got {value}")
    return value


def parse_float(value: Any, param: str, lo: float, hi: float) -> float:
    """A finite number in ``[lo, hi]`` from an int, a float or a decimal string."""
    if isinstance(value, bool):
        raise InvalidRequest(param, f"must be a number, got {_shown(value)}")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?\s*", value):
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequest(param, f"must be a finite number, got {_shown(value)}")
    if not lo <= value <= hi:
        raise InvalidRequest(param, f"must be between {lo:g} and {hi:g}, got {value:g}")
    return float(value)


def _first(value: Any) -> Any:
    """MONAI Label's option lists (e.g. the ``device`` choices of ``/info``): the first entry is the choice."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def parse_device(value: Any, param: str = "device", names: Iterable[str] = ()) -> str | None:
    """``cpu``, ``cuda``, ``cuda:N`` or one of ``names`` (the GPU names MONAI Label lists); None if absent."""
    value = _first(value)
    if value in (None, ""):
        return None
    names = set(names)
    if isinstance(value, str) and (_DEVICE.match(value.strip()) or value in names):
        return value.strip() if value not in names else value
    extra = " or " + ", ".join(sorted(names)) if names else ""
    raise InvalidRequest(param, f"must be one of cpu, cuda, cuda:N{extra}; got {_shown(value)}")


def _int_list(value: Any, param: str, lo: int, hi: int, max_len: int) -> list[int]:
    items: list = []
    for v in value if isinstance(value, (list, tuple)) else [value]:
        items.extend(p for p in re.split(r"[,;]", v) if p.strip()) if isinstance(v, str) else items.append(v)
    if not items or len(items) > max_len:
        raise InvalidRequest(param, f"must list 1 to {max_len} values, got {len(items)}")
    return [parse_int(v, param, lo, hi) for v in items]


def _str_list(value: Any, param: str, choices: tuple[str, ...]) -> list[str]:
    items: list = []
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if not isinstance(v, str):
            raise InvalidRequest(param, f"must be names from {', '.join(choices)}, got {_shown(v)}")
        items.extend(p.strip() for p in re.split(r"[,;]", v) if p.strip())
    bad = [v for v in items if v not in choices]
    if not items or bad:
        raise InvalidRequest(param, f"must be names from {', '.join(choices)}, got {_shown(bad or value)}")
    return list(dict.fromkeys(items))


# keys MONAI Label itself puts in an infer request (not client options); refused when a client sends them
INFER_SERVER_KEYS = ("model", "image", "label", "session", "description")
# client keys MONAI Label viewers send with every request; accepted and dropped when harmless
INFER_IGNORED = {"result_compress": bool, "client_id": str, "largest_cc": bool}


def validate_infer_request(
    params: Mapping[str, Any], views: tuple[str, ...], device_names: Iterable[str] = (), server_keys: bool = False
) -> dict[str, Any]:
    """The typed infer options of a request; raises :class:`InvalidRequest` on any other key or bad value.

    Options: ``scales`` (1 to 8 multiples of 16 in [32, 1024]), ``views`` (names from ``views``),
    ``return_attention`` (bool), ``attention_grid`` (1..64), ``device``, ``result_extension``
    (``.png``), ``result_dtype`` (``uint8``), ``result_write_to_file`` (bool); ``result_compress``,
    ``client_id``, ``largest_cc`` are accepted and ignored.

    Args:
        params: the request (client options; with ``server_keys`` also the keys MONAI Label adds).
        views: the allowed view names.
        device_names: extra device names accepted (MONAI Label's GPU names).
        server_keys: pass ``model``, ``image``, ``label``, ``session``, ``description`` through
            unchanged (the app's own request); otherwise a client sending them is refused.
    """
    if not isinstance(params, Mapping):
        raise InvalidRequest("params", f"must be a JSON object, got {type(params).__name__}")
    out: dict[str, Any] = {}
    lo, hi = INFER_LIMITS["scale"]
    for key, value in params.items():
        if key in INFER_SERVER_KEYS:
            if not server_keys:
                raise InvalidRequest(key, "is set by the server from the URL and the upload, not by params")
            out[key] = value
        elif key == "scales":
            scales = _int_list(value, key, lo, hi, INFER_LIMITS["n_scales"])
            bad = [s for s in scales if s % 16]
            if bad:
                raise InvalidRequest(key, f"must be multiples of 16, got {bad}")
            out[key] = scales
        elif key == "views":
            out[key] = _str_list(value, key, views)
        elif key in ("return_attention", "result_write_to_file"):
            out[key] = parse_bool(value, key)
        elif key == "attention_grid":
            out[key] = parse_int(value, key, *INFER_LIMITS["attention_grid"])
        elif key == "device":
            device = parse_device(value, key, device_names)
            if device is not None:
                out[key] = device
        elif key == "result_extension":
            if str(value).lower() not in (".png", "png"):
                raise InvalidRequest(key, f"only .png is written, got {_shown(value)}")
            out[key] = ".png"
        elif key == "result_dtype":
            if str(value) != "uint8":
                raise InvalidRequest(key, f"only uint8 is written, got {_shown(value)}")
            out[key] = "uint8"
        elif key in INFER_IGNORED:
            continue
        else:
            allowed = ["scales", "views", "return_attention", "attention_grid", "device", "result_extension",
                       "result_dtype", "result_write_to_file", *INFER_IGNORED]  # fmt: skip
            raise InvalidRequest(str(key)[:60], f"is not an infer option (allowed: {', '.join(allowed)})")
    return out


TRAIN_SERVER_KEYS = ("model", "bundle_path", "local_rank")


def validate_train_request(
    params: Mapping[str, Any],
    device_names: Iterable[str] = (),
    model_files: Iterable[str] | None = None,
    server_keys: bool = False,
) -> dict[str, Any]:
    """The typed train options of a request; raises :class:`InvalidRequest` on any other key or bad value.

    Options (bounds in :data:`TRAIN_LIMITS`): ``max_epochs``, ``epoch_length``, ``image_size``
    (a multiple of 16), ``batch_size``, ``num_workers``, ``learning_rate``, ``val_split`` (-1, or
    0 <= x < 1), ``pretrained``, ``multi_gpu``, ``force_multi_gpu`` (bools), ``gpus`` (``all`` or
    GPU indices), ``device``, ``model_filename`` (a plain ``.pt`` name in ``model_files``),
    ``run_id`` (``run``), ``tracking`` (``None``: no experiment tracking in this app) and its
    ``tracking_uri`` / ``tracking_experiment_name`` / ``tracking_run_name`` (strings, dropped);
    ``client_id`` (sent by MONAI Label's Python client) is ignored.

    Args:
        params: the request.
        device_names: extra device names accepted (MONAI Label's GPU names).
        model_files: the checkpoint names that exist in the bundle's ``models`` (None: not checked).
        server_keys: keep ``model`` (a plain name) and ``local_rank`` (an index), drop
            ``bundle_path`` (the task knows its bundle); otherwise a client sending them is refused.
    """
    if not isinstance(params, Mapping):
        raise InvalidRequest("params", f"must be a JSON object, got {type(params).__name__}")
    out: dict[str, Any] = {}
    ints = ("max_epochs", "epoch_length", "image_size", "batch_size", "num_workers")
    for key, value in params.items():
        if key in TRAIN_SERVER_KEYS:
            if not server_keys:
                raise InvalidRequest(key, "is set by the server, not by params")
            if key == "model":
                out[key] = check_name(value, key)
            elif key == "local_rank":  # set by MONAI Label's train subprocess
                out[key] = parse_int(value, key, *TRAIN_LIMITS["gpu_index"])
        elif key in ints:
            out[key] = parse_int(value, key, *TRAIN_LIMITS[key])
            if key == "image_size" and out[key] % 16:
                raise InvalidRequest(key, f"must be a multiple of 16, got {out[key]}")
        elif key == "learning_rate":
            out[key] = parse_float(value, key, *TRAIN_LIMITS[key])
        elif key == "val_split":
            v = parse_float(value, key, -1.0, 0.99)
            if -1.0 < v < 0.0:
                raise InvalidRequest(key, f"must be -1 (the bundle's own datalists) or in [0, 1), got {v:g}")
            out[key] = v
        elif key in ("pretrained", "multi_gpu", "force_multi_gpu"):
            out[key] = parse_bool(value, key)
        elif key == "gpus":
            if _first(value) in (None, "", "all"):
                out[key] = "all"
            else:
                out[key] = ",".join(str(g) for g in _int_list(value, key, *TRAIN_LIMITS["gpu_index"], max_len=64))
        elif key == "device":
            device = parse_device(value, key, device_names)
            if device is not None:
                out[key] = device
        elif key == "model_filename":
            name = check_name(_first(value), key)
            if not name.endswith(".pt"):
                raise InvalidRequest(key, f"must name a .pt checkpoint, got {_shown(name)}")
            if model_files is not None and name not in set(model_files):
                raise InvalidRequest(key, f"{name} is not in the bundle's models folder", 404)
            out[key] = name
        elif key == "run_id":
            if _first(value) not in (None, "", "run"):
                raise InvalidRequest(key, f"only 'run' is supported, got {_shown(value)}")
            out[key] = "run"
        elif key == "tracking":
            if str(_first(value) or "none").lower() != "none":
                raise InvalidRequest(key, f"experiment tracking is not available in this app, got {_shown(value)}")
            out[key] = "None"
        elif key == "client_id":
            continue  # monailabel.client.MONAILabelClient adds it to every request (None unless set): ignored
        elif key in ("tracking_uri", "tracking_experiment_name", "tracking_run_name"):
            if value is not None and not (isinstance(value, str) and len(value) <= MAX_TEXT_LENGTH):
                raise InvalidRequest(key, f"must be a string of at most {MAX_TEXT_LENGTH} characters")
            # dropped: with tracking off MONAI Label does not use it
        else:
            allowed = [*ints, "learning_rate", "val_split", "pretrained", "multi_gpu", "force_multi_gpu", "gpus",
                       "device", "model_filename", "run_id", "tracking"]  # fmt: skip
            raise InvalidRequest(str(key)[:60], f"is not a train option (allowed: {', '.join(allowed)})")
    return out
