"""Networks: the condition U-Net (MONAI BasicUNet with features) and the conditional denoiser.

Both work in 2D and 3D; neither imports Lightning or the data layer.
"""

from unisegdiff.nets.condition_unet import ConditionUNet
from unisegdiff.nets.denoiser import ConditionalDenoiser

__all__ = ["ConditionUNet", "ConditionalDenoiser"]
