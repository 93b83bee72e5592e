"""Anatomical coordinate model: a 3D U-Net mapping a CT patch to per-voxel (x, y, z) body coordinates, trained
self-supervised on two augmented crops (APE-style offset or distance loss + invariance). Predict writes NIfTI maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import torch

from anatomy_pretrain.augment import intensity_augment
from anatomy_pretrain.coordinate_loss import coordinate_losses, distance_correlation
from anatomy_pretrain.coordinate_net import CoordinateNet, volume_coordinates
from anatomy_pretrain.writers import write_nifti_atomic


def random_crop_pair(images: torch.Tensor, crop: int, generator: torch.Generator | None = None):
    """Two crops of side ``crop`` per sample at random voxel offsets (they always overlap when crop > patch / 2)."""
    b, patch = images.shape[0], images.shape[2:]
    if any(crop > p for p in patch):
        raise ValueError(f"crop_size {crop} exceeds the patch {tuple(patch)}")
    high = torch.tensor([p - crop + 1 for p in patch])
    offsets = [(torch.rand(b, 3, generator=generator) * high).long() for _ in range(2)]
    crops = [torch.stack([img[:, o[0]:o[0] + crop, o[1]:o[1] + crop, o[2]:o[2] + crop] for img, o in zip(images, off)]) for off in offsets]
    return crops[0], crops[1], offsets[0], offsets[1]


class AnatomicalCoordinateModel(L.LightningModule):
    """``net(patch)`` -> (B, 3, X, Y, Z) coordinates in units of ``scale_mm``; trained from patches of a VolumeDataModule."""

    def __init__(
        self,
        features: tuple[int, int, int, int, int, int] = (16, 16, 32, 64, 128, 16),
        crop_size: int = 32,
        num_points: int = 256,
        loss: Literal["offset", "distance"] = "offset",
        invariance_weight: float = 1.0,
        scale_mm: float = 100.0,
        augment_strength: float = 1.0,
        body_level: float = -0.9,
        lr: float = 1e-3,
        sw_overlap: float = 0.5,
        predict_dir: str = "runs/anatomy/coordinate_maps",
    ):
        super().__init__()
        self.save_hyperparameters()
        if loss not in ("offset", "distance"):
            raise ValueError(f"loss must be 'offset' or 'distance', got {loss!r}")
        if crop_size % 16:
            raise ValueError(f"crop_size must be a multiple of 16 (four 2x downsamplings), got {crop_size}")
        self.net = CoordinateNet(features=features, scale_mm=scale_mm, crop_size=crop_size)
        self.last_distance_r: list[float] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def predict_volume(self, image: torch.Tensor, spacing: torch.Tensor) -> torch.Tensor:
        """Whole-volume coordinates by sliding-window inference: (B, 1, X, Y, Z) with (B, 3) spacing -> (B, 3, X, Y, Z)."""
        return volume_coordinates(self.net, image, spacing, self.hparams.sw_overlap)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        crop_a, crop_b, off_a, off_b = random_crop_pair(batch["image"], hp.crop_size)
        crops = torch.cat([intensity_augment(crop_a, hp.augment_strength), intensity_augment(crop_b, hp.augment_strength)])
        self.net.set_spacing(batch["spacing"])
        pred_a, pred_b = self.net(crops, batch["spacing"].repeat(2, 1)).chunk(2)
        body_a, body_b = (crop[:, 0] > hp.body_level for crop in (crop_a, crop_b))
        losses = coordinate_losses(pred_a, pred_b, off_a, off_b, batch["spacing"], hp.num_points, hp.scale_mm, mask_a=body_a, mask_b=body_b)
        loss = losses[hp.loss] + hp.invariance_weight * losses["invariance"]
        n = crop_a.shape[0]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.last_distance_r = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        coords = self.predict_volume(batch["image"], batch["spacing"])
        body = batch["image"][0, 0] > self.hparams.body_level
        r = distance_correlation(coords[0].cpu(), batch["spacing"][0].tolist(), body.cpu(), scale_mm=self.hparams.scale_mm, seed=batch_idx)
        self.last_distance_r.append(r)
        self.log("val/distance_r", r, batch_size=1)

    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        coords = self.predict_volume(batch["image"], batch["spacing"]) * self.hparams.scale_mm  # mm
        out = []
        for c, affine, name in zip(coords, batch["affine"], batch["name"]):
            out.append(str(write_nifti_atomic(c, affine.cpu().numpy(), Path(self.hparams.predict_dir) / f"{name}_coords.nii.gz")))
        return out

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
