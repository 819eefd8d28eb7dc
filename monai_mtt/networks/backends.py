"""Inference backends: the same trained MT-TransUNet run by eager PyTorch, its folded copy or ONNX Runtime.

=================  ==================================================================================
``eager``          the training network in eval mode (the reference).
``fused``          :func:`~monai_mtt.networks.fuse_for_inference`: standardised kernels frozen, Conv+BN folded,
                   the decoder's up blocks with a skip factorized (:mod:`~monai_mtt.networks.factorized_up`);
                   on a CPU its kernels are stored channels-last, so that oneDNN runs the convolutions in its
                   NHWC kernels (measured 0.86x the TTA time of the NCHW layout on 2 cores), the decoder's
                   last two up blocks run image by image (:mod:`~monai_mtt.networks.per_image_tail`) and the
                   ResNet's per-channel projection norms skip PyTorch's slow channels-last path for small maps
                   (:mod:`~monai_mtt.networks.channel_norm`).
``onnxruntime``    the same folded network exported to ONNX in memory and run by ONNX Runtime's CPU provider
                   (:class:`OnnxRuntimeMTT`): mask and class logits and the cls attention, like ``eager``.
``auto``           the fastest for the bundle's default work, the 18-view TTA (batches of 6 views): ``fused``,
                   on a CPU too. Measured on the 2-core CPU, same process, alternating: ONNX Runtime's TTA
                   took 1.11x ``fused``'s (paired median of 8; slower in 5 of 8); for one 224 image it was
                   0.79-1.04x ``fused``'s time in six runs, so batch-1 work (the plain inferer) may force it.
=================  ==================================================================================

Every backend computes the same function as ``eager`` (outputs equal within 1e-4; checked by the tests),
so the choice is one of speed only. The bundle configs expose it as ``inference_backend`` (default
``auto``), which the MONAI Label infer task and the Deploy app read; ``MONAI_MTT_BACKEND`` overrides it there.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings

import torch
from torch import nn

from monai_mtt.keys import OutputKeys
from monai_mtt.networks.channel_norm import channel_norms_for_channels_last
from monai_mtt.networks.fuse import fuse_for_inference
from monai_mtt.networks.mt_transunet import MTTransUNet, MTTransUNetInfer
from monai_mtt.networks.onnx import INPUT_NAME, ort_run, ort_session
from monai_mtt.networks.per_image_tail import per_image_tail

__all__ = ["BACKENDS", "OnnxRuntimeMTT", "build_backend", "resolve_backend"]

logger = logging.getLogger(__name__)

#: the values of the ``backend`` setting.
BACKENDS = ("auto", "onnxruntime", "fused", "eager")


#: what the ``onnxruntime`` backend needs: ``onnx`` (``torch.onnx.export`` writes the model through it) and
#: ``onnxruntime`` (runs it); ``pip install 'monai_mtt[onnx]'`` installs both.
ORT_MODULES = ("onnx", "onnxruntime")


def onnxruntime_available() -> bool:
    """Whether the ``onnxruntime`` backend can run here: every module of :data:`ORT_MODULES` importable
    (checked without importing them). With onnxruntime alone an ``.onnx`` file still runs, but weights cannot
    be exported."""
    return all(importlib.util.find_spec(name) is not None for name in ORT_MODULES)


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """The concrete backend for a ``backend`` setting on ``device``.

    Args:
        backend: one of :data:`BACKENDS`.
        device: where inference runs; ``onnxruntime`` runs on the CPU only.

    Raises:
        ValueError: an unknown name, or ``onnxruntime`` asked for on a non-CPU device.
        ImportError: ``onnxruntime`` asked for but not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    cpu = torch.device(device).type == "cpu"
    if backend == "auto":
        return "fused"
    if backend == "onnxruntime":
        if not cpu:
            raise ValueError(f"backend 'onnxruntime' runs on the CPU; device is {device}: use 'fused' or 'auto'.")
        if not onnxruntime_available():
            raise ImportError(
                "backend 'onnxruntime' needs onnx (to export the weights) and onnxruntime: "
                "pip install 'monai_mtt[onnx]' (or use 'auto')."
            )
    return backend


#: the outputs the ONNX graph has, in order (the attention only with a Transformer)
_EXPORTED = (OutputKeys.SEG, OutputKeys.LSF, OutputKeys.CLS, OutputKeys.ATTN)


class _LogitsGraph(nn.Module):
    """What :class:`OnnxRuntimeMTT` exports: ``(seg logits, level set, class logits[, cls attention])``."""

    def __init__(self, network: MTTransUNet, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.network = network
        self.keys = keys

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = MTTransUNet.outputs(self.network, x, OutputKeys.ATTN in self.keys)
        return tuple(out[k] for k in self.keys)


class OnnxRuntimeMTT(nn.Module):
    """An :class:`~monai_mtt.networks.MTTransUNet` run by ONNX Runtime, with the eager network's interface.

    The network is folded (:func:`~monai_mtt.networks.fuse_for_inference`) and exported in memory with
    dynamic batch, height and width (sides multiples of 16); nothing is written to disk. ``outputs(x,
    return_attention)`` returns the dict :meth:`MTTransUNet.outputs` returns (``seg`` and ``cls``
    logits, ``lsf``, ``attn`` when asked), so every inferer (both TTA ensembles included) treats it like the
    eager network; ``forward`` returns what the source network's ``forward`` returns (the mask
    probabilities, and class probabilities, for an :class:`~monai_mtt.networks.MTTransUNetInfer`).

    Args:
        network: a trained :class:`MTTransUNet` (or ``MTTransUNetInfer``); not changed.
        threads: ONNX Runtime intra-op threads (its default, the physical cores, when None).

    Shape:
        ``x``: ``(B, C, H, W)`` float; outputs as :class:`MTTransUNet`, on ``x``'s device.
    """

    def __init__(self, network: MTTransUNet, threads: int | None = None) -> None:
        super().__init__()
        if not isinstance(network, MTTransUNet):
            raise TypeError(f"OnnxRuntimeMTT runs an MTTransUNet, got {type(network).__name__}.")
        self.probabilities = isinstance(network, MTTransUNetInfer)
        self.with_classes = bool(getattr(network, "with_classes", False))
        self.attention = network.num_layers > 0
        self.patch_size = network.patch_size
        names = [str(k) for k in _EXPORTED[: len(_EXPORTED) if self.attention else -1]]
        folded = fuse_for_inference(network, factorize_upsampling=True).cpu().float()
        graph = _LogitsGraph(folded, tuple(names)).eval()
        image_axes = {0: "batch", 2: "height", 3: "width"}
        axes = {INPUT_NAME: image_axes, "seg": image_axes, "lsf": image_axes, "cls": {0: "batch"},
                "attn": {0: "batch", 1: "grid_h", 2: "grid_w"}}  # fmt: skip
        in_channels = network.resnet.conv_root.in_channels
        buffer = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # torch.onnx.export writes to a binary file object too (documented); its annotation says path only
            torch.onnx.export(
                graph, (torch.rand(2, in_channels, 64, 64),), buffer,  # type: ignore[arg-type]
                dynamo=False, input_names=[INPUT_NAME],
                output_names=names, dynamic_axes={k: v for k, v in axes.items() if k in [INPUT_NAME, *names]},
                opset_version=17,
            )  # fmt: skip
        self.session = ort_session(buffer.getvalue(), threads)
        self.output_names = names

    def outputs(
        self, x: torch.Tensor, return_attention: bool = False, return_level_set: bool = True
    ) -> dict[str, torch.Tensor]:
        """The output dict of :meth:`MTTransUNet.outputs` (``seg``, ``cls`` logits; ``attn`` and ``lsf`` as
        asked; the graph computes ``lsf`` either way)."""
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(
                f"MTTransUNet needs image sides that are multiples of {self.patch_size}, "
                f"got {x.shape[-2]}x{x.shape[-1]}."
            )
        if return_attention and not self.attention:
            raise ValueError("return_attention needs at least one Transformer layer (num_layers > 0).")
        out = dict(zip(self.output_names, ort_run(self.session, self.output_names, x)))
        if not return_attention:
            out.pop(OutputKeys.ATTN, None)
        if not return_level_set:
            out.pop(OutputKeys.LSF, None)
        return out

    def forward(self, x: torch.Tensor):
        out = self.outputs(x)
        if not self.probabilities:
            return out
        seg = out[OutputKeys.SEG].softmax(dim=1)
        return (seg, out[OutputKeys.CLS].softmax(dim=1)) if self.with_classes else seg


def build_backend(network: MTTransUNet, backend: str = "auto", device: str | torch.device = "cpu") -> nn.Module:
    """``network`` (trained weights) as the inference module of ``backend`` on ``device``, in eval mode.

    Args:
        network: an :class:`MTTransUNet` (or ``MTTransUNetInfer``); not changed for ``fused`` and
            ``onnxruntime`` (they work on copies); ``eager`` returns it in eval mode.
        backend: one of :data:`BACKENDS` (see :func:`resolve_backend`).
        device: the inference device.
    """
    name = resolve_backend(backend, device)
    logger.info("inference backend: %s%s", name, " (auto)" if backend == "auto" else "")
    if name == "onnxruntime":
        return OnnxRuntimeMTT(network.eval())
    if name == "fused":
        fused = fuse_for_inference(network.eval(), factorize_upsampling=True)
        if torch.device(device).type != "cpu":
            return fused.to(device)
        # its 4-D parameters are the convolution kernels: stored channels-last, oneDNN runs NHWC convolutions
        # (Module.to documents memory_format; torch's stubs leave it out); the decoder's high-resolution blocks
        # run image by image (:mod:`~monai_mtt.networks.per_image_tail`), the per-channel norms as ChannelNorm
        fused = channel_norms_for_channels_last(per_image_tail(fused))
        return fused.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return network.eval().to(device)
