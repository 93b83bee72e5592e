"""Balanced sampling across datasets of very different sizes, correct under DDP.

``DistributedWeightedSampler`` draws one weighted sequence per epoch (same on every rank: seed + epoch) and
gives each rank every ``world_size``-th index. It subclasses ``DistributedSampler``, so Lightning neither
replaces nor wraps it (it only does so for samplers that are not ``DistributedSampler``s) and calls its
``set_epoch`` each epoch; no ``use_distributed_sampler=False`` is needed.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler


def balanced_weights(dataset_of_sample: Sequence[str], dataset_weights: dict[str, float] | None = None) -> list[float]:
    """Per-sample weights that give each dataset a share proportional to its weight (default 1 each),
    whatever its size."""
    dataset_weights = dict(dataset_weights or {})
    counts = Counter(dataset_of_sample)
    unknown = sorted(set(dataset_weights) - set(counts))
    if unknown:
        raise ValueError(f"dataset_weights names datasets that are not in the train split: {unknown}; known: {sorted(counts)}")
    negative = {k: v for k, v in dataset_weights.items() if v < 0}
    if negative:
        raise ValueError(f"dataset_weights must be >= 0, got {negative}")
    weights = [float(dataset_weights.get(name, 1.0)) / counts[name] for name in dataset_of_sample]
    if not any(weights):
        raise ValueError("dataset_weights gives every train sample weight 0; give at least one dataset a positive weight")
    return weights


class DistributedWeightedSampler(DistributedSampler):
    """Weighted sampling with replacement, sharded by rank.

    Args:
        weights: one non-negative weight per sample.
        num_samples: draws per epoch over all ranks (default: ``len(weights)``); rounded up to a multiple of ``num_replicas``.
        num_replicas / rank: the DDP world size and this process's global rank (1 / 0 without DDP).
        seed: base seed; epoch ``e`` draws with ``seed + e``. Without ``set_epoch`` calls (plain loops)
            every new iteration moves to the next epoch by itself.
    """

    def __init__(self, weights: Sequence[float], num_samples: int | None = None, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        weights_tensor = torch.as_tensor(list(weights), dtype=torch.double)
        if weights_tensor.numel() == 0 or (weights_tensor < 0).any() or weights_tensor.sum() <= 0:
            raise ValueError("weights must be non-empty, non-negative and not all zero")
        super().__init__(range(len(weights_tensor)), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.weights = weights_tensor
        total = len(weights_tensor) if num_samples is None else int(num_samples)
        self.num_samples = math.ceil(total / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self._epoch_was_set = False
        self._skip: tuple[int, int] | None = None

    def skip_next(self, epoch: int, samples: int) -> None:
        """The next iteration, if it is of ``epoch``, starts ``samples`` draws into this rank's sequence (a resume in the
        middle of that epoch: the draws already trained are not repeated); an iteration of another epoch ignores it."""
        if samples < 0:
            raise ValueError(f"samples to skip must be >= 0, got {samples}")
        self._skip = (int(epoch), int(samples))

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._epoch_was_set = True

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Yields (sample index, augmentation seed): both come from the epoch's generator, so what a
        step sees depends only on (seed, epoch, position) - not on workers, and not on a resume."""
        epoch = self.epoch
        generator = torch.Generator().manual_seed(self.seed + epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator)
        aug_seeds = torch.randint(0, 2**31 - 1, (self.total_size,), generator=generator)
        if not self._epoch_was_set:
            self.epoch += 1  # next plain iteration draws a new sequence
        self._epoch_was_set = False
        start = self._skip[1] if self._skip is not None and self._skip[0] == epoch else 0
        self._skip = None
        shard = slice(self.rank, self.total_size, self.num_replicas)
        return iter(list(zip(drawn[shard].tolist(), aug_seeds[shard].tolist()))[start:])

    def __len__(self) -> int:
        return self.num_samples


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`DistributedWeightedSampler` whose place in the epoch goes into checkpoints.

    Lightning saves the ``state_dict()`` of every training loader that has one in the checkpoint's loop state and
    calls ``load_state_dict()`` when it resumes, before the first iterator is built. The state is the sampler's
    epoch and the batches trained in it (``trained_batches()``, the loop's count: Lightning prefetches, so the
    loader's own count of batches handed out would be one ahead); a resume in the middle of that epoch continues
    with the next batch of the same draw instead of replaying the epoch from its start.
    """

    trained_batches: Callable[[], int] | None = None

    def state_dict(self) -> dict[str, int]:
        batches = int(self.trained_batches()) if self.trained_batches is not None else 0
        return {"epoch": int(self.sampler.epoch), "batches": batches, "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state.get("batch_size", self.batch_size)) != self.batch_size:
            raise ValueError(f"the checkpoint was trained with batch_size {state['batch_size']}, this run has {self.batch_size}: "
                             "an exact resume needs the same batch size (or start a new fit instead of --ckpt_path)")
        self.sampler.skip_next(int(state["epoch"]), int(state["batches"]) * self.batch_size)
