"""Coordinate model: the APE losses are zero for a perfect map and positive for a shuffled one, the offset loss also
rejects mirrored and crop-relative maps; the network adds its metric grid; whole-volume maps; a training step runs;
predict writes NIfTI coordinate maps; the slice-score alternative's losses order slices."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchio as tio

from anatomy_pretrain.coordinate_loss import coordinate_losses, distance_correlation, physical_grid
from anatomy_pretrain.coordinate_model import AnatomicalCoordinateModel, random_crop_pair
from anatomy_pretrain.coordinate_net import CoordinateNet, volume_coordinates
from anatomy_pretrain.slice_score import SliceScoreRegressor, slice_score_losses
from anatomy_pretrain.tiny import TINY_FEATURES, quiet_trainer, tiny_datamodule

OFF_A, OFF_B = torch.tensor([[0, 4, 2], [3, 0, 1]]), torch.tensor([[5, 0, 6], [0, 2, 0]])
SPACING = torch.tensor([[2.0, 2.0, 3.0], [4.0, 4.0, 4.0]])


def _perfect(offsets):
    return torch.stack([physical_grid((16, 16, 16), SPACING[i], offsets[i]) for i in range(2)])


def test_coordinate_loss_zero_for_perfect_map():
    losses = coordinate_losses(_perfect(OFF_A), _perfect(OFF_B), OFF_A, OFF_B, SPACING)
    assert max(losses[k].item() for k in ("offset", "distance", "invariance")) < 1e-6
    # a shift of both maps of a volume is just as perfect
    shifted = coordinate_losses(_perfect(OFF_A) + 3.0, _perfect(OFF_B) + 3.0, OFF_A, OFF_B, SPACING)
    assert max(shifted[k].item() for k in ("offset", "distance", "invariance")) < 1e-5


def test_offset_loss_rejects_mirrored_and_crop_relative_maps():
    mirrored = coordinate_losses(-_perfect(OFF_A), -_perfect(OFF_B), OFF_A, OFF_B, SPACING)
    assert mirrored["distance"].item() < 1e-5 and mirrored["offset"].item() > 0.01  # lengths right, directions wrong
    zero = torch.zeros_like(OFF_A)
    relative = coordinate_losses(_perfect(zero), _perfect(zero), OFF_A, OFF_B, SPACING)  # each crop its own origin
    assert relative["offset"].item() > 1e-3 and relative["invariance"].item() > 1e-3


def test_loss_points_follow_the_body_mask():
    body = torch.zeros(2, 16, 16, 16, dtype=torch.bool)
    body[:, :8] = True
    pred_a, pred_b = _perfect(OFF_A), _perfect(OFF_B)
    pred_a[:, :, 8:] = 50.0  # wrong only outside the body
    pred_b[:, :, 8:] = -50.0
    inside = coordinate_losses(pred_a, pred_b, OFF_A, OFF_B, SPACING, mask_a=body, mask_b=body)
    everywhere = coordinate_losses(pred_a, pred_b, OFF_A, OFF_B, SPACING)
    assert inside["offset"].item() < 1e-6 < everywhere["offset"].item()


def test_coordinate_net_adds_its_metric_grid_and_checks_spacing():
    net = CoordinateNet(features=TINY_FEATURES, scale_mm=100.0, crop_size=32).eval()
    torch.nn.init.zeros_(net.final_conv.weight)
    torch.nn.init.zeros_(net.final_conv.bias)
    x = torch.randn(1, 1, 32, 32, 32)
    with pytest.raises(ValueError, match="training spacing"):
        net(x)
    net.set_spacing(torch.tensor([[2.0, 2.0, 3.0], [2.0, 2.0, 3.0]]))
    out = net(x)
    assert torch.allclose(out[0, 2, 0, 0, 1] - out[0, 2, 0, 0, 0], torch.tensor(0.03))  # 3 mm in units of 100 mm
    assert torch.allclose(out.mean(dim=(2, 3, 4)), torch.zeros(1, 3), atol=1e-6)  # centred on the patch
    with pytest.raises(ValueError, match="mixed voxel spacings"):
        net.set_spacing(torch.tensor([[2.0, 2.0, 3.0], [1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="trained at spacing"):
        net.set_spacing(torch.tensor([1.0, 1.0, 1.0]))
    # whole volume at half the spacing: resampled to the net's spacing and back, same shape, still metric
    volume = torch.randn(1, 1, 64, 60, 48)
    coords = volume_coordinates(net, volume, torch.tensor([1.0, 1.0, 1.5]))
    assert coords.shape == (1, 3, 64, 60, 48)
    step_x = (coords[0, 0, 31] - coords[0, 0, 30]).median()
    assert abs(float(step_x) - 0.01) < 2e-3


def test_coordinate_loss_positive_for_shuffled_map():
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(16 ** 3, generator=g)
    shuffle = lambda m: m.flatten(2)[:, :, perm].reshape(m.shape)  # noqa: E731
    losses = coordinate_losses(shuffle(_perfect(OFF_A)), shuffle(_perfect(OFF_B)), OFF_A, OFF_B, SPACING)
    assert losses["distance"].item() > 0.01 and losses["invariance"].item() > 0.01
    assert distance_correlation(_perfect(OFF_A)[0], SPACING[0]) > 0.999
    assert abs(distance_correlation(shuffle(_perfect(OFF_A))[0], SPACING[0])) < 0.2


def test_crops_overlap_and_match_offsets():
    images = torch.arange(2 * 40 ** 3, dtype=torch.float32).view(2, 1, 40, 40, 40)
    a, b, oa, ob = random_crop_pair(images, 32)
    assert a.shape == (2, 1, 32, 32, 32) and int(a[1, 0, 0, 0, 0]) == int(images[1, 0, oa[1, 0], oa[1, 1], oa[1, 2]])


def test_coordinate_model_trains_and_predicts_nifti(tmp_path):
    dm = tiny_datamodule(phantoms=3, patch=32, batch_size=1)
    model = AnatomicalCoordinateModel(features=TINY_FEATURES, crop_size=32, num_points=64, sw_overlap=0.0, predict_dir=str(tmp_path / "maps"))
    trainer = quiet_trainer(max_steps=2, limit_val_batches=1)
    trainer.fit(model, dm)
    assert model.net.spacing_mm.tolist() == [10.0, 10.0, 10.0]  # recorded from the training data
    trainer.validate(model, dm, verbose=False)
    assert len(model.last_distance_r) == 1 and -1.0 <= model.last_distance_r[0] <= 1.0
    paths = trainer.predict(model, dm)
    out = Path(paths[0][0])
    assert out.is_file() and out.name.endswith("_coords.nii.gz")
    assert not list(out.parent.glob(".tmp-*"))
    image = tio.ScalarImage(out)
    assert image.shape[0] == 3 and np.allclose(image.spacing, (10.0, 10.0, 10.0))


def test_slice_score_losses_and_step():
    ordered = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    reversed_ = ordered.flip(1)
    assert slice_score_losses(ordered)["distance"].item() == 0.0
    assert slice_score_losses(reversed_)["order"] > slice_score_losses(ordered)["order"]
    model = SliceScoreRegressor(channels=(4, 8), num_slices=4, slice_gap=4)
    loss = model.training_step({"image": torch.randn(2, 1, 32, 32, 32)}, 0)
    loss.backward()
    assert model.score_volume(torch.randn(1, 1, 32, 32, 20)).shape == (20,)
