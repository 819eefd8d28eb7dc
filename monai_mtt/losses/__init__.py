"""Losses: the MT-TransUNet objective (eq. 5-12) and the DTC ramp-up."""

from monai_mtt.losses.mtt_loss import MTTLoss, dtc_rampup

__all__ = ["MTTLoss", "dtc_rampup"]
