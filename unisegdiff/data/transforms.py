"""Training augmentation as MONAI dictionary transforms on {"image": (C, S, S), "mask": (1, S, S)}.

Geometry (flips, small rotation/scale/shift) moves image and mask together; intensity jitter touches the image only.
"""

from __future__ import annotations

import math

import torch
from monai.transforms import (Compose, RandAdjustContrastd, RandAffined, RandFlipd, RandGaussianNoised,
                              RandScaleIntensityd, RandShiftIntensityd)
from torch.utils.data import get_worker_info


def train_augmentation(image_size: int, seed: int = 0) -> Compose:
    """Flips, small affine (rotation +-15 deg, scale +-10 %, shift +-6 %), contrast/brightness jitter, light noise."""
    transform = Compose([
        RandFlipd(keys=("image", "mask"), prob=0.5, spatial_axis=1),
        RandFlipd(keys=("image", "mask"), prob=0.2, spatial_axis=0),
        RandAffined(keys=("image", "mask"), prob=0.5, rotate_range=math.radians(15), scale_range=(0.1, 0.1),
                    translate_range=(0.06 * image_size, 0.06 * image_size), mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
        RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.3),
        RandGaussianNoised(keys="image", std=0.02, prob=0.2),
    ])
    transform.set_random_state(seed=seed)
    return transform


def seed_worker_augmentation(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: a distinct, reproducible augmentation stream per worker and epoch
    (MONAI random states are copied into each worker otherwise, so all workers would augment alike)."""
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None:
        transform.set_random_state(seed=info.seed % (2**32))
    torch.set_num_threads(1)
