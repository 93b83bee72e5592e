"""Anatomy-guided 3D diffusion pretraining: coordinate model, diffusion pretrainer, probing, VolumeDataModule, phantoms.

Imports the core of ``unisegdiff`` (diffusion, nets, checkpoints); nothing in ``unisegdiff`` imports this package.
"""

from anatomy_pretrain.coordinate_model import AnatomicalCoordinateModel
from anatomy_pretrain.phantoms import ORGAN_NAMES, make_ct_phantom, write_phantom_dataset
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
from anatomy_pretrain.probe import SegmentationProbe
from anatomy_pretrain.slice_score import SliceScoreRegressor
from anatomy_pretrain.volume_data import VolumeDataModule

__all__ = [
    "ORGAN_NAMES", "AnatomicalCoordinateModel", "AnatomyGuidedDiffusionPretrainer", "SegmentationProbe",
    "SliceScoreRegressor", "VolumeDataModule", "make_ct_phantom", "write_phantom_dataset",
]
