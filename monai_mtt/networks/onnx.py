"""ONNX export of MT-TransUNet and an onnxruntime-backed network for our inferers.

* :func:`export_onnx` writes ``MTTransUNetInfer(with_classes=True)`` -- the fixed tuple
  ``(seg probabilities (B, 2, H, W), class probabilities (B, C))`` -- after
  :func:`~monai_mtt.networks.fuse_for_inference` (standardised kernels frozen, Conv+BN folded), with
  dynamic batch, height and width (sides must stay multiples of 16). The dynamo exporter (needs
  ``onnxscript``) is tried first, the legacy TorchScript-based exporter second.
* :class:`OnnxRuntimeNetwork` wraps an onnxruntime CPU session as a torch-callable ``nn.Module``:
  ``(B, 3, H, W)`` tensor in, the same tuple out. :class:`~monai_mtt.inferers.MultiScaleTTAInferer`
  and :class:`~monai_mtt.inferers.MTTSimpleInferer` accept it as they accept a TorchScript export
  (no attention maps: those need the eager network).

Command line::

    python -m monai_mtt.networks.onnx --checkpoint bundle/models/model.pt --out model.onnx [--num_layers 4]
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from monai_mtt.networks.fuse import fuse_for_inference
from monai_mtt.networks.mt_transunet import MTTransUNet, MTTransUNetInfer

__all__ = ["export_onnx", "OnnxRuntimeNetwork", "ort_run", "ort_session", "to_export_network"]

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("seg_probabilities", "class_probabilities")


def to_export_network(network: nn.Module) -> MTTransUNetInfer:
    """An eval-mode, fused ``MTTransUNetInfer(with_classes=True)`` with ``network``'s weights.

    ``network`` may be an :class:`MTTransUNet` (or ``MTTransUNetInfer``) of any configuration; its
    constructor arguments are read back from the module structure.
    """
    if isinstance(network, MTTransUNetInfer) and network.with_classes:
        infer = network
    elif isinstance(network, MTTransUNet):
        infer = MTTransUNetInfer.__new__(MTTransUNetInfer)
        nn.Module.__init__(infer)
        infer.__dict__.update({k: v for k, v in network.__dict__.items() if k != "training"})
        infer.with_classes = True
    else:
        raise TypeError(f"expected an MTTransUNet, got {type(network).__name__}.")
    return fuse_for_inference(infer)


def _dynamic_shapes(dynamic: bool):
    if not dynamic:
        return None
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    # sides are multiples of 16 (the 1/16 token grid): express them as 16 * k
    h = 16 * Dim("h16", min=1, max=256)
    w = 16 * Dim("w16", min=1, max=256)
    return {"x": {0: batch, 2: h, 3: w}}


def export_onnx(
    network: nn.Module,
    path: str | os.PathLike,
    image_size: int = 224,
    dynamic: bool = True,
    opset: int | None = None,
    exporter: str = "auto",
) -> Path:
    """Export ``network`` (an :class:`MTTransUNet` with trained weights) to ONNX at ``path``.

    Args:
        network: the network; it is copied, fused and put in eval mode (not changed itself).
        path: output ``.onnx`` file (parent folders are created).
        image_size: side of the example input (a multiple of 16).
        dynamic: dynamic batch, height and width; otherwise the graph is fixed to
            ``(1, 3, image_size, image_size)``.
        opset: ONNX opset (the exporter's default when None).
        exporter: ``"dynamo"``, ``"legacy"`` or ``"auto"`` (dynamo, then legacy on failure).

    Returns:
        the written path. Inputs: ``image`` ``(B, 3, H, W)`` float32; outputs ``seg_probabilities``
        ``(B, 2, H, W)`` and ``class_probabilities`` ``(B, C)``.
    """
    if image_size % 16:
        raise ValueError(f"image_size {image_size} is not a multiple of 16.")
    if exporter not in ("auto", "dynamo", "legacy"):
        raise ValueError(f"exporter must be auto, dynamo or legacy, got {exporter!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = to_export_network(network).cpu().float()
    in_channels = net.resnet.conv_root.in_channels
    example = torch.rand(2 if dynamic else 1, in_channels, image_size, image_size)
    errors = []
    for kind in ("dynamo", "legacy") if exporter == "auto" else (exporter,):
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "dynamo":
                    prog = torch.onnx.export(
                        net,
                        (example,),
                        dynamo=True,
                        input_names=[INPUT_NAME],
                        output_names=list(OUTPUT_NAMES),
                        dynamic_shapes=_dynamic_shapes(dynamic),
                        opset_version=opset,
                        external_data=False,
                        verbose=False,
                    )
                    if prog is None:  # torch returns the program when dynamo=True
                        raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
                    prog.save(str(path))
                else:
                    axes = (
                        {
                            INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                            OUTPUT_NAMES[0]: {0: "batch", 2: "height", 3: "width"},
                            OUTPUT_NAMES[1]: {0: "batch"},
                        }
                        if dynamic
                        else None
                    )
                    torch.onnx.export(
                        net,
                        (example,),
                        str(path),
                        dynamo=False,
                        input_names=[INPUT_NAME],
                        output_names=list(OUTPUT_NAMES),
                        dynamic_axes=axes,
                        opset_version=opset or 17,
                    )
            logger.info("exported %s with the %s exporter", path, kind)
            return path
        except Exception as err:  # noqa: BLE001 - try the next exporter, report all at the end
            errors.append(f"{kind}: {type(err).__name__}: {err}")
            logger.warning("ONNX export with the %s exporter failed: %s", kind, err)
    raise RuntimeError("ONNX export failed:\n" + "\n".join(errors))


def ort_session(model: str | os.PathLike | bytes, threads: int | None = None, spinning: bool = True):
    """An ONNX Runtime CPU session for ``model`` (a file path or the serialised model), as all our ORT paths use it.

    Args:
        model: ``.onnx`` path or model bytes.
        threads: intra-op threads (ONNX Runtime's default, the physical cores, when None).
        spinning: let idle intra-op threads busy-wait between parallel sections (ONNX Runtime's default;
            measured on 2 cores: a batch-6 forward at 256 px 7 % faster, a PyTorch forward right after it
            not slower); False makes them sleep, for processes that share the cores with other work.
    """
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("running an ONNX model needs onnxruntime: pip install 'monai_mtt[onnx]'") from err
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])


def ort_run(session, output_names: list[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``session`` (one image input) on ``x`` ``(B, C, H, W)``: float32 CPU array in, the named outputs
    back as tensors on ``x``'s device."""
    x = x.as_tensor() if hasattr(x, "as_tensor") else x
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    values = session.run(output_names, {session.get_inputs()[0].name: arr})
    return [torch.from_numpy(v).to(x.device) for v in values]


class OnnxRuntimeNetwork(nn.Module):
    """An exported MT-TransUNet run by onnxruntime on the CPU, callable like the torch network.

    ``forward(x)`` takes a ``(B, 3, H, W)`` tensor and returns ``(seg probabilities, class
    probabilities)`` as float32 CPU tensors (moved back to ``x``'s device). It has no ``outputs``
    method, so the inferers use it as a fixed-tuple export (no attention maps).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (onnxruntime's default when None).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(self.path, threads)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg, cls = ort_run(self.session, self.output_names, x)
        return seg, cls

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}"


def _network(num_layers: int) -> MTTransUNet:
    """The network the command line loads checkpoints into (the paper's configuration)."""
    return MTTransUNet(num_layers=num_layers)


def main(argv: list[str] | None = None) -> Path:
    from monai_mtt.networks.checkpoint import load_checkpoint

    p = argparse.ArgumentParser(
        prog="python -m monai_mtt.networks.onnx", description="Export an MT-TransUNet checkpoint to ONNX."
    )
    p.add_argument("--checkpoint", required=True, help="training checkpoint ({'model': state_dict}) or state dict")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--num_layers", type=int, default=4, help="Transformer layers of the checkpoint's network (4)")
    p.add_argument("--image_size", type=int, default=224, help="example input side (224)")
    p.add_argument("--static", action="store_true", help="fixed (1, 3, image_size, image_size) input")
    p.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "legacy"])
    p.add_argument("--check", action="store_true", help="compare onnxruntime with the eager network afterwards")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    net = load_checkpoint(_network(args.num_layers), args.checkpoint).eval()
    out = export_onnx(net, args.out, image_size=args.image_size, dynamic=not args.static, exporter=args.exporter)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.check:
        x = torch.rand(1, 3, args.image_size, args.image_size)
        ref = to_export_network(net)(x)
        got = OnnxRuntimeNetwork(out)(x)
        diff = max(float((a - b).abs().max()) for a, b in zip(ref, got))
        print(f"max |onnxruntime - torch| = {diff:.2e}")
    return out


if __name__ == "__main__":
    main()
