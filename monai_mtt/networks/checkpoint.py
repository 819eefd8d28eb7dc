"""Load trained weights for inference: a bundle checkpoint (``{"model": state_dict}``), a checkpoint saved by
the authors' training code (converted on load), TorchScript or ONNX."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from monai_mtt.networks.authors import convert_authors_state_dict, is_authors_state_dict

if TYPE_CHECKING:
    from monai_mtt.networks.mt_transunet import MTTransUNet

__all__ = ["load_checkpoint", "load_inference_network", "is_torchscript", "CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as network weights (empty, truncated, text, wrong content)."""


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` with any failure reported as :class:`CheckpointError` naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - EOFError, UnpicklingError, zip errors, KeyError from a text file...
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(
            f"'{path}' ({size} bytes) is not a readable PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]}): "
            "it is empty, truncated or not a checkpoint. Pass the model.pt written by training (or re-export it)."
        ) from None


def load_checkpoint(network: nn.Module, path: str | os.PathLike, key: str = "model") -> nn.Module:
    """Load ``path`` (``{key: state_dict}`` as our ``BestCheckpoint`` writes, or a bare state dict) into ``network``.

    A state dict saved by the authors' training code (JingyeChen/MT-TransUNet: ``torch.save`` of their
    ``DataParallel`` model, keys ``module.transformer.embeddings...``) is recognised by its key names
    and converted with :func:`~monai_mtt.networks.authors.convert_authors_state_dict`.
    Uses ``torch.load(weights_only=True)``. Raises ``FileNotFoundError`` naming the file and how to
    make one when it is missing, and ``RuntimeError`` listing mismatched keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: '{path}'. Train first (python -m monai.bundle run training --meta_file "
            "bundle/configs/metadata.json --config_file bundle/configs/train.yaml) or pass --checkpoint PATH."
        )
    state = _torch_load(path)
    if isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"'{path}' holds a {type(state).__name__}, not network weights ({{'{key}': state_dict}} or a state "
            "dict). Pass the model.pt written by training, or a TorchScript/ONNX export."
        )
    target = getattr(network, "module", network)
    if isinstance(state, dict) and is_authors_state_dict(state):
        try:
            state = convert_authors_state_dict(state, target)
        except ValueError as e:
            raise RuntimeError(f"'{path}' has the authors' key names but does not convert: {e}") from e
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"'{path}' does not fit the network: missing {len(missing)} keys (e.g. {missing[:3]}), "
            f"unexpected {len(unexpected)} (e.g. {unexpected[:3]}). Does network_def match the training config "
            "(num_layers, sizes)?"
        )
    return network


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a ``.ts`` / ``.pt2`` file, or a zip with
    ``constants.pkl`` or ``code/``), not a ``torch.save`` checkpoint."""
    path = Path(path)
    if path.suffix in (".ts", ".pt2"):
        return True
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(("constants.pkl", "/code/")) for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_inference_network(
    network_def: nn.Module,
    checkpoint: str | os.PathLike,
    device: str | torch.device = "cpu",
    fuse: bool = True,
    backend: str = "auto",
) -> nn.Module:
    """The network to run inference with, in eval mode on ``device``.

    ``checkpoint`` may be a TorchScript file (``ckpt_export``'s ``model.ts``; loaded with
    ``torch.jit.load``, ``network_def`` unused), an ONNX file (``python -m monai_mtt.networks.onnx``, or
    an INT8 one; run with ONNX Runtime on the CPU, without attention maps) or weights for ``network_def``.
    Weights are run by ``backend`` (:mod:`monai_mtt.networks.backends`): ``auto`` (default) is the folded
    network, the fastest for the TTA; ``onnxruntime``, ``fused`` and ``eager`` force one. ``fuse=False`` is
    the older spelling of ``backend="eager"``.
    """
    from monai_mtt.networks.backends import build_backend, resolve_backend

    resolve_backend(backend, device)  # an unknown or unusable setting fails before any file is read
    path = Path(checkpoint)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(
                f"ONNX model not found: '{path}' (export one with python -m monai_mtt.networks.onnx)."
            )
        from monai_mtt.networks.onnx import OnnxRuntimeNetwork

        return OnnxRuntimeNetwork(path)
    if path.is_file() and is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # noqa: BLE001 - any load failure means the file is not a usable model
            raise CheckpointError(
                f"'{path}' is not a readable TorchScript model ({type(e).__name__}: {str(e)[:200]}); re-export it "
                "with python -m monai.bundle ckpt_export."
            ) from None
    net = cast("MTTransUNet", load_checkpoint(network_def, path).eval())  # network_def: the bundle's MTTransUNet
    return build_backend(net, "eager" if not fuse else backend, device)
