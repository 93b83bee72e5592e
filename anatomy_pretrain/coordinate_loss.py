"""APE-style self-supervised losses for per-voxel anatomical coordinates, and the distance-correlation check.

``offset``: differences of predicted coordinates (x ``scale_mm``) must equal the physical displacement (mm) between
voxels of two crops (volumes share the RAS orientation, so the vector is known, not just its length); ``distance``:
only the lengths must match (rotation-free but ill-conditioned); ``invariance``: voxels seen by both crops agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _random_indices(shape: tuple[int, int, int], n: int, batch: int, generator: torch.Generator | None, device,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, n, 3) integer voxel indices uniform over a crop of ``shape``, or over the True voxels of ``mask`` (B, X, Y, Z)
    (uniform over the crop for a sample whose mask is empty)."""
    high = torch.tensor(shape, device=device)
    if mask is None:
        u = torch.rand(batch, n, 3, generator=generator, device=device if generator is None else generator.device).to(device)
        return (u * high).long().clamp_max(high - 1)
    weights = mask.flatten(1).float().cpu()
    weights[weights.sum(1) == 0] = 1.0
    flat = torch.multinomial(weights, n, replacement=True, generator=generator).to(device)
    y, z = shape[1], shape[2]
    return torch.stack([flat // (y * z), (flat // z) % y, flat % z], dim=-1)


def gather_voxels(maps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, C, X, Y, Z) maps at (B, n, 3) voxel indices -> (B, n, C)."""
    b, c, x, y, z = maps.shape
    flat = (idx[..., 0] * y + idx[..., 1]) * z + idx[..., 2]
    return maps.flatten(2).gather(2, flat.unsqueeze(1).expand(b, c, -1)).transpose(1, 2)


def coordinate_losses(
    pred_a: torch.Tensor,
    pred_b: torch.Tensor,
    offset_a: torch.Tensor,
    offset_b: torch.Tensor,
    spacing: torch.Tensor,
    num_points: int = 256,
    scale_mm: float = 100.0,
    generator: torch.Generator | None = None,
    mask_a: torch.Tensor | None = None,
    mask_b: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Losses for predicted coordinate maps of two crops (B, 3, X, Y, Z) taken at voxel ``offset_a``/``offset_b`` (B, 3)
    of the same volumes with voxel ``spacing`` (B, 3) mm. Returns ``offset``, ``distance`` and ``invariance`` (units of scale_mm).

    ``offset`` is the mean squared deviation of (predicted - physical position) from its per-volume mean: zero exactly
    when the map is the physical grid up to a per-volume translation (a crop-relative map is penalized across crops).
    Points of the offset/distance terms are drawn from ``mask_a``/``mask_b`` (B, X, Y, Z) when given (e.g. the body:
    air outside the patient has no anatomical position)."""
    batch, shape, device = pred_a.shape[0], tuple(pred_a.shape[2:]), pred_a.device
    offset_a, offset_b, spacing = offset_a.to(device), offset_b.to(device), spacing.to(device, pred_a.dtype)
    ia = _random_indices(shape, num_points, batch, generator, device, mask_a)
    ib = _random_indices(shape, num_points, batch, generator, device, mask_b)
    pred = torch.cat([gather_voxels(pred_a, ia), gather_voxels(pred_b, ib)], dim=1)
    pos = torch.cat([(ia + offset_a[:, None]), (ib + offset_b[:, None])], dim=1).to(pred.dtype) * spacing[:, None] / scale_mm
    distance = F.smooth_l1_loss(torch.cdist(pred, pred), torch.cdist(pos, pos), beta=0.1)
    residual = pred - pos
    offset = (residual - residual.mean(dim=1, keepdim=True)).pow(2).sum(-1).mean()
    # invariance: voxels inside both crops
    lo = torch.maximum(offset_a, offset_b)
    hi = torch.minimum(offset_a, offset_b) + torch.tensor(shape, device=device)
    overlaps = (hi > lo).all(dim=1)  # samples whose crops share voxels; the others add no invariance term
    hi = torch.where(overlaps[:, None], hi, lo + 1)
    u = torch.rand(batch, num_points, 3, generator=generator, device=device if generator is None else generator.device).to(device)
    common = lo[:, None] + (u * (hi - lo)[:, None]).long().clamp_max((hi - lo - 1)[:, None])
    inside = lambda off: (common - off[:, None]).clamp(min=0).minimum(torch.tensor(shape, device=device) - 1)  # noqa: E731
    squared = (gather_voxels(pred_a, inside(offset_a)) - gather_voxels(pred_b, inside(offset_b))).pow(2).sum(-1).mean(dim=1)
    invariance = (squared * overlaps).sum() / overlaps.sum().clamp_min(1)
    return {"offset": offset, "distance": distance, "invariance": invariance}


def physical_grid(shape: tuple[int, int, int], spacing, offset=(0, 0, 0), scale_mm: float = 100.0) -> torch.Tensor:
    """(3, X, Y, Z) voxel positions in units of ``scale_mm``: the perfect coordinate map of a crop at ``offset``."""
    axes = [(torch.arange(n) + o) * float(s) / scale_mm for n, s, o in zip(shape, spacing, offset)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def distance_correlation(
    coords: torch.Tensor, spacing, mask: torch.Tensor | None = None, num_pairs: int = 4000, scale_mm: float = 100.0, seed: int = 0,
) -> float:
    """Pearson r between predicted (``coords`` (3, X, Y, Z) x scale_mm) and physical distances of random voxel pairs in ``mask``."""
    g = torch.Generator().manual_seed(seed)
    where = torch.nonzero(mask if mask is not None else torch.ones(coords.shape[1:], dtype=torch.bool))
    pick = torch.randint(len(where), (2, num_pairs), generator=g)
    a, b = where[pick[0]], where[pick[1]]
    sp = torch.as_tensor(spacing, dtype=torch.float32)
    true = ((a - b).float() * sp).norm(dim=1)
    ca, cb = coords[:, a[:, 0], a[:, 1], a[:, 2]], coords[:, b[:, 0], b[:, 1], b[:, 2]]
    pred = (ca - cb).float().norm(dim=0) * scale_mm
    return float(torch.corrcoef(torch.stack([pred, true]))[0, 1])
