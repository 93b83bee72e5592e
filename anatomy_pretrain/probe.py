"""Downstream protocol: multi-class organ segmentation with a linear or non-linear head on a frozen pretrained
backbone (probing) or with the backbone trained too (fine-tuning); sliding-window inference and per-class Dice.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot

from anatomy_pretrain.backbone import GuidedUNet3D
from anatomy_pretrain.checkpoints import frozen, load_pretrained_backbone
from anatomy_pretrain.coordinate_embedding import coordinate_embedding, embedding_channels, guide_from_batch
from anatomy_pretrain.heads import make_head


class SegmentationProbe(L.LightningModule):
    """Backbone from ``pretrainer_ckpt`` (random init with ``features`` when None) + head. A guided backbone gets the
    coordinate maps of the data (``batch["coords"]``), as in pretraining. ``finetune=False`` freezes the backbone (probing).
    ``probe_guide="zeros"``: a guided backbone gets a zero guide instead, the control that separates better image
    features from coordinates handed to the probe. A backbone pretrained with ``guidance_dropout`` > 0 has seen zero
    guides; one pretrained without has not, so for it the control also measures an input it never saw.
    ``probe_guide="head"``: the coordinates go to the head instead (their sin/cos embedding, ``num_frequencies`` of the
    backbone or 3, as one more input level at full resolution), and the backbone gets no guide (a zero one when
    guided): the control that asks whether position handed to the probe explains a guided backbone's lead. It needs
    the coordinate maps in the data for every backbone, guided or not."""

    def __init__(
        self,
        num_classes: int = 16,
        pretrainer_ckpt: str | None = None,
        features: tuple[int, int, int, int, int, int] = (16, 16, 32, 64, 128, 16),
        head: Literal["linear", "nonlinear"] = "nonlinear",
        head_width: int = 16,
        head_fuse_level: int = 1,
        finetune: bool = False,
        lr: float = 3e-3,
        backbone_lr: float = 3e-4,
        roi_size: tuple[int, int, int] = (32, 32, 32),
        sw_overlap: float = 0.25,
        class_names: list[str] | None = None,
        probe_guide: Literal["coords", "zeros", "head"] = "coords",
    ):
        super().__init__()
        if probe_guide not in ("coords", "zeros", "head"):
            raise ValueError(f"probe_guide must be 'coords', 'zeros' or 'head', got {probe_guide!r}")
        self.save_hyperparameters()
        self.guidance, self.num_frequencies = "none", 3
        if pretrainer_ckpt:
            self.net, pre_hp = load_pretrained_backbone(pretrainer_ckpt)
            self.guidance, self.num_frequencies = pre_hp.get("guidance", "none"), int(pre_hp.get("num_frequencies", 3))
        else:
            self.net = GuidedUNet3D(features=features)
        if not finetune:
            frozen(self.net)
        in_channels = tuple(self.net.encoder_channels)
        if probe_guide == "head":  # the coordinate embedding is one more pyramid level of the head's input
            in_channels += (embedding_channels(self.num_frequencies),)
        self.head = make_head(head, in_channels, num_classes, head_width, head_fuse_level)
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self.inferer = SlidingWindowInferer(roi_size=roi_size, sw_batch_size=4, overlap=sw_overlap, mode="gaussian")
        self.dice = DiceMetric(include_background=False, reduction="mean_batch", ignore_empty=True)
        self.names = list(class_names) if class_names else [f"class_{i}" for i in range(1, num_classes)]
        self.last_dice: dict[str, float] = {}

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.hparams.finetune:
            self.net.eval()
        return self

    def forward(self, image: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        mode = self.hparams.probe_guide
        if mode == "head" and coords is None:
            raise ValueError("probe_guide='head' hands the coordinates to the head: set data.init_args.coordinate_ckpt "
                             "(VolumeDataModule(coordinate_ckpt=...)) for this backbone too, guided or not")
        guide = guide_from_batch({"coords": coords} if coords is not None else {}, self.guidance, self.num_frequencies)
        if guide is not None and mode in ("zeros", "head"):
            guide = torch.zeros_like(guide)
        with torch.set_grad_enabled(self.hparams.finetune and torch.is_grad_enabled()):
            feats = self.net.encode(image, guide)
        if mode == "head":
            feats = [*feats, coordinate_embedding(coords.to(image.dtype), self.num_frequencies)]
        return self.head(feats)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"], batch.get("coords")), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    @torch.no_grad()
    def segment(self, image: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        """Whole-volume label map (B, 1, X, Y, Z) by sliding-window inference (windows of image and coordinates alike)."""
        if coords is None:
            return self.inferer(image, self).argmax(dim=1, keepdim=True)
        stacked = torch.cat([image, coords.to(image.dtype)], dim=1)
        return self.inferer(stacked, lambda x: self(x[:, :1], x[:, 1:])).argmax(dim=1, keepdim=True)

    def _eval_step(self, batch: dict) -> None:
        k = self.hparams.num_classes
        self.dice(one_hot(self.segment(batch["image"], batch.get("coords")), k), one_hot(batch["label"].clamp(0, k - 1), k))

    def _eval_epoch_end(self, split: str) -> None:
        # (volumes, classes), all-gathered over ranks by MONAI; NaN where a volume lacks the class (ignore_empty). Not
        # aggregate(): its mean_batch turns a class absent from every volume into Dice 0, which would pull the mean down.
        raw = self.dice.get_buffer()
        self.dice.reset()
        present = ~torch.isnan(raw)
        per_class = torch.where(present.any(0), torch.nan_to_num(raw).sum(0) / present.sum(0).clamp(min=1), float("nan"))
        values = {name: float(v) for name, v in zip(self.names, per_class)}
        present = [v for v in values.values() if v == v]
        values["mean"] = sum(present) / max(len(present), 1)
        self.last_dice = values
        self.log_dict({f"{split}/dice/{name}": v for name, v in values.items() if v == v}, sync_dist=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        groups = [{"params": list(self.head.parameters()), "lr": self.hparams.lr}]
        if self.hparams.finetune:
            groups.append({"params": list(self.net.parameters()), "lr": self.hparams.backbone_lr})
        return torch.optim.AdamW(groups, weight_decay=1e-4)
