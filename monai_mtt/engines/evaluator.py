"""Evaluator that carries both MT-TransUNet outputs: mask probabilities and class probabilities."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys

from monai_mtt.engines.precision import resolve_amp
from monai_mtt.inferers import MTTSimpleInferer
from monai_mtt.keys import BatchKeys, OutputKeys

__all__ = ["MTTEvaluator"]


class MTTEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` whose inferer returns a dict (``seg``, ``cls``, optional ``attn``).

    Engine output per batch (before MONAI's decollate/post-processing): ``image``, ``label``
    (mask, may be absent), ``pred`` (lesion probabilities ``(B, 2, H, W)``), ``pred_cls`` (class
    probabilities ``(B, C)``), ``class`` (``(B,)``, -1 unknown), ``class_onehot`` and, when the
    inferer returns it, ``attn``. Use :class:`~monai_mtt.inferers.MTTSimpleInferer` for fast
    validation at the training size and :class:`~monai_mtt.inferers.MultiScaleTTAInferer` for
    the paper's test-time augmentation at the original resolution.

    Args:
        device, val_data_loader, network: as ``SupervisedEvaluator``.
        num_classes: number of lesion classes (for ``class_onehot``).
        inferer: defaults to :class:`MTTSimpleInferer`.
        amp: autocast: True, False or ``"auto"`` (see :func:`~monai_mtt.engines.precision.resolve_amp`).
        kwargs: passed on (postprocessing, key_val_metric, val_handlers, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: Iterable,
        network: torch.nn.Module,
        num_classes: int = 3,
        inferer: Any = None,
        amp: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            device=torch.device(device) if isinstance(device, str) else device,
            val_data_loader=val_data_loader,
            network=network,
            inferer=inferer if inferer is not None else MTTSimpleInferer(),
            amp=resolve_amp(amp, device),
            **kwargs,
        )
        self.num_classes = num_classes

    # ignite passes the engine itself; MONAI annotates it as the base class
    def _iteration(self, engine: MTTEvaluator, batchdata: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device = engine.state.device
        image = batchdata[Keys.IMAGE]
        image = image.to(device) if isinstance(image, torch.Tensor) else [i.to(device) for i in image]
        label = batchdata.get(Keys.LABEL)
        if isinstance(label, torch.Tensor):
            label = label.to(device)
        cls = batchdata.get(BatchKeys.CLASS)
        n = image.shape[0] if isinstance(image, torch.Tensor) else len(image)
        cls = torch.as_tensor(cls if cls is not None else [-1] * n).reshape(-1).long().to(device)
        engine.state.output = {Keys.IMAGE: image, Keys.LABEL: label}
        engine.network.eval()
        # our inferers also take a list of differently sized images; MONAI's Inferer annotates one tensor
        inferer: Callable[..., Any] = engine.inferer
        with engine.mode(engine.network):
            if engine.amp:
                with torch.autocast(device.type, **engine.amp_kwargs):
                    out = inferer(image, engine.network)
            else:
                out = inferer(image, engine.network)
        engine.state.output[Keys.PRED] = out[OutputKeys.SEG]
        engine.state.output["pred_cls"] = out[OutputKeys.CLS].float()
        engine.state.output[BatchKeys.CLASS] = cls
        engine.state.output["class_onehot"] = torch.nn.functional.one_hot(cls.clamp(min=0), self.num_classes) * (
            cls >= 0
        ).unsqueeze(1)
        if OutputKeys.ATTN in out:
            engine.state.output[OutputKeys.ATTN] = out[OutputKeys.ATTN]
        if label is None:
            engine.state.output.pop(Keys.LABEL)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
