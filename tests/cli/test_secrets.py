"""Secrets never reach a file the project writes: redaction by key and by value pattern (``unisegdiff.secrets``),
and a fit run's config.yaml, run_record.json and W&B offline files checked for the secret strings."""

import json
from pathlib import Path

import yaml

from unisegdiff.cli import main
from unisegdiff.secrets import is_secret_key, redact

HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
GH = "ghp_0123456789abcdefABCDEFGHIJKLMNOPqrst"
OPENAI = "sk-proj-ABCDEFGHIJKLMNOPQRSTUV123456"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payloadsignature"
WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"
PASSWORD = "hunter2-correct-horse"
BY_KEY = "plain-looking-value-9f8e7d"  # no pattern: only its key (hf_token) marks it as a secret
SECRETS = (HF, GH, OPENAI, BEARER, WANDB_KEY, PASSWORD, BY_KEY)


def test_redact_by_key_and_by_value_pattern():
    config = {"notes": f"hf_token={BY_KEY} and {GH}", "model": {"lr": 0.1, "max_tokens": 5, "tokenizer": "bpe"},
              "hf_token": BY_KEY, "apiKey": BY_KEY, "settings": {"api_key": WANDB_KEY, "credentials_file": "/home/u/.netrc"},
              "tags": [OPENAI, f"Bearer {BEARER}", "plain"], "url": f"https://bob:{PASSWORD}@host/x", "text": f"password: {PASSWORD}",
              "key": WANDB_KEY, "git_commit": WANDB_KEY, "empty_token": None}
    out = redact(config)
    text = json.dumps(out)
    for secret in SECRETS:
        if secret != WANDB_KEY:
            assert secret not in text, secret
    assert out["git_commit"] == WANDB_KEY and out["key"] == "***"  # a commit id stays, a bare 40-hex key goes
    assert out["notes"] == "hf_token=*** and ***" and out["tags"] == ["***", "Bearer ***", "plain"]
    assert out["url"] == "https://bob:***@host/x" and out["text"] == "password: ***"
    assert out["model"] == config["model"] and out["settings"]["credentials_file"] == "/home/u/.netrc"
    assert out["empty_token"] is None and config["hf_token"] == BY_KEY  # nothing to hide; the input is not changed
    assert [k for k in ("api_key", "WANDB_API_KEY", "apiKey", "hf_token", "password", "max_tokens", "tokenizer", "author", "token_file")
            if is_secret_key(k)] == ["api_key", "WANDB_API_KEY", "apiKey", "hf_token", "password"]


def _fit(tmp_path, logger_args: dict) -> int:
    config = {"trainer": {"max_steps": 1, "limit_val_batches": 0, "num_sanity_val_steps": 0, "enable_progress_bar": False,
                          "default_root_dir": str(tmp_path / "run"),
                          "logger": [{"class_path": "lightning.pytorch.loggers.WandbLogger",
                                      "init_args": {"project": "p", "save_dir": str(tmp_path / "run"), **logger_args}}]},
              "model": {"class_path": "unisegdiff.models.DeterministicSegmenter", "init_args": {"features": [4, 8, 8, 16, 16, 4]}},
              "data": {"class_path": "unisegdiff.data.LesionDataModule",
                       "init_args": {"datasets": ["phantom_ct"], "image_size": 32, "batch_size": 2, "num_workers": 0, "phantom_samples": 6,
                                     "augment": False}}}
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["fit", "--config", str(path)])


def test_fit_writes_no_secret_into_config_run_record_or_wandb_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)  # the way to give W&B its key: must not be written either
    monkeypatch.chdir(tmp_path)
    notes = f"see hf_token={HF}, Bearer {BEARER}, password={PASSWORD}, {GH}"
    assert _fit(tmp_path, {"notes": notes, "tags": [OPENAI], "config": {"hf_token": BY_KEY, "lr_note": f"token: {HF}"}}) == 0
    assert "notes holds a secret-looking value" in capsys.readouterr().err
    run = tmp_path / "run"
    written = [p for p in run.rglob("*") if p.is_file() and p.suffix != ".ckpt"]
    assert {"config.yaml", "run_record.json"} <= {p.name for p in written}
    wandb_files = [p.name for p in written if "wandb" in p.parts]
    assert any(name.endswith(".wandb") for name in wandb_files) and "debug.log" in wandb_files, wandb_files
    for path in written:
        data = path.read_bytes()
        leaked = [s for s in SECRETS if s.encode() in data]
        assert not leaked, f"{path.relative_to(run)} holds {leaked}"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    logger = saved["trainer"]["logger"][0]["init_args"]
    assert logger["notes"] == "see hf_token=***, Bearer ***, password=***, ***" and logger["config"]["hf_token"] == "***"
    record = json.loads((run / "run_record.json").read_text())
    assert record["git_commit"] is None or len(record["git_commit"]) == 40  # a commit id is not taken for a W&B key


def test_a_credential_in_logger_settings_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    assert _fit(tmp_path, {"settings": {"api_key": WANDB_KEY}}) == 2
    err = capsys.readouterr().err
    assert "trainer.logger[0].init_args.settings.api_key" in err and "WANDB_API_KEY" in err and WANDB_KEY not in err
    assert not (tmp_path / "run").exists() or not [p for p in Path(tmp_path / "run").rglob("*") if p.is_file()]
