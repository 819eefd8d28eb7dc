"""MONAI Label infer task: lesion mask as the label file, class probabilities and attention in the JSON.

MONAI Label's stock ``BundleInferTask`` keeps one network output (``pred``) and writes it through
``monailabel.transform.writer.Writer`` (ITK, which transposes the array because MONAI Label loads
2D images as ``(W, H)``). Our network has three outputs (mask, classes, attention), and our loader
keeps the file's own ``(H, W)`` order, so this task is built on ``BasicInferTask`` with our Python
API (:class:`~monai_mtt.inferers.MultiScaleTTAInferer`) and writes the PNG itself: the mask is
``H x W`` uint8 {0, 1} and overlays the image. It does not import ``monailabel.transform.post``
(the only MONAI Label module on these paths that needs torchvision).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from PIL import Image

from monai_mtt import CLASS_NAMES
from monai_mtt.apps.bundle_loader import load_app_bundle
from monai_mtt.apps.monailabel.validate import validate_infer_request
from monai_mtt.inferers.views import VIEWS
from monai_mtt.transforms import LoadDermoscopyd

__all__ = ["MTTInferTask", "MTTResultd"]

logger = logging.getLogger(__name__)


class MTTResultd:
    """Post-transform: ``pred`` (the inferer's dict) -> uint8 ``(H, W)`` mask, and the result JSON.

    ``data[pred_key]`` holds ``seg`` ``(2, H, W)`` and ``cls`` ``(C,)`` probabilities and optionally
    ``attn`` ``(1, H, W)`` (sums to 1). Afterwards ``data[pred_key]`` is the binary mask (lesion = 1)
    and ``data[result_key]`` holds the JSON: ``class_probabilities`` (name -> probability),
    ``probabilities`` (list in class order), ``classes``, ``predicted_class``, ``lesion_fraction``,
    ``image_size`` [H, W] and ``attention`` (see :meth:`attention_summary`).
    """

    def __init__(
        self,
        class_names: Sequence[str] = CLASS_NAMES,
        pred_key: str = "pred",
        result_key: str = "result",
        grid: int = 8,
        threshold: float = 0.5,
    ) -> None:
        self.class_names = list(class_names)
        self.pred_key = pred_key
        self.result_key = result_key
        self.grid = int(grid)
        self.threshold = float(threshold)

    @staticmethod
    def _plain(x: Any) -> torch.Tensor:
        x = torch.as_tensor(x)
        return (x.as_tensor() if hasattr(x, "as_tensor") else x).detach().float().cpu()

    def attention_summary(self, attn: torch.Tensor, mask: torch.Tensor) -> dict[str, Any]:
        """The cls token's attention over the image (``(H, W)``, sums to 1) in a few numbers.

        ``peak`` and ``centroid`` are [row, col] image pixels; ``in_lesion`` is the attention mass
        inside the predicted mask; ``entropy`` is normalised to [0, 1] (1 = uniform); ``grid`` is the
        mass in a ``grid x grid`` partition of the image (rows top to bottom, sums to 1).
        """
        h, w = attn.shape
        total = float(attn.sum())
        a = attn / total if total > 0 else torch.full_like(attn, 1.0 / (h * w))
        peak = int(torch.argmax(a))
        rows = torch.arange(h, dtype=torch.float32)[:, None]
        cols = torch.arange(w, dtype=torch.float32)[None, :]
        p = a.clamp_min(1e-12)
        entropy = float(-(p * p.log()).sum() / np.log(h * w)) if h * w > 1 else 0.0
        g = max(1, min(self.grid, h, w))
        cells = F.adaptive_avg_pool2d(a[None, None], g)[0, 0]
        cells = cells / cells.sum()
        return {
            "peak": [peak // w, peak % w],
            "centroid": [round(float((a * rows).sum()), 2), round(float((a * cols).sum()), 2)],
            "in_lesion": round(float((a * mask).sum()), 6),
            "entropy": round(entropy, 6),
            "grid": [[round(float(v), 6) for v in row] for row in cells],
        }

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        out = d[self.pred_key]
        seg = self._plain(out["seg"])
        if seg.ndim == 4:  # (1, 2, H, W)
            seg = seg[0]
        mask = (seg[1] > self.threshold) if seg.shape[0] == 2 else seg.argmax(0).bool()
        probs = self._plain(out["cls"]).reshape(-1)
        probs = probs / probs.sum()
        names = self.class_names if len(self.class_names) == probs.numel() else [str(i) for i in range(probs.numel())]
        plist = [float(v) for v in probs]
        result = dict(d.get(self.result_key) or {})
        result.update(
            {
                "classes": names,
                "probabilities": plist,
                "class_probabilities": dict(zip(names, plist)),
                "predicted_class": names[int(probs.argmax())],
                "lesion_fraction": round(float(mask.float().mean()), 6),
                "image_size": [int(mask.shape[0]), int(mask.shape[1])],
            }
        )
        if out.get("attn") is not None:
            attn = self._plain(out["attn"])
            attn = attn.reshape(attn.shape[-2:])
            result["attention"] = self.attention_summary(attn, mask.float())
        d[self.pred_key] = mask.numpy().astype(np.uint8)
        d[self.result_key] = result
        return d


class MTTInferTask(BasicInferTask):
    """Lesion segmentation + 3-class classification with the bundle's network and weights.

    Args:
        bundle_path: the bundle folder (``configs/metadata.json``, an inference or train config with
            ``network_def``, ``models/model.pt`` as ``{"model": state_dict}``).
        scales, views: default test-time augmentation (else the inference config's ``scales`` /
            ``views``, else the paper's 224/256/288 x all six views). A request may pass
            ``"scales": "224"`` and ``"views": "identity"`` (comma-separated strings or lists).
        attention_grid: size of the attention grid in the result JSON.
        model_filename: checkpoint file in ``models``.

    The label file is a PNG of the image's height x width with values {0, 1} (``lesion`` = 1),
    whatever the input format; ``result_write_to_file: false`` returns the array instead.
    """

    def __init__(
        self,
        bundle_path: str,
        scales: Sequence[int] | None = None,
        views: Sequence[str] | None = None,
        attention_grid: int = 8,
        model_filename: str = "model.pt",
        preload: bool = False,
        **kwargs: Any,
    ) -> None:
        self.bundle_path = os.path.abspath(bundle_path)
        self.bundle = load_app_bundle(self.bundle_path)  # configs, TTA defaults, class names; builds the network
        metadata = self.bundle.metadata
        outputs = metadata.get("network_data_format", {}).get("outputs", {})
        pred: dict[str, Any] = next(iter(outputs.values()), {}) if outputs else {}
        channels = pred.get("channel_def", {"1": "lesion"})
        labels = {v.lower(): int(k) for k, v in channels.items() if v.lower() != "background"}
        self.class_names = self.bundle.class_names
        self.default_scales = [int(s) for s in (scales or self.bundle.scales)]
        self.default_views = [str(v) for v in (views or self.bundle.views)]
        self.attention_grid = int(attention_grid)
        self.version = metadata.get("version")
        super().__init__(
            path=os.path.join(self.bundle_path, "models", model_filename),
            network=None,  # built by the bundle loader in _get_network
            type=InferType.SEGMENTATION,
            labels=labels,
            dimension=2,
            description=metadata.get("description", "MT-TransUNet lesion segmentation and classification"),
            preload=False,  # done below, once the weights exist
            config={
                "scales": ",".join(str(s) for s in self.default_scales),
                "views": ",".join(self.default_views),
                "return_attention": True,
                "result_extension": ".png",
                "result_dtype": "uint8",
            },
            **kwargs,
        )
        if preload and self.is_valid():
            from monailabel.utils.others.generic import device_map

            for device in device_map().values():
                logger.info(f"Preload network for device: {device}")
                self._get_network(device, None)

    def _get_network(self, device: str, data: dict | None) -> torch.nn.Module:
        """The bundle's network on ``device`` (:meth:`AppBundle.network`), reloaded when the weights change."""
        path = self.get_path()
        if not path:
            raise MONAILabelException(MONAILabelError.INFERENCE_ERROR, f"Model Path ({self.path}) does not exist/valid")
        mtime = os.stat(path).st_mtime
        cached = self._networks.get(device)
        if cached and cached[1] == mtime:
            return cached[0]
        network = self.bundle.network(path, device)
        self._networks[device] = (network, mtime)
        return network

    def is_valid(self) -> bool:
        return self.get_path() is not None

    def info(self) -> dict[str, Any]:
        i = super().info()
        i["version"] = self.version
        i["classes"] = self.class_names
        return i

    def validate_request(self, params: Mapping[str, Any], server_keys: bool = False) -> dict[str, Any]:
        """The typed, bounded infer options of a request (:func:`.validate.validate_infer_request`)."""
        from monailabel.utils.others.generic import device_map

        return validate_infer_request(params, VIEWS, device_map().keys(), server_keys=server_keys)

    def _options(self, data: dict | None) -> dict[str, Any]:
        """The TTA options of ``data`` parsed and bounded again where they are used (defence in depth)."""
        keys = ("scales", "views", "return_attention", "attention_grid")
        given = data or {}
        return validate_infer_request({k: given[k] for k in keys if given.get(k) not in (None, "")}, VIEWS)

    def pre_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        return [LoadDermoscopyd(image_key=self.input_key, label_key=None)]

    def inferer(self, data: dict | None = None) -> Inferer:
        opts = self._options(data)
        scales = opts.get("scales") or self.default_scales
        views = opts.get("views") or self.default_views
        attention = opts.get("return_attention", True)
        return self.bundle.inferer(scales, views, return_attention=attention)

    def post_transforms(self, data: dict | None = None) -> Sequence[Callable]:
        grid = self._options(data).get("attention_grid", self.attention_grid)
        return [MTTResultd(self.class_names, self.output_label_key, self.output_json_key, grid=grid)]

    def writer(self, data: dict, extension: str | None = None, dtype: Any = None) -> tuple[Any, dict]:
        """Write the ``(H, W)`` uint8 mask as a PNG (PIL; no transpose) and return the result JSON."""
        mask = np.asarray(data[self.output_label_key], dtype=np.uint8)
        result = dict(data.get(self.output_json_key) or {})
        ext = str(data.get("result_extension") or ".png").lower()
        if ext != ".png":
            logger.warning(f"result_extension {ext} is not supported; writing .png")
        if str(data.get("result_write_to_file", True)).lower() in ("false", "0", "no"):
            return mask, result
        fd, path = tempfile.mkstemp(suffix=".png")
        os.close(fd)
        Image.fromarray(mask, mode="L").save(path)
        return path, result
