"""Handlers that set per-iteration loss schedules: the DTC ramp-up and the ARC switch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai.utils import min_version, optional_import

from monai_mtt.losses import MTTLoss, dtc_rampup

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine

    from monai_mtt.engines import SemiSupervisedTrainer
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["DTCRampHandler", "ARCHandler"]


class DTCRampHandler:
    """Set ``loss.dtc_ramp`` to ``exp(-5 (1 - t/T)^2)`` before every iteration (paper 4.3).

    The factor is a function of the iteration counter alone, so a resumed run gets the right λD
    without storing it.

    Args:
        loss: the :class:`~monai_mtt.losses.MTTLoss` whose DTC weight ramps.
        ramp_length: ``T`` in iterations (the paper: 40 "epochs" of 500 iterations = 20,000).
    """

    def __init__(self, loss: MTTLoss, ramp_length: int = 20_000) -> None:
        self.loss = loss
        self.ramp_length = int(ramp_length)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.loss.dtc_ramp = dtc_rampup(engine.state.iteration - 1, self.ramp_length)


class ARCHandler:
    """Switch on the cls-attention output (and so the ARC term) from ``start_iteration`` on.

    The network computes the cls token's attention only while ``engine.return_attention`` is True,
    which this handler sets when ``loss.lambda_arc > 0`` and the iteration has reached
    ``start_iteration``; with ``lambda_arc = 0`` (Table 1 settings 1-5) no attention is computed.

    Args:
        loss: the :class:`~monai_mtt.losses.MTTLoss`.
        start_iteration: first iteration (1-based) with the ARC term.
    """

    def __init__(self, loss: MTTLoss, start_iteration: int = 1) -> None:
        self.loss = loss
        self.start_iteration = int(start_iteration)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def __call__(self, engine: SemiSupervisedTrainer) -> None:
        engine.return_attention = bool(self.loss.lambda_arc > 0 and engine.state.iteration >= self.start_iteration)
