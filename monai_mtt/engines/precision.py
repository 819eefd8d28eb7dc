"""The ``amp`` setting of the engines: ``True``, ``False`` or ``"auto"`` (mixed precision where it is native)."""

from __future__ import annotations

import torch

__all__ = ["native_half_precision", "resolve_amp"]


def native_half_precision(device: str | torch.device) -> bool:
    """Whether ``device`` computes in half precision natively: any CUDA device, or a CPU with AMX or
    AVX-512 BF16 (where oneDNN runs bfloat16 convolutions and matrix products about twice as fast as float32)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return True
    if dev.type != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_amp(amp: bool | str, device: str | torch.device) -> bool:
    """The ``amp`` setting as a bool: ``"auto"`` means :func:`native_half_precision` of ``device``.

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
        return native_half_precision(device)
    if not isinstance(amp, bool):
        raise ValueError(f"amp must be true, false or 'auto', got {amp!r}.")
    return amp
