"""Networks: :class:`MTTransUNet`, its building blocks, the ImageNet weight loader and export helpers."""

from monai_mtt.networks.authors import convert_authors_state_dict, is_authors_state_dict
from monai_mtt.networks.channel_norm import ChannelNorm, channel_norms_for_channels_last
from monai_mtt.networks.checkpoint import load_checkpoint, load_inference_network
from monai_mtt.networks.decoder import CascadedUpsamplingDecoder, UpBlock
from monai_mtt.networks.factorized_up import FactorizedUpBlock, factorize_up_blocks
from monai_mtt.networks.fuse import fuse_for_inference
from monai_mtt.networks.mt_transunet import MTTransUNet, MTTransUNetInfer
from monai_mtt.networks.per_image_tail import PerImageTailDecoder, per_image_tail
from monai_mtt.networks.pretrained import PretrainedWeightsError, load_pretrained
from monai_mtt.networks.resnetv2 import BottleneckUnit, ResNetV2Encoder, StdConv2d
from monai_mtt.networks.transformer import ViTLayer

__all__ = [
    "MTTransUNet",
    "MTTransUNetInfer",
    "load_pretrained",
    "load_checkpoint",
    "convert_authors_state_dict",
    "is_authors_state_dict",
    "load_inference_network",
    "PretrainedWeightsError",
    "fuse_for_inference",
    "FactorizedUpBlock",
    "factorize_up_blocks",
    "PerImageTailDecoder",
    "per_image_tail",
    "ChannelNorm",
    "channel_norms_for_channels_last",
    "ResNetV2Encoder",
    "BottleneckUnit",
    "StdConv2d",
    "CascadedUpsamplingDecoder",
    "UpBlock",
    "ViTLayer",
]
