"""Models-Genesis-style corruptions for restorative pretraining on [-1, 1] 3D patches: non-linear intensity
(Bezier) transform, local voxel shuffling, and in-painting or out-painting with noise. The network restores the original.
"""

from __future__ import annotations

import torch


def _u(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def bezier_intensity(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Monotone-or-flipped cubic Bezier mapping of intensities (Models Genesis' non-linear transform)."""
    p1, p2 = torch.rand(2, generator=generator), torch.rand(2, generator=generator)
    t = torch.linspace(0, 1, 256)
    xs = 3 * (1 - t) ** 2 * t * p1[0] + 3 * (1 - t) * t ** 2 * p2[0] + t ** 3
    ys = 3 * (1 - t) ** 2 * t * p1[1] + 3 * (1 - t) * t ** 2 * p2[1] + t ** 3
    xs, order = xs.sort()
    ys = ys[order]
    if _u(generator) < 0.5:
        ys = 1 - ys
    u = ((x + 1) / 2).clamp(0, 1).cpu()
    idx = torch.searchsorted(xs, u.flatten().contiguous()).clamp(1, 255)
    x0, x1, y0, y1 = xs[idx - 1], xs[idx], ys[idx - 1], ys[idx]
    w = ((u.flatten() - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0, 1)
    return ((y0 + w * (y1 - y0)) * 2 - 1).view_as(x).to(x.device, x.dtype)


def local_shuffle(x: torch.Tensor, blocks: int = 50, max_block: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle voxels inside ``blocks`` small random boxes of a (C, X, Y, Z) patch."""
    y = x.clone()
    dims = x.shape[1:]
    for _ in range(blocks):
        size = [int(torch.randint(1, max_block + 1, (), generator=generator)) for _ in dims]
        start = [int(torch.randint(0, d - s + 1, (), generator=generator)) for d, s in zip(dims, size)]
        sl = (slice(None),) + tuple(slice(a, a + s) for a, s in zip(start, size))
        box = y[sl]
        perm = torch.randperm(box[0].numel(), generator=generator)
        y[sl] = box.flatten(1)[:, perm].view_as(box)
    return y


def paint(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """In-painting (random boxes filled with noise) or out-painting (everything but one box filled with noise)."""
    dims = x.shape[1:]
    noise = torch.rand(x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1

    def box(lo: float, hi: float):
        size = [max(1, int(d * (lo + (hi - lo) * _u(generator)))) for d in dims]
        start = [int(torch.randint(0, d - s + 1, (), generator=generator)) for d, s in zip(dims, size)]
        return (slice(None),) + tuple(slice(a, a + s) for a, s in zip(start, size))

    if _u(generator) < 0.5:
        y = x.clone()
        for _ in range(int(torch.randint(1, 5, (), generator=generator))):
            sl = box(0.15, 0.35)
            y[sl] = noise[sl]
        return y
    y = noise.clone()
    sl = box(0.5, 0.8)
    y[sl] = x[sl]
    return y


def models_genesis_corrupt(
    batch: torch.Tensor, p_nonlinear: float = 0.9, p_shuffle: float = 0.5, p_paint: float = 0.9, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Corrupt each (C, X, Y, Z) sample of a batch with the Models Genesis recipe."""
    out = []
    for x in batch:
        if _u(generator) < p_nonlinear:
            x = bezier_intensity(x, generator)
        if _u(generator) < p_shuffle:
            x = local_shuffle(x, generator=generator)
        if _u(generator) < p_paint:
            x = paint(x, generator)
        out.append(x)
    return torch.stack(out)
