"""The coordinate network: a 3D BasicUNet whose output is added to the patch's own metric voxel grid, so it only has
to learn where the patch lies in the body (and local bending); and whole-volume maps at the network's own spacing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInferer

from unisegdiff.nets import ConditionUNet


def centered_grid(shape: tuple[int, int, int], spacing: torch.Tensor, scale_mm: float) -> torch.Tensor:
    """(B, 3, X, Y, Z) voxel positions relative to the patch centre, in units of ``scale_mm``, for (B, 3) ``spacing`` mm."""
    axes = [(torch.arange(n, device=spacing.device, dtype=spacing.dtype) - (n - 1) / 2.0) for n in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, X, Y, Z) voxels
    return grid[None] * (spacing / scale_mm)[:, :, None, None, None]


class CoordinateNet(ConditionUNet):
    """``net(patch)`` -> (B, 3, X, Y, Z) anatomical coordinates (units of ``scale_mm``) = centred grid + UNet output.

    ``spacing_mm`` (a buffer, saved with the weights) is the voxel spacing the network was trained at; the coordinate
    model sets it from its training data. Pass ``spacing`` to override it per call.
    """

    def __init__(self, features: tuple[int, int, int, int, int, int] = (16, 16, 32, 64, 128, 16), scale_mm: float = 100.0,
                 crop_size: int = 32):
        super().__init__(spatial_dims=3, in_channels=1, out_channels=3, features=features)
        self.crop_size = int(crop_size)  # the patch side it was trained on: the sliding window of whole-volume maps
        self.register_buffer("scale_mm", torch.tensor(float(scale_mm)))
        self.register_buffer("spacing_mm", torch.zeros(3))

    def set_spacing(self, spacing: torch.Tensor) -> None:
        """Record the training spacing (B, 3) or (3,); refuses a batch of mixed spacings or a change of spacing."""
        spacing = torch.as_tensor(spacing, dtype=torch.float32).reshape(-1, 3).to(self.spacing_mm.device)
        if not torch.allclose(spacing, spacing[:1], rtol=1e-3):
            raise ValueError(f"coordinate model trained on mixed voxel spacings {spacing.tolist()}: resample to one spacing")
        if bool(self.spacing_mm.any()) and not torch.allclose(self.spacing_mm, spacing[0], rtol=1e-3):
            raise ValueError(f"coordinate model was trained at spacing {self.spacing_mm.tolist()} mm, got {spacing[0].tolist()}")
        self.spacing_mm.copy_(spacing[0])

    def forward(self, x: torch.Tensor, spacing: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if spacing is None:
            if not bool(self.spacing_mm.all()):
                raise ValueError("CoordinateNet has no training spacing recorded: train it (or pass spacing=) first")
            spacing = self.spacing_mm.expand(x.shape[0], 3)
        spacing = spacing.to(x.device, torch.float32).reshape(x.shape[0], 3)
        return super().forward(x) + centered_grid(tuple(x.shape[2:]), spacing, float(self.scale_mm)).to(x.dtype)


@torch.no_grad()
def volume_coordinates(net: CoordinateNet, image: torch.Tensor, spacing, overlap: float = 0.25) -> torch.Tensor:
    """Whole-volume coordinates (B, 3, X, Y, Z) of ``image`` (B, 1, X, Y, Z) with voxel ``spacing`` (3,) or (B, 3) mm.

    Each volume is resampled (trilinear) to the spacing ``net`` was trained at, mapped by sliding windows of its crop
    size (Gaussian blending), and the map is resampled back: coordinates do not depend on which patch a voxel is in.
    """
    spacing = torch.as_tensor(spacing, dtype=torch.float32).reshape(-1, 3).expand(image.shape[0], 3)
    if not bool(net.spacing_mm.all()):
        raise ValueError("CoordinateNet has no training spacing recorded: train the coordinate model first")
    inferer = SlidingWindowInferer(roi_size=(net.crop_size,) * 3, sw_batch_size=4, overlap=overlap, mode="gaussian")
    shape = tuple(image.shape[2:])
    out = []
    for x, sp in zip(image, spacing):
        size = tuple(max(1, round(n * float(s) / float(t))) for n, s, t in zip(shape, sp, net.spacing_mm.cpu()))
        x = x[None].float()
        if size != shape:
            x = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
        coords = inferer(x, net)
        if size != shape:
            coords = F.interpolate(coords, size=shape, mode="trilinear", align_corners=False)
        out.append(coords[0])
    return torch.stack(out)
