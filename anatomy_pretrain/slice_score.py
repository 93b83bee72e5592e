"""Slice-score body-part regressor (Yan et al. 2018, unsupervised body part regression): a 2D CNN scores axial
slices; equidistant slices of a patch must get increasing scores (order loss) with equal steps (distance loss).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


def slice_score_losses(scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, M) scores of M equidistant slices ordered inferior -> superior: order and distance losses."""
    steps = scores[:, 1:] - scores[:, :-1]
    order = -F.logsigmoid(steps).mean()
    distance = F.smooth_l1_loss(steps[:, 1:], steps[:, :-1], beta=0.1) if steps.shape[1] > 1 else steps.new_zeros(())
    return {"order": order, "distance": distance}


class SliceScoreNet(nn.Module):
    """Axial slice (B, 1, X, Y) -> scalar score."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.InstanceNorm2d(c, affine=True), nn.LeakyReLU(0.1), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(slices).mean(dim=(2, 3))).squeeze(-1)


class SliceScoreRegressor(L.LightningModule):
    """Scores ``num_slices`` axial slices ``slice_gap`` voxels apart from each patch (last axis = superior in RAS)."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), num_slices: int = 6, slice_gap: int = 4, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = SliceScoreNet(channels)
        self.last_score_r: list[float] = []

    def score_volume(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 1, X, Y, Z) -> (Z,) score per axial slice."""
        return self.net(image[0].permute(3, 0, 1, 2))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp, image = self.hparams, batch["image"]
        depth, span = image.shape[-1], (hp.num_slices - 1) * hp.slice_gap
        if span >= depth:
            raise ValueError(f"num_slices x slice_gap = {span} does not fit the patch depth {depth}")
        start = int(torch.randint(0, depth - span, ()))
        picked = image[..., start:start + span + 1:hp.slice_gap]  # (B, 1, X, Y, M)
        b, m = picked.shape[0], picked.shape[-1]
        scores = self.net(picked.permute(0, 4, 1, 2, 3).reshape(b * m, 1, *picked.shape[2:4])).view(b, m)
        losses = slice_score_losses(scores)
        loss = losses["order"] + losses["distance"]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=b)
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.last_score_r = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        scores = self.score_volume(batch["image"]).float().cpu()
        z = torch.arange(len(scores), dtype=torch.float32)
        r = float(torch.corrcoef(torch.stack([scores, z]))[0, 1])
        self.last_score_r.append(r)
        self.log("val/score_z_r", r, batch_size=1)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
