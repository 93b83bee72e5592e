"""Every anatomy-pretraining config parses with ``unisegdiff fit --print_config`` and selects this half's classes;
the console script resolves them too (full module paths, independent of how the package is installed)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unisegdiff.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "anatomy_pretrain").glob("*.yaml"))
CHAIN = {"coordinates.yaml", "diffusion_pretrain.yaml", "diffusion_unguided.yaml", "restorative.yaml", "probe.yaml",
         "probe_linear.yaml", "probe_random.yaml", "finetune.yaml", "slice_score.yaml", "hippocampus_probe.yaml"}


def test_every_stage_has_a_config():
    assert CHAIN <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("anatomy_pretrain.")
    assert printed["data"]["class_path"] == "anatomy_pretrain.volume_data.VolumeDataModule"
    assert printed["trainer"]["use_distributed_sampler"] is False


@pytest.mark.slow
def test_console_script_parses_a_config():
    script = Path(sys.executable).parent / "unisegdiff"
    if not script.exists():
        pytest.skip("unisegdiff console script not installed in this environment")
    out = subprocess.run([str(script), "fit", "--config", str(CONFIGS[0]), "--print_config"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
