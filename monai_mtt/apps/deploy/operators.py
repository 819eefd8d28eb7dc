"""MONAI Deploy App SDK operators: load dermoscopy images, run MT-TransUNet from a bundle, write results.

Three operators form the graph ``loader -> inference -> writer``:

* :class:`DermoscopyLoaderOperator` emits one SDK :class:`~monai.deploy.core.Image` per readable file:
  an ``(H, W, 3)`` uint8 RGB array in the file's own row/column order (EXIF orientation applied,
  greyscale / RGBA / 16-bit converted as :func:`monai_mtt.transforms.pil_to_rgb` does, so the pixels
  equal those the bundle's ``LoadDermoscopyd`` reads).
* :class:`MTTBundleInferenceOperator` subclasses the SDK's ``MonaiBundleInferenceOperator``. The stock
  operator post-processes only the first element of a tuple output and cannot take a dict output;
  this one reads the bundle (a TorchScript ``model.ts`` from ``ckpt_export`` with its configs embedded,
  or a bundle directory plus weights), builds the network through the bundle's own ``network`` id and
  the bundle's ``inferer`` (multi-scale TTA), and emits both outputs: ``pred`` (an ``Image`` of the
  lesion mask, ``H x W`` of the input, values {0, 1}) and ``class_probabilities`` (a dict).
* :class:`DermoscopyWriterOperator` writes ``<id>_segmentation.png`` (0/255) and ``<id>.json``.

Files that cannot be read, or that fail later, are recorded in a shared :class:`RunReport` and
skipped; the application writes ``summary.csv`` from it and sets its exit code.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import traceback
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.deploy.core import AppContext, Fragment, Image, IOType, Operator, OperatorSpec
from monai.deploy.operators.monai_bundle_inference_operator import (
    BundleConfigNames,
    IOMapping,
    MonaiBundleInferenceOperator,
    get_bundle_config,
)
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped
from PIL import Image as PILImage

from monai_mtt import CLASS_NAMES

__all__ = [
    "RunReport",
    "DermoscopyLoaderOperator",
    "MTTBundleInferenceOperator",
    "DermoscopyWriterOperator",
    "TupleToDictOutput",
    "resolve_model",
    "load_rgb",
]

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = (
    "image_id",
    "file",
    "status",
    "predicted_class",
    *CLASS_NAMES,
    "width",
    "height",
    "lesion_pixels",
    "model_version",
    "problem",
)


# --------------------------------------------------------------------------------------------- report
@dataclass
class RunReport:
    """What happened to every input file; shared by the operators of one application run."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_version: str = ""

    def ok(self, image_id: str, row: dict[str, Any]) -> None:
        self.rows[image_id] = {"status": "ok", **row}

    def bad(self, path: str | os.PathLike, problem: str, image_id: str | None = None) -> None:
        image_id = image_id or Path(str(path)).stem
        key = image_id if image_id not in self.rows else f"{image_id} ({path})"
        self.rows[key] = {"image_id": image_id, "file": str(path), "status": "error", "problem": problem}
        logger.error("skipped %s: %s", path, problem)

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] != "ok"]

    @property
    def processed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if r["status"] == "ok"]

    def write_summary(self, path: str | os.PathLike) -> Path:
        """``summary.csv``: one row per input file (processed first, in file order, then the bad ones)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = sorted(self.processed, key=lambda r: r["file"]) + sorted(self.problems, key=lambda r: r["file"])
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                out = {k: r.get(k, "") for k in SUMMARY_COLUMNS}
                for k in CLASS_NAMES:
                    if isinstance(out[k], float):
                        out[k] = f"{out[k]:.6f}"
                w.writerow(out)
        return path

    def write_status(self, path: str | os.PathLike, exit_code: int, error: str = "") -> Path:
        """``status.json``: the run's exit code, counts and bad inputs, for callers that cannot see the exit code.

        A MAP's entry script exits 0 even when the application fails, so the outcome is also written here:
        ``{"exit_code", "status" ("ok" / "bad_files" / "failed"), "processed", "bad_files": [{"file", "problem"}],
        "model_version", "error"}``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        status = {0: "ok", 1: "bad_files"}.get(exit_code, "failed")
        problems = sorted(self.problems, key=lambda r: r["file"])
        bad = [{"file": r["file"], "problem": r.get("problem", "")} for r in problems]
        doc = {
            "exit_code": int(exit_code),
            "status": status,
            "processed": len(self.processed),
            "bad_files": bad,
            "model_version": self.model_version,
            "error": error,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)  # never a half-written status
        return path


# --------------------------------------------------------------------------------------------- loading
def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of an image file, exactly as the bundle's ``LoadDermoscopyd`` reads them."""
    from monai_mtt.transforms import pil_to_rgb

    with PILImage.open(path) as img:
        img.load()
        return np.ascontiguousarray(np.asarray(pil_to_rgb(img), dtype=np.uint8))


def scan_inputs(input_path: str | os.PathLike, report: RunReport) -> list[dict[str, str]]:
    """Items ``{"image", "id"}`` for a folder of images (or one image file); problems go to ``report``."""
    from monai_mtt.data import check_image, read_image_folder

    path = Path(input_path)
    if path.is_file():
        _, problems = check_image(path)
        items = [] if problems else [{"image": str(path.resolve()), "id": path.stem}]
    else:
        items, problems = read_image_folder(path)
    for p in problems:
        report.bad(p.path, f"{p.problem} ({p.fix})")
    return items


class DermoscopyLoaderOperator(Operator):
    """Source: one SDK ``Image`` per tick, ``(H, W, 3)`` uint8 RGB, metadata ``image_id``, ``filename_or_obj``.

    Construct with a ``CountCondition(fragment, len(items))``. A file that fails to load is recorded in
    ``report`` and the next one is tried in the same tick.

    Output port ``image``.
    """

    def __init__(self, fragment: Fragment, *args, items: Sequence[dict[str, str]], report: RunReport, **kwargs):
        self.items = list(items)
        self.report = report
        self._next = 0
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.output("image")

    def compute(self, op_input, op_output, context):
        while self._next < len(self.items):
            item = self.items[self._next]
            self._next += 1
            try:
                arr = load_rgb(item["image"])
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
                self.report.bad(item["image"], f"cannot be read: {exc}", item["id"])
                continue
            meta = {
                "image_id": item["id"],
                "filename_or_obj": item["image"],
                "spatial_shape": np.asarray(arr.shape[:2]),
                "original_channel_dim": -1,
            }
            op_output.emit(Image(arr, metadata=meta), "image")
            return


# --------------------------------------------------------------------------------------------- model
def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/data.pkl") for n in names) and any("/code/" in n for n in names)


def _has_embedded_configs(path: Path) -> bool:
    with zipfile.ZipFile(path) as z:
        names = [n.lower() for n in z.namelist()]
    return any(n.endswith("extra/metadata.json") for n in names) and any(
        n.endswith(("extra/inference.json", "extra/inference.yaml", "extra/inference.yml")) for n in names
    )


def _is_bundle_dir(path: Path) -> bool:
    return (path / "configs" / "metadata.json").is_file()


@dataclass
class ModelSource:
    """Where the configs and the weights come from."""

    config_source: Path  # a bundle directory or a TorchScript file with embedded configs
    checkpoint: Path  # TorchScript file, or weights ({"model": state_dict} or a state dict)


def resolve_model(model_path: str | os.PathLike | None, bundle_dir: str | os.PathLike | None = None) -> ModelSource:
    """Find the bundle configs and the weights from ``-m`` (and ``--bundle``).

    ``model_path`` may be:

    * a TorchScript file (``ckpt_export``'s ``model.ts``); its embedded configs are used, or those of
      ``bundle_dir`` when it has none;
    * a bundle directory (``configs/metadata.json``; weights ``models/model.ts`` or ``models/model.pt``);
    * a weights file (``{"model": state_dict}`` or a state dict) for ``bundle_dir``'s network;
    * a folder holding exactly one of these (how a MAP lays out ``/opt/holoscan/models``).
    """
    bundle = Path(bundle_dir).expanduser().resolve() if bundle_dir else None
    if bundle is not None and not _is_bundle_dir(bundle):  # only an error where the bundle's configs are needed
        bundle_error = f"--bundle {bundle}: not a bundle directory (no configs/metadata.json)."
        bundle = None
    else:
        bundle_error = None
    if not model_path:
        if bundle is None:
            raise FileNotFoundError(
                bundle_error or "no model: pass -m MODEL (model.ts, a bundle directory or a checkpoint)."
            )
        model_path = bundle
    path = Path(model_path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"model path {path} does not exist.")
    if path.is_dir() and not _is_bundle_dir(path):
        found = []
        for root, dirs, files in os.walk(path, followlinks=True):
            if len(Path(root).relative_to(path).parts) >= 4:
                dirs.clear()  # a model folder is shallow; do not wander
            found += [Path(root) / f for f in sorted(files) if Path(f).suffix in (".ts", ".pt", ".pth")]
            if _is_bundle_dir(Path(root)):
                found.append(Path(root) / "configs" / "metadata.json")
        bundles = {p.parent.parent for p in found if p.name == "metadata.json"}
        if len(bundles) == 1:
            path = bundles.pop()
        elif len(found) == 1:
            path = found[0]
        else:
            raise FileNotFoundError(
                f"model folder {path} must hold one bundle directory or one model file, "
                f"found {[str(p) for p in found]}."
            )
    if path.is_dir():
        for name in ("model.ts", "model.pt"):
            if (path / "models" / name).is_file():
                return ModelSource(path, path / "models" / name)
        raise FileNotFoundError(f"bundle {path} has no models/model.ts or models/model.pt.")
    if _is_torchscript(path) and _has_embedded_configs(path):
        return ModelSource(path, path)
    if bundle is None:
        hint = (
            f"{path} carries no bundle configs: pass --bundle BUNDLE_DIR (the folder with configs/metadata.json), "
            "or export with `python -m monai.bundle ckpt_export ... --config_file configs/inference.yaml`."
        )
        raise FileNotFoundError(f"{bundle_error} {hint}" if bundle_error else hint)
    return ModelSource(bundle, path)


class TupleToDictOutput(torch.nn.Module):
    """Give the TTA inferer the ``{"seg", "cls"}`` logits dict it reads, whatever the model returns.

    A dict (the eager :class:`~monai_mtt.networks.MTTransUNet`) passes through. A tuple is taken to be
    ``MTTransUNetInfer(with_classes=True)``'s ``(seg probabilities, class probabilities)`` (the
    TorchScript export) and returned as log-probabilities, whose softmax is the same probabilities.
    Networks offering ``outputs`` (MTTransUNet and subclasses, eager or scripted) need no adapter: the
    TTA inferer calls that method itself.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> dict[str, torch.Tensor]:
        if return_attention:
            out = self.model(x, return_attention=True)
        else:
            out = self.model(x)
        if isinstance(out, dict):
            return out
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return {"seg": torch.log(out[0]), "cls": torch.log(out[1])}
        raise TypeError(
            f"the model returned {type(out).__name__}; expected MTTransUNet's dict or the (seg, cls) probability "
            "tuple of MTTransUNetInfer(with_classes=True). A model with a mask output only (e.g. traced from "
            "MTTransUNetInfer(with_classes=False)) has no class probabilities: export it with with_classes=True "
            "or script it (so that its `outputs` method is kept)."
        )


# --------------------------------------------------------------------------------------------- inference
class MTTBundleInferenceOperator(MonaiBundleInferenceOperator):
    """Bundle inference carrying MT-TransUNet's two outputs: the lesion mask and the class probabilities.

    The network comes from the bundle's ``network`` id (so TorchScript and checkpoints load exactly as
    ``python -m monai.bundle run inferring`` loads them) and the inferer from its ``inferer`` id
    (multi-scale TTA; ``scales`` / ``views`` can be overridden). Preprocessing is the array part of
    ``LoadDermoscopyd``: ``EnsureChannelFirstd(channel_dim=-1)`` (app-sdk 4.0.0 tags 2D RGB arrays
    "no_channel", so the channel dim must be given) and scaling to [0, 1].

    Input port ``image`` (SDK ``Image``); output ports ``pred`` (SDK ``Image``, ``H x W`` uint8 {0, 1},
    the input's metadata) and ``class_probabilities`` (dict: ``image_id``, ``probabilities``
    ``{class name: p}``, ``predicted_class``, ``predicted_index``, ``lesion_probability`` ``(H, W)``
    float32, ``model_version``).

    Args:
        fragment: the application.
        app_context: the SDK app context.
        model: where the configs and weights are (see :func:`resolve_model`).
        report: run report; a file whose inference fails is recorded there and skipped.
        scales / views: TTA overrides (None keeps the bundle's).
        threshold: lesion probability above which a pixel is lesion (the bundle's writer uses 0.5).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        app_context: AppContext,
        model: ModelSource,
        report: RunReport,
        scales: Sequence[int] | None = None,
        views: Sequence[str] | None = None,
        threshold: float = 0.5,
        **kwargs,
    ):
        self.model = model
        self.report = report
        self.scales = list(scales) if scales else None
        self.views = list(views) if views else None
        self.threshold = threshold
        super().__init__(
            fragment,
            *args,
            app_context=app_context,
            input_mapping=[IOMapping("image", Image, IOType.IN_MEMORY)],
            output_mapping=[
                IOMapping("pred", Image, IOType.IN_MEMORY),
                IOMapping("class_probabilities", dict, IOType.IN_MEMORY),
            ],
            bundle_path=None,  # configs are read here, not by the base class (it would drop the 2nd output)
            bundle_config_names=BundleConfigNames(config_names=["inference"]),
            **kwargs,
        )
        self._load_bundle()

    def _load_bundle(self) -> None:
        src = self.model.config_source
        parser = get_bundle_config(str(src), self._bundle_config_names.config_names)
        if src.is_dir():
            parser["bundle_root"] = str(src)
        parser["checkpoint"] = str(self.model.checkpoint)
        if parser.get("overlays") is not None:
            parser["overlays"] = False  # no attention maps needed here
        elif parser.get("inferer#return_attention") is not None:
            parser["inferer#return_attention"] = False
        for key, value in (("scales", self.scales), ("views", self.views)):
            if value is None:
                continue
            if parser.get(key) is not None:
                parser[key] = value
            else:
                parser[f"inferer#{key}"] = value
        self._parser = parser
        meta = parser["_meta_"]
        self.model_version = str(meta.get("version", ""))
        self.report.model_version = self.model_version
        self._inputs = meta["network_data_format"]["inputs"]
        self._outputs = meta["network_data_format"]["outputs"]
        cls_def = self._outputs.get("class_probabilities", {}).get("channel_def") or {}
        self.class_names = [cls_def.get(str(i), name) for i, name in enumerate(CLASS_NAMES)]
        self._device = parser.get_parsed_content("device") if parser.get("device") is not None else torch.device("cpu")
        if parser.get("network") is not None:
            network = parser.get_parsed_content("network")
        else:  # a bundle without the `network` loader id: TorchScript, or network_def + weights
            from monai_mtt.networks.checkpoint import load_inference_network

            network = load_inference_network(
                parser.get_parsed_content("network_def"), self.model.checkpoint, self._device
            )
        network = network.eval()
        # MTTransUNet and its subclasses (eager or scripted) offer `outputs`, which the TTA inferer calls;
        # anything else (a traced export's tuple) goes through the adapter
        self._model_network = network if hasattr(network, "outputs") else TupleToDictOutput(network).eval()
        self._inferer = parser.get_parsed_content(self._bundle_config_names.inferer_name)
        self._preproc = Compose(
            [
                EnsureChannelFirstd(keys="image", channel_dim=-1),
                EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
            ]
        )
        self._init_completed = True
        logger.info(
            "model %s (configs %s), version %s, inferer %s",
            self.model.checkpoint,
            src,
            self.model_version,
            self._inferer,
        )

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.output("pred")
        spec.output("class_probabilities")

    def predict_one(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lesion probability ``(H, W)`` and class probabilities ``(C,)`` for an ``(H, W, 3)`` uint8 image."""
        data = self._preproc({"image": torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True))})
        x = (data["image"] / 255.0)[None].to(self._device)
        with torch.no_grad():
            out = self._inferer(x, self._model_network)
        seg = out["seg"][0]  # (2, H, W) probabilities at the input size
        return seg[1].float().cpu().numpy(), out["cls"][0].double().cpu().numpy()

    def compute(self, op_input, op_output, context):
        image = op_input.receive("image")
        meta = dict(image.metadata())
        image_id = meta.get("image_id", "image")
        start = time.time()
        try:
            rgb = image.asnumpy()
            if rgb.ndim != 3 or rgb.shape[-1] != 3:
                raise ValueError(f"expected an (H, W, 3) RGB array, got shape {tuple(rgb.shape)}")
            prob, cls = self.predict_one(rgb)
        except Exception as exc:  # noqa: BLE001 - one bad image must not stop the folder
            logger.debug(traceback.format_exc())
            self.report.bad(str(meta.get("filename_or_obj", image_id)), f"inference failed: {exc}", image_id)
            return
        logger.info("%s: %dx%d in %.1f s", image_id, rgb.shape[1], rgb.shape[0], time.time() - start)
        mask = (prob > self.threshold).astype(np.uint8)[None]  # (1, H, W): the base class squeezes dim 0
        self._send_output(mask, "pred", meta, op_output, context)
        k = int(np.argmax(cls))
        op_output.emit(
            {
                "image_id": image_id,
                "probabilities": {n: float(p) for n, p in zip(self.class_names, cls)},
                "predicted_class": self.class_names[k],
                "predicted_index": k,
                "model_version": self.model_version,
            },
            "class_probabilities",
        )


# --------------------------------------------------------------------------------------------- writing
class DermoscopyWriterOperator(Operator):
    """Write ``<id>_segmentation.png`` (0/255, the image's size) and ``<id>.json``; record the summary row.

    Input ports ``pred`` (SDK ``Image`` mask) and ``class_probabilities`` (dict).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: str | os.PathLike, report: RunReport, **kwargs):
        self.output_folder = Path(output_folder)
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("pred")
        spec.input("class_probabilities")

    def compute(self, op_input, op_output, context):
        pred = op_input.receive("pred")
        result = op_input.receive("class_probabilities")
        meta = pred.metadata()
        image_id = result["image_id"]
        path = meta.get("filename_or_obj", image_id)
        try:
            mask = np.asarray(pred.asnumpy())
            h, w = mask.shape
            self.output_folder.mkdir(parents=True, exist_ok=True)
            seg_file = self.output_folder / f"{image_id}_segmentation.png"
            PILImage.fromarray((mask > 0).astype(np.uint8) * 255).save(seg_file)
            record = {
                "image_id": image_id,
                "file": str(path),
                "width": int(w),
                "height": int(h),
                "segmentation": seg_file.name,
                "lesion_pixels": int((mask > 0).sum()),
                **{k: result[k] for k in ("probabilities", "predicted_class", "predicted_index", "model_version")},
            }
            (self.output_folder / f"{image_id}.json").write_text(json.dumps(record, indent=2) + "\n")
        except Exception as exc:  # noqa: BLE001
            self.report.bad(path, f"writing the results failed: {exc}", image_id)
            return
        row = {k: v for k, v in record.items() if k not in ("probabilities", "segmentation", "predicted_index")}
        row.update(result["probabilities"])
        self.report.ok(image_id, row)
