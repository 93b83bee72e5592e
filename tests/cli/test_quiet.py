"""Known-harmless third-party messages are hidden at the entry point (unisegdiff.quiet), narrowly: by message and
module, so another warning of the same module, or any other, still shows."""

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

from unisegdiff import quiet

ROOT = Path(__file__).resolve().parents[2]
# what each filtered message looks like in a fit's output without the filters
HIDDEN = ("💡 Tip: For seamless cloud logging", "isinstance(treespec, LeafSpec)", "always_return_as_numpy",
          "The anonymous setting has no effect", "module(s) in eval mode", "LightningCLI's args parameter")
TINY_STAGED = ["--config", str(ROOT / "configs/unisegdiff/demo.yaml"), "--model.init_args.condition_ckpt", "null",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
               "--data.init_args.phantom_samples", "6", "--data.init_args.image_size", "32", "--model.init_args.num_samples", "2",
               "--model.init_args.condition_features", "[4, 8, 8, 16, 16, 4]", "--model.init_args.denoiser_channels", "[4, 8, 8, 16]"]


def _warn(message, category, module):
    warnings.warn_explicit(message, category, f"/site-packages/{module.replace('.', '/')}.py", 1, module=module)


def test_filters_match_message_and_module_only():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.install(wandb=False)
        _warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", UserWarning, "lightning.pytorch.utilities._pytree")
        _warn("monai.metrics.utils get_mask_edges:always_return_as_numpy: Argument ...", FutureWarning, "monai.utils.deprecate_utils")
        _warn("Found 139 module(s) in eval mode at the start of training. ...", UserWarning, "lightning.pytorch.loops.fit_loop")
        assert not caught
        _warn("The number of training batches (2) is smaller than the logging interval", UserWarning, "lightning.pytorch.loops.fit_loop")
        _warn("Found 139 module(s) in eval mode at the start of training. ...", UserWarning, "my_package.training")
        _warn("some other deprecation", FutureWarning, "monai.utils.deprecate_utils")
        assert [str(w.message)[:24] for w in caught] == ["The number of training b", "Found 139 module(s) in e", "some other deprecation"]


def test_lightning_tip_is_dropped_by_message_only():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(quiet.LIGHTNING_INFO_LOGGER)
    logger.addHandler(handler)
    try:
        quiet.install(wandb=False)
        logger.warning("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
        logger.warning("GPU available: False")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["GPU available: False"]


def test_a_real_fit_shows_none_of_them_but_other_warnings(tmp_path):
    """The whole CLI in a subprocess with W&B offline (as `make demo`): the staged model with its frozen condition
    network, validation with HD95 (MONAI), a WandbLogger; the logging-interval warning is unrelated and stays."""
    result = subprocess.run([sys.executable, "-m", "unisegdiff", "fit", *TINY_STAGED], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"}, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert [h for h in HIDDEN if h in output] == []
    assert "is smaller than the logging interval" in output  # another warning of lightning's fit loop
    assert "validation Dice at step 2 of 2: macro" in output  # FitFeedback's line at fit end
