"""The one checkpoint reader (weights_only): missing, truncated, foreign and state-less files are DataErrors
naming the file; both halves read through it."""

import pickle
from pathlib import Path

import pytest
import torch

from anatomy_pretrain.checkpoints import read_checkpoint as anatomy_read_checkpoint
from anatomy_pretrain.volume_io import VolumeError
from unisegdiff.data.errors import DataError as DataLayerError
from unisegdiff.io import DataError, read_checkpoint
from unisegdiff.models.checkpoints import load_module_weights


def _lightning(path: Path) -> Path:
    torch.save({"state_dict": {"net.weight": torch.ones(2, 3)}, "hyper_parameters": {"features": [4, 8]}}, path)
    return path


def test_reads_state_and_hyper_parameters(tmp_path: Path):
    ckpt = read_checkpoint(_lightning(tmp_path / "a.ckpt"))
    assert torch.equal(ckpt["state_dict"]["net.weight"], torch.ones(2, 3)) and ckpt["hyper_parameters"] == {"features": [4, 8]}
    torch.save({"weight": torch.zeros(1)}, tmp_path / "bare.pt")
    assert read_checkpoint(tmp_path / "bare.pt") == {"state_dict": {"weight": torch.zeros(1)}, "hyper_parameters": {}, "global_step": None}


def test_errors_name_the_file(tmp_path: Path):
    with pytest.raises(DataError, match=r"missing\.ckpt: checkpoint file does not exist; train the previous stage"):
        read_checkpoint(tmp_path / "missing.ckpt")
    whole = _lightning(tmp_path / "whole.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.ckpt: cannot be read as a weights-only torch checkpoint"):
        read_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"epoch": 3}, tmp_path / "stateless.ckpt")
    with pytest.raises(DataError, match=r"stateless\.ckpt: checkpoint holds no state_dict"):
        read_checkpoint(tmp_path / "stateless.ckpt")


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_objects_are_refused(tmp_path: Path, capsys):
    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(DataError, match=r"evil\.ckpt: cannot be read as a weights-only"):
        read_checkpoint(tmp_path / "evil.ckpt")
    assert "code ran" not in capsys.readouterr().out


def test_both_halves_use_the_one_reader_and_error_type(tmp_path: Path):
    assert anatomy_read_checkpoint is read_checkpoint
    assert VolumeError is DataError and DataLayerError is DataError
    with pytest.raises(DataError, match=r"a\.ckpt: checkpoint has no weights under prefix 'encoder\.'"):
        load_module_weights(torch.nn.Linear(3, 2), str(_lightning(tmp_path / "a.ckpt")), prefix="encoder.")
    module = load_module_weights(torch.nn.Linear(3, 2, bias=False), str(tmp_path / "a.ckpt"), prefix="net.")
    assert torch.equal(module.weight, torch.ones(2, 3))
