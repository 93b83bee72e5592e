"""Bench profiles of the anatomy half, read from the YAML files in configs/benchmark/anatomy/ (recipes are data).
One reader for every anatomy bench: a named profile or a YAML file of one profile's keys, checked against its key set.
A top-level name starting with ``_`` is a shared block (a YAML anchor merged into profiles with ``<<:``), not a profile."""

from __future__ import annotations

from pathlib import Path

import yaml

# optional in every pretraining profile (the guided arm's guidance, see bench/bench_anatomy.py: guided_args)
# their values when a profile leaves them out (guidance_levels None: FiLM on every encoder level)
GUIDANCE_DEFAULTS = {"guidance": "film", "guidance_frequencies": 3, "guidance_dropout": 0.0, "guidance_levels": None}
GUIDANCE_KEYS = frozenset(GUIDANCE_DEFAULTS)


def load_profile(name: str, path: Path, required: set[str] | frozenset[str], optional: set[str] | frozenset[str] = frozenset()) -> dict:
    """Profile ``name`` of the YAML file ``path`` (``name`` ending in .yaml/.yml: that file holds one profile's keys).

    Every key of ``required`` must be there and no key outside ``required | optional``; lists become tuples. Errors
    are ``SystemExit`` messages naming the profile, the file and the keys at fault."""
    if str(name).endswith((".yaml", ".yml")):
        path, name = Path(name), None
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"--profile: {path} does not exist")
    try:
        profiles = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SystemExit(f"--profile: {path} is not valid YAML ({error})") from error
    names = _profiles(profiles)
    p = profiles if name is None else profiles.get(name) if isinstance(profiles, dict) and name in names else None
    if not isinstance(p, dict):
        if name is None:
            raise SystemExit(f"--profile {path}: expected a mapping of one profile's keys, got {type(profiles).__name__}")
        raise SystemExit(f"--profile {name!r}: not a profile of {path} (profiles: {names})")
    missing, unknown = sorted(set(required) - set(p)), sorted(set(p) - set(required) - set(optional))
    if missing or unknown:
        raise SystemExit(f"--profile {name or path}: missing keys {missing}, unknown keys {unknown} (see {path})")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in p.items()}


def profile_names(path: Path) -> list[str]:
    """The profile names of a profiles file (for --help and error messages)."""
    try:
        profiles = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"--profile: cannot read the profiles of {path} ({error})") from error
    return _profiles(profiles)


def _profiles(profiles) -> list[str]:
    """The profile names of a loaded profiles file: its top-level names, less the ``_`` shared blocks."""
    return sorted(k for k in profiles if not str(k).startswith("_")) if isinstance(profiles, dict) else []
