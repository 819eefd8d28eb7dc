"""Post-training static INT8 quantization of an exported MT-TransUNet with ONNX Runtime (CPU inference).

The float graph of :func:`~monai_mtt.networks.onnx.export_onnx` (``(seg probabilities, class
probabilities)``) gets QuantizeLinear/DequantizeLinear pairs (QDQ format) around its convolutions and
matrix products; ONNX Runtime fuses them into int8 kernels (VNNI/AMX on recent x86 CPUs). Activation
ranges are calibrated on training images, read and scaled exactly as the inferers feed the network:
:class:`~monai_mtt.transforms.LoadDermoscopyd` (RGB float in [0, 1]) resized to ``image_size`` like
:class:`~monai_mtt.inferers.MultiScaleTTAInferer` does. The result is an ordinary ``.onnx`` file:
:func:`~monai_mtt.networks.load_inference_network` returns an
:class:`~monai_mtt.networks.onnx.OnnxRuntimeNetwork` for it and every inferer accepts it.

Defaults (chosen on measurements on a Sapphire Rapids CPU; see the README's "INT8" section): QDQ,
unsigned 8-bit activations with signed 8-bit per-channel weights (U8S8, the VNNI layout), only
``Conv``, ``MatMul`` and ``Gemm`` quantized (normalisation, softmax and resizing stay float), MinMax
calibration.

Command line (also ``monai-mtt quantize ...``)::

    python -m monai_mtt.networks.quantize --checkpoint model.pt --calibration_dir DATASET_OR_FOLDER \
        --out model.int8.onnx [--num_layers 4] [--image_size 224] [--num_images 64]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_mtt.networks.onnx import INPUT_NAME, export_onnx

__all__ = [
    "QUANTIZED_OP_TYPES",
    "CalibrationImages",
    "calibration_items",
    "quantize_onnx",
    "export_int8_onnx",
    "main",
    "register",
]

logger = logging.getLogger(__name__)

#: op types quantized by default (the matrix products: nearly all of the network's FLOPs).
QUANTIZED_OP_TYPES = ("Conv", "MatMul", "Gemm")
_INSTALL = "pip install 'monai_mtt[onnx]'"


def _quantization():
    try:
        from onnxruntime import quantization
    except ImportError as err:
        raise ImportError(f"INT8 quantization needs onnxruntime: {_INSTALL}") from err
    return quantization


def calibration_items(source: str | os.PathLike | None, num_images: int = 64) -> list[dict]:
    """Up to ``num_images`` training images to calibrate on, spread evenly over the source.

    Args:
        source: a folder holding images directly, a dataset root / datalist JSON that
            :func:`~monai_mtt.data.load_datalist` reads (its ``train`` split only: never validation
            or test images), or None / ``""`` for the embedded ISIC-2017 sample's training part.
        num_images: how many to use (at least 1).

    Raises:
        FileNotFoundError: the source does not exist or holds no training images.
    """
    from monai_mtt.data import load_datalist, read_image_folder

    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    items: list[dict] = []
    if source is not None and str(source) != "":
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"calibration source {path} does not exist; pass --calibration_dir DIR.")
        if path.is_dir():
            items, _ = read_image_folder(path)
    if not items:
        try:
            items = list(load_datalist(None if source is None else str(source), validate=False).get("train") or [])
        except Exception as err:
            raise FileNotFoundError(
                f"no calibration images found in {source}: it is neither a folder of images (.jpg, .png, .bmp, "
                f".tif) nor a dataset root with a training split ({err}); pass --calibration_dir pointing at one."
            ) from err
    if not items:
        raise FileNotFoundError(
            f"no calibration images found in {source}; pass --calibration_dir pointing at a folder of training "
            "images or a dataset root."
        )
    if len(items) > num_images:
        picks = np.linspace(0, len(items) - 1, num_images).round().astype(int)
        items = [items[i] for i in picks]
    return items


class CalibrationImages:
    """An ONNX Runtime ``CalibrationDataReader``: the items' images as the inferers feed them.

    Each image is read by :class:`~monai_mtt.transforms.LoadDermoscopyd` (float RGB in [0, 1]) and
    resized to each of ``sizes`` like :class:`~monai_mtt.inferers.MultiScaleTTAInferer` (bilinear,
    antialiased when shrinking), one ``(1, 3, s, s)`` float32 input per image and size.

    Args:
        items: dicts with an ``"image"`` path.
        sizes: network input sides (multiples of 16).
    """

    def __init__(self, items: Sequence[dict], sizes: Sequence[int] = (224,)) -> None:
        for s in sizes:
            if s % 16:
                raise ValueError(f"calibration size {s} is not a multiple of 16.")
        self.items = list(items)
        self.sizes = tuple(int(s) for s in sizes)
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.items) * len(self.sizes)

    def inputs(self) -> Iterator[dict[str, np.ndarray]]:
        from monai_mtt.inferers.tta import _resize
        from monai_mtt.transforms import LoadDermoscopyd

        load = LoadDermoscopyd(label_key=None)
        for item in self.items:
            image = load({"image": item["image"]})["image"]
            x = torch.as_tensor(image.as_tensor() if hasattr(image, "as_tensor") else image)[None].float()
            for s in self.sizes:
                yield {INPUT_NAME: _resize(x, (s, s)).contiguous().numpy()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self.inputs()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def quantize_onnx(
    float_path: str | os.PathLike,
    out: str | os.PathLike,
    calibration: Any,
    op_types: Sequence[str] | None = QUANTIZED_OP_TYPES,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    per_channel: bool = True,
    calibrate_method: str = "minmax",
    quant_format: str = "qdq",
    nodes_to_exclude: Sequence[str] = (),
    preprocess: bool = True,
) -> Path:
    """Statically quantize the float ONNX model ``float_path`` into ``out``.

    Args:
        float_path: float ``.onnx`` (from :func:`~monai_mtt.networks.onnx.export_onnx`).
        out: the int8 ``.onnx`` to write.
        calibration: a ``CalibrationDataReader`` (e.g. :class:`CalibrationImages`).
        op_types: op types to quantize (None: every type ONNX Runtime can).
        activation_type, weight_type: ``"uint8"`` or ``"int8"``.
        per_channel: per-output-channel weight scales.
        calibrate_method: ``"minmax"``, ``"percentile"`` or ``"entropy"``.
        quant_format: ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs) or ``"qoperator"`` (QLinear* ops).
        nodes_to_exclude: node names kept float.
        preprocess: run ONNX Runtime's ``quant_pre_process`` (shape inference, graph optimisation) first.
    """
    q = _quantization()
    types = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    methods = {
        "minmax": q.CalibrationMethod.MinMax,
        "percentile": q.CalibrationMethod.Percentile,
        "entropy": q.CalibrationMethod.Entropy,
    }
    formats = {"qdq": q.QuantFormat.QDQ, "qoperator": q.QuantFormat.QOperator}
    for name, value, allowed in (
        ("activation_type", activation_type, types),
        ("weight_type", weight_type, types),
        ("calibrate_method", calibrate_method, methods),
        ("quant_format", quant_format, formats),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}.")
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    source = Path(float_path).absolute()
    cwd = os.getcwd()
    # ONNX Runtime's pre-processing and calibration save intermediate models whose external-data files
    # (<uuid>.data) land in the working directory: run them inside a temporary one
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            if preprocess:
                pre = Path(tmp) / "preprocessed.onnx"
                # symbolic shape inference does not finish on the dynamic-shape export: ONNX's own is used then
                for skip_symbolic in (False, True):
                    try:
                        q.quant_pre_process(str(source), str(pre), skip_symbolic_shape=skip_symbolic)
                        source = pre
                        break
                    except Exception as err:  # noqa: BLE001 - optional step: quantize the plain export instead
                        logger.info("quant_pre_process (skip_symbolic_shape=%s) failed: %s", skip_symbolic, err)
            extra = {"CalibPercentile": 99.999} if calibrate_method == "percentile" else {}
            q.quantize_static(
                str(source),
                str(out),
                calibration,
                quant_format=formats[quant_format],
                op_types_to_quantize=list(op_types) if op_types is not None else None,
                per_channel=per_channel,
                activation_type=types[activation_type],
                weight_type=types[weight_type],
                calibrate_method=methods[calibrate_method],
                nodes_to_exclude=list(nodes_to_exclude),
                extra_options=extra,
            )
        finally:
            os.chdir(cwd)
    return out


def export_int8_onnx(
    network: nn.Module,
    out: str | os.PathLike,
    calibration_items: Sequence[dict],
    image_size: int = 224,
    calibration_sizes: Sequence[int] | None = None,
    exporter: str = "auto",
    **options: Any,
) -> Path:
    """Export ``network`` (an :class:`~monai_mtt.networks.MTTransUNet` with trained weights) to an int8 ONNX file.

    The float export (dynamic batch and sides, like :func:`~monai_mtt.networks.onnx.export_onnx`) is
    written to a temporary folder and quantized with :func:`quantize_onnx` (``options``), calibrated
    on ``calibration_items`` at ``calibration_sizes`` (default ``(image_size,)``). ``exporter`` as
    :func:`~monai_mtt.networks.onnx.export_onnx`'s.

    Returns:
        ``out``; inputs and outputs as the float export's.
    """
    _quantization()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(network, Path(tmp) / "model.onnx", image_size=image_size, dynamic=True, exporter=exporter)
        reader = CalibrationImages(calibration_items, calibration_sizes or (image_size,))
        return quantize_onnx(fp32, out, reader, **options)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="training checkpoint ({'model': state_dict}) or state dict")
    p.add_argument(
        "--calibration_dir",
        default="",
        help="folder of training images, or a dataset root / datalist JSON (its train split); "
        "empty: the embedded ISIC-2017 sample's training images",
    )
    p.add_argument("--out", required=True, help="output int8 .onnx file")
    p.add_argument("--num_layers", type=int, default=4, help="Transformer layers of the checkpoint's network (4)")
    p.add_argument("--image_size", type=int, default=224, help="calibration and example input side (224)")
    p.add_argument("--num_images", type=int, default=64, help="calibration images (64)")
    p.add_argument("--per_tensor", action="store_true", help="one weight scale per tensor (default: per channel)")
    p.add_argument("--calibrate_method", default="minmax", choices=["minmax", "percentile", "entropy"])
    p.add_argument("--exporter", default="auto", choices=["auto", "dynamo", "legacy"], help="float ONNX exporter")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _run(args: argparse.Namespace) -> int:
    from monai_mtt.cli import check_out_path
    from monai_mtt.networks.checkpoint import load_checkpoint
    from monai_mtt.networks.onnx import _network

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"error: {out} exists; pass --overwrite to replace it or choose another --out.")
    problem = check_out_path(out, [args.checkpoint], [args.calibration_dir or None], create_parents=True)
    if problem:
        raise SystemExit(f"error: {problem}")
    try:  # the user's mistakes (no onnxruntime, no images, unreadable checkpoint) as one line naming the fix
        _quantization()
        items = calibration_items(args.calibration_dir, args.num_images)
        net = load_checkpoint(_network(args.num_layers), args.checkpoint).eval()
    except (ImportError, OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from err
    export_int8_onnx(
        net,
        out,
        items,
        image_size=args.image_size,
        per_channel=not args.per_tensor,
        calibrate_method=args.calibrate_method,
        exporter=args.exporter,
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; calibrated on {len(items)} images at {args.image_size} px)")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``monai-mtt quantize`` to a ``argparse`` sub-parser set."""
    p = subparsers.add_parser("quantize", help="export a checkpoint as an int8 ONNX model (CPU inference)")
    _add_arguments(p)
    p.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m monai_mtt.networks.quantize",
        description="Export an MT-TransUNet checkpoint as a statically quantized int8 ONNX model.",
    )
    _add_arguments(p)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return _run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
