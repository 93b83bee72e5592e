"""Deterministic segmenter: phase 1 of the staged pipeline (condition network pre-training) and
the U-Net baseline. A MONAI BasicUNet trained with Dice + BCE over all selected datasets.
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss

from unisegdiff.inference import FusedPrediction
from unisegdiff.models.base import SegmentationModule
from unisegdiff.models.checkpoints import load_module_weights
from unisegdiff.nets import ConditionUNet


class DeterministicSegmenter(SegmentationModule):
    """One forward pass per image; ``uncertainty`` is the binary entropy of the sigmoid output.

    ``encoder_ckpt``: a pretrained encoder (``net.conv_0``, ``net.down_*``; e.g. exported by ``anatomy_pretrain.bridge``
    from a 3D pretrainer) loaded into the network when a run starts from scratch; the decoder starts fresh.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        features: tuple[int, int, int, int, int, int] = (16, 32, 64, 128, 256, 16),
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_lr_epochs: int | None = None,
        encoder_ckpt: str | None = None,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, max_lr_epochs=max_lr_epochs)
        self.save_hyperparameters()
        self.net = ConditionUNet(spatial_dims=spatial_dims, in_channels=in_channels, features=features, dropout=dropout)
        self.loss = DiceCELoss(sigmoid=True)

    def load_encoder_weights(self) -> None:
        """Load ``encoder_ckpt`` into the encoder blocks (weights only; the checkpoint must hold only encoder keys)."""
        if self.hparams.encoder_ckpt:
            load_module_weights(self.net, self.hparams.encoder_ckpt, prefix="net.", strict=False)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.trainer is not None and self.trainer.ckpt_path is None:  # a restored run already holds the weights
            self.load_encoder_weights()

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
