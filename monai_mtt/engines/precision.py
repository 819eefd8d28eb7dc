"""The ``amp`` setting of the engines: ``True``, ``False`` or ``"auto"`` (mixed precision where it measured faster)."""

from __future__ import annotations

import torch

__all__ = ["mixed_precision_pays", "resolve_amp"]


def mixed_precision_pays(device: str | torch.device) -> bool:
    """Whether ``amp: auto`` trains ``device`` in mixed precision: on a CPU with AMX or AVX-512 BF16, where
    oneDNN runs bfloat16 convolutions and matrix products about three times as fast as float32 (a 4+4
    iteration at 224 px took 0.45x the float32 time on a 2-core Sapphire Rapids). Not on CUDA: at the
    paper's batch the iteration is bound by kernel launches, not arithmetic, and float16 autocast with its
    casts and gradient scaler measured slower than float32 on an H100 (9.2-9.7 vs 10.6-12.0 it/s at 4+4,
    7.4 vs 8.1 it/s at 16+16; ``benchmarks/gpu_report.py``). ``amp: true`` still forces it there."""
    dev = torch.device(device)
    if dev.type != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_amp(amp: bool | str, device: str | torch.device) -> bool:
    """The ``amp`` setting as a bool: ``"auto"`` means :func:`mixed_precision_pays` on ``device``.

    ``"true"`` / ``"false"`` (any case) are accepted as the booleans, since a bundle command line
    (``--amp false``) passes them as strings.

    Raises:
        ValueError: anything other than True, False, ``"true"``, ``"false"`` or ``"auto"``.
    """
    if isinstance(amp, str):
        word = amp.strip().lower()
        if word in ("true", "false"):
            return word == "true"
        if word != "auto":
            raise ValueError(f"amp must be true, false or 'auto', got {amp!r}.")
        return mixed_precision_pays(device)
    if not isinstance(amp, bool):
        raise ValueError(f"amp must be true, false or 'auto', got {amp!r}.")
    return amp
