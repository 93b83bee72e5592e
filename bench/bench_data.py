"""Data-loading benchmark: decoded samples/s of the LesionDataModule train loader, and the share of a
training step spent waiting for data next to a stand-in model step (MONAI BasicUNet, AdamW).

Usage: python bench/bench_data.py [--root ../shared/data/lesion2d] [--steps 40]; writes reports/bench/data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from monai.networks.nets import BasicUNet
from torch.nn import functional as F

from unisegdiff.data.datamodule import LesionDataModule

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / ".." / "shared" / "data" / "lesion2d"


def loader_throughput(module: LesionDataModule, batches: int) -> dict:
    """Samples/s of the train loader alone (decode from cache + augment + collate), after one warm-up batch."""
    loader = module.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    start, samples = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        samples += batch["image"].shape[0]
    seconds = time.perf_counter() - start
    return {"batches": batches, "samples": samples, "seconds": round(seconds, 3), "samples_per_s": round(samples / seconds, 1)}


def training_wait_share(module: LesionDataModule, steps: int, warmup: int = 3) -> dict:
    """Time blocked on the loader vs. time in forward/backward/step, over ``steps`` steps after ``warmup``."""
    model = BasicUNet(spatial_dims=2, in_channels=module.channels, out_channels=1, features=(16, 32, 64, 128, 256, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = module.train_dataloader()
    iterator = iter(loader)
    wait = compute = 0.0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        t1 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(batch["image"]), batch["mask"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        if step >= warmup:
            wait, compute = wait + (t1 - t0), compute + (t2 - t1)
    total = wait + compute
    return {"steps": steps, "data_wait_s": round(wait, 3), "compute_s": round(compute, 3), "step_s": round(total / steps, 4),
            "data_wait_share": round(wait / total, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=str(DEFAULT_ROOT) if DEFAULT_ROOT.is_dir() else None, help="canonical root (default: shared data, else phantoms)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers (the DataModule default)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--loader-batches", type=int, default=60)
    parser.add_argument("--out", default=str(REPO / "reports" / "bench" / "data.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    module = LesionDataModule(root=args.root, image_size=args.image_size, batch_size=args.batch_size, num_workers=args.num_workers)
    start = time.perf_counter()
    module.setup("fit")
    setup_s = time.perf_counter() - start
    result = {
        "root": args.root or "phantoms (in memory)", "datasets": module.dataset_names, "image_size": args.image_size,
        "batch_size": args.batch_size, "num_workers": args.num_workers, "augment": True, "balanced_sampling": True,
        "train_samples": len(module.split_dataset("train")), "setup_fit_s_decode_and_cache": round(setup_s, 2),
        "loader": loader_throughput(module, args.loader_batches),
        "training": training_wait_share(module, args.steps),
        "stand_in_model": "monai BasicUNet features=(16,32,64,128,256,16), AdamW, BCE",
        "machine": {"cpus": os.cpu_count(), "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)], "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()},
    }
    result["target_met"] = result["training"]["data_wait_share"] < 0.10
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
