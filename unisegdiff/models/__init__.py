"""LightningModules of the staged segmenter pipeline and its baselines.

Phase 1 / U-Net baseline: :class:`DeterministicSegmenter`; phase 2: :class:`StagedDiffusionSegmenter`.
"""

from unisegdiff.models.base import SegmentationModule
from unisegdiff.models.deterministic import DeterministicSegmenter
from unisegdiff.models.staged_diffusion import StagedDiffusionSegmenter

__all__ = ["DeterministicSegmenter", "SegmentationModule", "StagedDiffusionSegmenter"]
