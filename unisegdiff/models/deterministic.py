"""Deterministic segmenter: phase 1 of the staged pipeline (condition network pre-training) and
the U-Net baseline. A MONAI BasicUNet trained with Dice + BCE over all selected datasets.
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss

from unisegdiff.inference import FusedPrediction
from unisegdiff.models.base import SegmentationModule
from unisegdiff.nets import ConditionUNet


class DeterministicSegmenter(SegmentationModule):
    """One forward pass per image; ``uncertainty`` is the binary entropy of the sigmoid output."""

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        features: tuple[int, int, int, int, int, int] = (16, 32, 64, 128, 256, 16),
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_lr_epochs: int | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, max_lr_epochs=max_lr_epochs)
        self.save_hyperparameters()
        self.net = ConditionUNet(spatial_dims=spatial_dims, in_channels=in_channels, features=features, dropout=dropout)
        self.loss = DiceCELoss(sigmoid=True)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.net(batch["image"]), batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    @torch.inference_mode()
    def predict_fused(self, image: torch.Tensor, generator: torch.Generator | None = None) -> FusedPrediction:
        prob = torch.sigmoid(self.net(image).float())  # float also under autocast
        p = prob.clamp(1e-6, 1 - 1e-6)
        entropy = -(p * p.log2() + (1 - p) * (1 - p).log2())
        return FusedPrediction(probability=prob, mask=(prob > 0.5).float(), uncertainty=entropy)
