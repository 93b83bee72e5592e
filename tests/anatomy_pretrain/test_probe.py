"""Probing: heads train on frozen features (backbone unchanged after a fit), fine-tuning changes the backbone,
sliding-window evaluation gives per-class Dice."""

import pytest
import torch

from anatomy_pretrain.coordinate_embedding import coordinate_embedding, guide_from_batch
from anatomy_pretrain.coordinate_model import AnatomicalCoordinateModel
from anatomy_pretrain.heads import make_head
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
from anatomy_pretrain.probe import SegmentationProbe
from anatomy_pretrain.tiny import TINY_FEATURES, quiet_trainer, save_module_checkpoint, tiny_datamodule


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    coordinates = AnatomicalCoordinateModel(features=TINY_FEATURES)
    coordinates.net.set_spacing(torch.tensor([10.0, 10.0, 10.0]))  # as after training on the tiny data
    pre = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film")
    return str(save_module_checkpoint(coordinates, root / "coords.ckpt")), str(save_module_checkpoint(pre, root / "pre.ckpt"))


@pytest.fixture(scope="module")
def guided_ckpt(ckpts):
    return ckpts[1]


@pytest.fixture(scope="module")
def data(ckpts):
    dm = tiny_datamodule(phantoms=3, train_on="labelled", coordinate_ckpt=ckpts[0])
    dm.setup("fit")
    return dm


def test_probe_trains_head_on_frozen_backbone(guided_ckpt, data):
    probe = SegmentationProbe(num_classes=16, pretrainer_ckpt=guided_ckpt, head="nonlinear", head_width=4, sw_overlap=0.0)
    backbone = {k: v.clone() for k, v in probe.net.state_dict().items()}
    head_before = {k: v.clone() for k, v in probe.head.state_dict().items()}
    trainer = quiet_trainer(max_steps=2, limit_val_batches=1)
    trainer.fit(probe, data)
    trainer.validate(probe, data, verbose=False)
    assert all(torch.equal(backbone[k], v) for k, v in probe.net.state_dict().items())  # incl. norm statistics
    assert any(not torch.equal(head_before[k], v) for k, v in probe.head.state_dict().items())
    assert set(probe.last_dice) >= {"class_1", "mean"} and 0.0 <= probe.last_dice["mean"] <= 1.0


def test_linear_head_steps_leave_frozen_backbone_unchanged(guided_ckpt):
    probe = SegmentationProbe(num_classes=4, pretrainer_ckpt=guided_ckpt, head="linear").train()
    backbone = {k: v.clone() for k, v in probe.net.state_dict().items()}
    opt = probe.configure_optimizers()
    batch = {"image": torch.rand(1, 1, 32, 32, 32) * 2 - 1, "label": torch.randint(0, 4, (1, 1, 32, 32, 32)),
             "coords": torch.randn(1, 3, 32, 32, 32)}
    for _ in range(2):
        opt.zero_grad()
        probe.training_step(batch, 0).backward()
        opt.step()
    assert all(torch.equal(backbone[k], v) for k, v in probe.net.state_dict().items())
    assert all(p.grad is None for p in probe.net.parameters()) and probe.head.levels[0].weight.grad is not None


def test_finetune_changes_backbone(data):
    probe = SegmentationProbe(num_classes=16, features=TINY_FEATURES, finetune=True, head_width=4)
    before = probe.net.conv_0.conv_0.conv.weight.detach().clone()
    quiet_trainer(max_steps=2, limit_val_batches=0).fit(probe, data)
    assert not torch.equal(before, probe.net.conv_0.conv_0.conv.weight)


def test_segment_whole_volume_shape(data, guided_ckpt):
    probe = SegmentationProbe(num_classes=16, features=TINY_FEATURES, head="linear")
    subject = data.held_out_subjects[0]
    volume, coords = subject["image"].data[None], subject["coords"].data[None]
    assert coords.shape == (1, 3, *volume.shape[2:])
    assert probe.segment(volume).shape == (1, 1, *volume.shape[2:])
    guided = SegmentationProbe(num_classes=16, pretrainer_ckpt=guided_ckpt, head="linear")
    assert guided.segment(volume, coords).shape == (1, 1, *volume.shape[2:])
    with pytest.raises(ValueError, match="coordinate_ckpt"):
        guided.segment(volume)


def test_patches_carry_the_coordinates_of_their_voxels(data):
    batch = next(iter(data.train_dataloader()))
    assert batch["coords"].shape == (batch["image"].shape[0], 3, *batch["image"].shape[2:])
    subjects = {s["name"]: s for s in data.train_subjects}
    for coords, loc, name in zip(batch["coords"], batch["location"], batch["name"]):
        i0, j0, k0, i1, j1, k1 = loc.tolist()
        whole = subjects[name]["coords"].data
        assert torch.equal(coords, whole[:, i0:i1, j0:j1, k0:k1])


@pytest.mark.parametrize("fuse_level", [0, 1, 2])
def test_nonlinear_head_gives_full_resolution_logits(fuse_level):
    channels = (4, 4, 8, 16, 32)
    feats = [torch.randn(1, c, 32 // 2 ** i, 32 // 2 ** i, 32 // 2 ** i) for i, c in enumerate(channels)]
    head = make_head("nonlinear", channels, 5, width=4, fuse_level=fuse_level)
    assert head(feats).shape == (1, 5, 32, 32, 32)
    with pytest.raises(ValueError, match="fuse_level"):
        make_head("nonlinear", channels, 5, fuse_level=5)


def test_a_class_absent_from_every_held_out_volume_has_no_dice_and_stays_out_of_the_mean(monkeypatch):
    """MONAI's mean_batch aggregate turns an all-empty class into Dice 0; the probe must report it as missing (NaN) and
    average only the classes some held-out volume holds."""
    from monai.networks.utils import one_hot

    probe = SegmentationProbe(num_classes=4, features=TINY_FEATURES, head="linear", class_names=["a", "b", "c"])
    probe.log_dict = lambda *args, **kwargs: None  # no trainer attached
    truth = torch.zeros(2, 1, 4, 4, 4, dtype=torch.long)
    truth[0, 0, :2] = 1  # volume 0: class a; volume 1: class a and b; class c in neither
    truth[1, 0, :2], truth[1, 0, 2:] = 1, 2
    pred = truth.clone()
    pred[1, 0, 2:] = 3  # volume 1: b missed (Dice 0), c predicted where there is none
    probe.dice(one_hot(pred, 4), one_hot(truth, 4))
    probe._eval_epoch_end("val")
    assert probe.last_dice["a"] == pytest.approx(1.0) and probe.last_dice["b"] == pytest.approx(0.0)
    assert probe.last_dice["c"] != probe.last_dice["c"]  # NaN: no held-out volume has class c
    assert probe.last_dice["mean"] == pytest.approx(0.5)  # (a + b) / 2, not (a + b + 0) / 3


def test_zero_probe_guide_hides_the_coordinates_from_a_guided_backbone(guided_ckpt):
    """probe_guide='zeros' is the control for coordinates handed to the probe: the output no longer depends on them,
    and equals the backbone fed a zero guide; with the default the coordinates change the output."""
    torch.manual_seed(0)
    image, a, b = torch.randn(1, 1, 32, 32, 32), torch.rand(1, 3, 32, 32, 32), torch.rand(1, 3, 32, 32, 32) * 5
    probes = {}
    for mode in ("coords", "zeros"):
        torch.manual_seed(1)  # the same head initialization
        probes[mode] = SegmentationProbe(num_classes=4, pretrainer_ckpt=guided_ckpt, features=TINY_FEATURES, head="linear",
                                         probe_guide=mode).eval()
    with torch.no_grad():
        for p in probes["coords"].net.parameters():  # FiLM may start as the identity: make the guide matter
            p.add_(0.1 * torch.randn_like(p))
        probes["zeros"].net.load_state_dict(probes["coords"].net.state_dict())
        zeros = probes["zeros"]
        assert torch.equal(zeros(image, a), zeros(image, b))
        assert not torch.allclose(probes["coords"](image, a), probes["coords"](image, b))
        guide = guide_from_batch({"coords": a}, zeros.guidance, zeros.num_frequencies)
        assert torch.equal(zeros(image, a), zeros.head(zeros.net.encode(image, torch.zeros_like(guide))))
    with pytest.raises(ValueError, match="probe_guide must be 'coords', 'zeros' or 'head'"):
        SegmentationProbe(num_classes=4, features=TINY_FEATURES, probe_guide="shuffled")


def test_head_probe_guide_hands_the_coordinates_to_the_head_of_any_backbone(guided_ckpt):
    """probe_guide='head': an unguided backbone's probe sees position through its head (the output depends on the
    coordinates, the backbone's features do not), a guided backbone gets a zero guide; the coordinates are required."""
    torch.manual_seed(0)
    image, a, b = torch.randn(1, 1, 32, 32, 32), torch.rand(1, 3, 32, 32, 32), torch.rand(1, 3, 32, 32, 32) * 5
    for kind in ("linear", "nonlinear"):
        plain = SegmentationProbe(num_classes=4, features=TINY_FEATURES, head=kind, head_width=4, probe_guide="head").eval()
        assert plain.guidance == "none"
        with torch.no_grad():
            out = plain(image, a)
            assert out.shape == (1, 4, 32, 32, 32)
            assert not torch.allclose(out, plain(image, b))
        with pytest.raises(ValueError, match="probe_guide='head' hands the coordinates to the head"):
            plain(image)
    guided = SegmentationProbe(num_classes=4, pretrainer_ckpt=guided_ckpt, features=TINY_FEATURES, head="linear", probe_guide="head").eval()
    with torch.no_grad():
        for p in guided.net.parameters():  # FiLM may start as the identity: make a guide matter if one reached it
            p.add_(0.1 * torch.randn_like(p))
        guide = guide_from_batch({"coords": a}, guided.guidance, guided.num_frequencies)
        feats = guided.net.encode(image, torch.zeros_like(guide))
        assert torch.allclose(guided(image, a), guided.head([*feats, coordinate_embedding(a, guided.num_frequencies)]))
