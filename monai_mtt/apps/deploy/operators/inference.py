"""Deploy operator that runs MT-TransUNet from a bundle and emits both of its outputs."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence

import numpy as np
import torch
from monai.deploy.core import AppContext, Fragment, Image, IOType, OperatorSpec
from monai.deploy.operators.monai_bundle_inference_operator import (
    BundleConfigNames,
    IOMapping,
    MonaiBundleInferenceOperator,
)
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped

from monai_mtt.apps.bundle_loader import load_app_bundle
from monai_mtt.apps.deploy.model_source import ModelSource
from monai_mtt.apps.deploy.report import RunReport

__all__ = ["MTTBundleInferenceOperator"]

logger = logging.getLogger(__name__)


class MTTBundleInferenceOperator(MonaiBundleInferenceOperator):
    """Bundle inference carrying MT-TransUNet's two outputs: the lesion mask and the class probabilities.

    The stock ``MonaiBundleInferenceOperator`` post-processes only the first element of a tuple output
    and cannot take a dict output. This one reads the bundle (a TorchScript ``model.ts`` from
    ``ckpt_export`` with its configs embedded, or a bundle directory plus weights) with
    :func:`~monai_mtt.apps.bundle_loader.load_app_bundle`, which builds the network as
    ``python -m monai.bundle run inferring`` does and the bundle's multi-scale TTA inferer (``scales`` /
    ``views`` can be overridden). Preprocessing is the array part of ``LoadDermoscopyd``:
    ``EnsureChannelFirstd(channel_dim=-1)`` (app-sdk 4.0.0 tags 2D RGB arrays "no_channel", so the
    channel dim must be given) and scaling to [0, 1].

    Input port ``image`` (SDK ``Image``); output ports ``pred`` (SDK ``Image``, ``H x W`` uint8 {0, 1},
    the input's metadata) and ``class_probabilities`` (dict: ``image_id``, ``probabilities``
    ``{class name: p}``, ``predicted_class``, ``predicted_index``, ``model_version``).

    Args:
        fragment: the application.
        app_context: the SDK app context.
        model: where the configs and weights are (see :func:`~monai_mtt.apps.deploy.model_source.resolve_model`).
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
        bundle = load_app_bundle(self.model.config_source)
        self._parser = bundle.parser
        self.model_version = bundle.version
        self.report.model_version = self.model_version
        meta = bundle.metadata
        self._inputs = meta["network_data_format"]["inputs"]
        self._outputs = meta["network_data_format"]["outputs"]
        self.class_names = bundle.class_names
        self._device = bundle.default_device()
        self._model_network = bundle.network(self.model.checkpoint, self._device)
        self._inferer = bundle.inferer(self.scales, self.views)
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
            self.model.config_source,
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
