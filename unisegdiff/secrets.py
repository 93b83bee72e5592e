"""Secrets never written: redaction by key name and by value pattern for every config and run record the
project writes (config.yaml, predict_config.yaml, run_record.json, predict_record.json, logger hyperparameters).
"""

from __future__ import annotations

import re
from typing import Any

from unisegdiff.io import DataError

MASK = "***"
# a key naming a credential: one of these words as a whole part of the name (hf_token, WANDB_API_KEY, apiKey; not max_tokens)
SECRET_KEY = re.compile(r"(?:^|[^a-z0-9])(api[_-]?key|token|secret|secret[_-]?key|password|passwd|pwd|credentials?|"
                        r"private[_-]?key|access[_-]?key|auth|authorization)(?:$|[^a-z0-9])")
# a secret inside a value; group 1 (when present) is kept, the rest becomes MASK
SECRET_VALUES = [
    re.compile(r"(?i)\b([\w.-]*(?:api[_-]?key|token|secret|passw(?:or)?d|pwd)\s*[=:]\s*[\"']?)[^\s\"',;&]+"),  # token=..., password: ...
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"),  # HTTP authorization header
    re.compile(r"(://[^/\s:@]+:)[^/\s@]+(?=@)"),  # credentials in a URL
    re.compile(r"\b(?:hf|ghp|gho|ghs|ghu|ghr|github_pat|glpat|xox[abp])_[A-Za-z0-9_]{16,}"),  # Hugging Face, GitHub, GitLab, Slack
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI-style keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"(?<![0-9A-Fa-f])[0-9a-f]{40}(?![0-9A-Fa-f])"),  # W&B API key (40 hex digits)
]
HASH_KEYS = ("git_commit", "commit")  # 40 hex digits are a commit id here, not a W&B key
LOCATION_SUFFIXES = ("_file", "_path", "_dir", "_url")  # credentials_file names where a secret is, not the secret


def is_secret_key(key: object) -> bool:
    """Whether a config key names a credential (``api_key``, ``hf_token``, ``WANDB_API_KEY``, ``apiKey``)."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower()
    return SECRET_KEY.search(name) is not None and not name.endswith(LOCATION_SUFFIXES)


def redact_text(text: str, hashes_allowed: bool = False) -> str:
    """``text`` with every secret-looking token replaced by ``***``."""
    for pattern in SECRET_VALUES[:-1] if hashes_allowed else SECRET_VALUES:
        text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + MASK, text)
    return text


def redact(value: Any, key: object = None) -> Any:
    """A copy of a nested config (dicts, lists, strings) with values under secret keys and secret-looking
    tokens inside strings replaced by ``***``; other values are returned as they are."""
    if isinstance(value, dict):
        return {k: MASK if is_secret_key(k) and v not in (None, "") else redact(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, key) for v in value)
    if isinstance(value, str):
        return redact_text(value, hashes_allowed=str(key) in HASH_KEYS)
    return value


def secret_keys(value: Any, where: str = "") -> list[str]:
    """Dotted paths of the non-empty values under secret keys in a nested config."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{where}.{k}" if where else str(k)
            found += [path] if is_secret_key(k) and v not in (None, "") else secret_keys(v, path)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found += secret_keys(v, f"{where}[{i}]")
    return found


def refuse_logger_credentials(init_args: dict, where: str) -> None:
    """A logger's own settings may not carry a credential (``api_key``, ``settings.api_key``): the logger writes
    them into its run files (W&B: ``run-*.wandb``, ``debug.log``). Free-form ``config`` data is redacted instead."""
    found = secret_keys({k: v for k, v in init_args.items() if k != "config"}, where)
    if found:
        raise DataError(", ".join(found), "a credential in the logger settings would be saved with the run (config.yaml, W&B run files)",
                        "remove it from the config and the command line; give W&B its key as the environment variable "
                        "WANDB_API_KEY (or run `wandb login`)")
