"""What a benchmark run trained with, in one spelling: the key a result file is reused or refused by.
Recipe names and profile overrides are dropped (the composed model section holds them) and every omitted model argument takes its default."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any


def import_class(class_path: str) -> type:
    """The class a config's ``class_path`` names; ImportError / AttributeError / ValueError when there is none."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def model_with_defaults(section: dict[str, Any]) -> dict[str, Any]:
    """``{class_path, init_args}`` with every argument the recipe left out set to the class's default, so two
    configs that build the same model (one spelling a default out, one omitting it) compare equal."""
    try:
        cls = import_class(section["class_path"])
    except (ImportError, AttributeError, ValueError):  # a class renamed since: compared as stored (it then differs, with the clear error)
        return json.loads(json.dumps(section))
    args = dict(section.get("init_args") or {})
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and param.default is not param.empty:
            args.setdefault(param.name, param.default)
    return json.loads(json.dumps({"class_path": section["class_path"], "init_args": args}))


def comparable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A result file's ``settings`` reduced to what determines the run: the profile without ``recipes`` (names of
    config files) and ``model_overrides`` (both already composed into ``model``), the model with its defaults (as
    the file recorded them in ``model_resolved``, else as the class has them today)."""
    s = json.loads(json.dumps(settings))
    profile = s.get("profile") or {}
    # the method's own recipe names go (its composed model holds them); the condition recipe's name stays, the only
    # record of it in files written before recipe contents were recorded
    profile["recipes"] = {k: v for k, v in (profile.get("recipes") or {}).items() if k == "condition"}
    profile.pop("model_overrides", None)
    # files record their model with the defaults of the day (``model_resolved``): a class default changed since then
    # makes them differ, while an argument added since takes its default (it did not exist, so the run had its old
    # behaviour); older files lack it and are filled in with today's defaults
    resolved = s.pop("model_resolved", None)
    if s.get("model"):
        s["model"] = model_with_defaults(resolved or s["model"])
    return s
