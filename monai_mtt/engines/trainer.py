"""Semi-supervised MT-TransUNet trainer on MONAI's ``SupervisedTrainer`` (Ignite)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys
from torch.optim import Optimizer

from monai_mtt.engines.precision import resolve_amp
from monai_mtt.engines.two_stream import TwoStreamLoader
from monai_mtt.keys import BatchKeys, OutputKeys
from monai_mtt.losses import MTTLoss

__all__ = ["SemiSupervisedTrainer"]

_TENSOR_KEYS = (BatchKeys.IMAGE, BatchKeys.LABEL, BatchKeys.LSF, BatchKeys.CLASS)


def _to_device(batch: dict, device: torch.device, non_blocking: bool) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key in _TENSOR_KEYS:
        value = batch.get(key)
        if isinstance(value, torch.Tensor):
            value = value.as_tensor() if hasattr(value, "as_tensor") else value
            out[key] = value.to(device, non_blocking=non_blocking)
    return out


class SemiSupervisedTrainer(SupervisedTrainer):
    """MONAI trainer whose iteration uses a labeled and a classification-only batch (paper 3.2-3.4).

    Both batches go through the network in ONE concatenated forward; eq. (11) is applied to the
    labeled part and eq. (12) to the unlabeled part, combined as the loss's ``stream_reduction``
    says (:meth:`~monai_mtt.losses.MTTLoss.two_streams`: by default the class, DTC and ARC terms
    are averaged over the combined batch, as the authors do; ``"sum"`` adds the two per-stream
    totals). The engine output holds ``image``, ``label``, ``pred`` (labeled mask logits), ``loss``
    (the combined total) and every per-stream (unweighted) term:
    ``lab_mask``, ``lab_cls``, ``lab_lsf``, ``lab_dtc``, ``lab_arc``, ``unl_cls``, ``unl_dtc``,
    ``unl_arc``, plus ``lambda_dtc`` and ``lr``. Batches without ``class`` (MONAI Label datalists)
    are accepted: the classification term then skips them.

    ``IterationEvents.FORWARD_COMPLETED``, ``LOSS_COMPLETED``, ``BACKWARD_COMPLETED`` and
    ``MODEL_COMPLETED`` fire as in ``SupervisedTrainer``.

    Args:
        device: training device.
        max_epochs: number of epochs (``max_iterations / epoch_length`` in the bundle).
        train_data_loader: the labeled loader (image, label, lsf, class).
        network: an :class:`~monai_mtt.networks.MTTransUNet`.
        optimizer: e.g. ``Adam(lr=1e-5)``.
        loss_function: an :class:`~monai_mtt.losses.MTTLoss`.
        unlabeled_data_loader: classification-only loader (image, class) or None.
        epoch_length: iterations per epoch (defaults to the longer loader's length).
        return_attention: ask the network for the cls attention (needed by the ARC term; the
            :class:`~monai_mtt.handlers.ARCHandler` switches it).
        amp: mixed precision: True (CUDA float16 with a grad scaler; CPU bfloat16 autocast), False (float32),
            or ``"auto"``: on where it measured faster, i.e. CPUs with AMX / AVX-512 BF16, not CUDA
            (see :func:`~monai_mtt.engines.precision.resolve_amp`).
        kwargs: passed on to ``SupervisedTrainer`` (handlers, metrics, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: MTTLoss,
        unlabeled_data_loader: Iterable | None = None,
        epoch_length: int | None = None,
        return_attention: bool = False,
        amp: bool | str = False,
        train_handlers: Sequence | None = None,
        **kwargs: Any,
    ) -> None:
        amp = resolve_amp(amp, device)
        loader = TwoStreamLoader(train_data_loader, unlabeled_data_loader)
        super().__init__(
            device=torch.device(device) if isinstance(device, str) else device,
            max_epochs=max_epochs,
            train_data_loader=loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            amp=amp and torch.device(device).type == "cuda",
            train_handlers=train_handlers,
            decollate=False,
            **kwargs,
        )
        self.return_attention = return_attention
        self.cpu_amp = amp and torch.device(device).type == "cpu"
        self.has_unlabeled = unlabeled_data_loader is not None

    def _autocast(self):
        if self.amp:
            return torch.autocast("cuda", **self.amp_kwargs)
        if self.cpu_amp:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast(self.state.device.type, enabled=False)

    # ignite passes the engine itself; MONAI annotates it as the base class
    def _iteration(self, engine: SemiSupervisedTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device, nb = engine.state.device, engine.non_blocking
        lab = _to_device(batchdata["labeled"], device, nb)
        unl = _to_device(batchdata["unlabeled"], device, nb) if "unlabeled" in batchdata else None
        image = lab[BatchKeys.IMAGE]
        n_lab = image.shape[0]
        inputs = image if unl is None else torch.cat([image, unl[BatchKeys.IMAGE]], dim=0)
        engine.state.output = {Keys.IMAGE: image, Keys.LABEL: lab.get(BatchKeys.LABEL)}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        loss_fn = cast(MTTLoss, engine.loss_function)  # __init__ takes an MTTLoss
        with self._autocast():
            out = engine.network(inputs, return_attention=engine.return_attention)
            out = {k: v.float() for k, v in out.items()}
            engine.state.output[Keys.PRED] = out[OutputKeys.SEG][:n_lab]
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            parts = loss_fn.two_streams(out, lab, unl, n_lab)
            total = cast(torch.Tensor, parts.pop("total"))
        engine.state.output[Keys.LOSS] = total
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        if engine.amp and engine.scaler is not None:
            engine.scaler.scale(total).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            total.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.state.output[Keys.LOSS] = total.detach()
        for stream, terms in cast(dict[str, dict[str, torch.Tensor]], parts).items():  # the per-stream terms
            for name in MTTLoss.terms:
                if stream == "unl" and name in ("mask", "lsf"):
                    continue
                engine.state.output[f"{stream}_{name}"] = float(terms[name].detach())
        engine.state.output["lambda_dtc"] = loss_fn.lambda_dtc * loss_fn.dtc_ramp
        engine.state.output["lr"] = float(engine.optimizer.param_groups[0]["lr"])
        engine.state.batch = batchdata
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
