"""Benchmark profiles (configs/benchmark/<name>.yaml): the budget, seeds and methods of a comparison;
the models themselves come from the recipes in configs/unisegdiff/, composed with the profile's overrides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

METHODS = ("unet", "staged", "eps", "unet_walltime")
DIFFUSION_METHODS = ("staged", "eps")
# the benchmark's `staged` row is the paper's frozen two-phase plan (staged.yaml with its two-phase overlay, as a user
# composes them on the command line); the end-to-end default of staged.yaml alone is the `joint_e2e` variant
DEFAULT_RECIPES = {"unet": "unisegdiff/unet", "condition": "unisegdiff/condition",
                   "staged": ["unisegdiff/staged", "unisegdiff/staged_two_phase"], "eps": "unisegdiff/eps_only"}


def _config_list(value: Any) -> bool:
    """A non-empty list of config names: what a recipe key or a variant's ``configs`` holds."""
    return isinstance(value, list) and bool(value) and all(isinstance(c, str) and c for c in value)


@dataclass
class BenchProfile:
    """One comparison at equal compute.

    ``budget_steps`` optimizer steps at ``batch_size`` go to every method: the U-Net trains them all; the
    diffusion methods spend ``phase1_fraction`` of them on the condition network (phase 1, shared by staged
    and eps of one seed) and the rest on the denoiser. ``unet_walltime`` trains the U-Net for the staged
    model's measured train wall time instead. Every seed trains on the same split (``split_seed``).

    ``variants`` adds methods for ablations: ``{name: {recipe: staged|eps|unet, configs: [...], overrides: {...},
    phase1_fraction: f}}`` (``configs`` replaces the recipe's config files, e.g. ``[unisegdiff/staged]`` for the
    shipped default alone; overrides over their init_args; phase1_fraction 0 trains the condition network inside
    phase 2 from scratch, which needs ``freeze_condition: false``).
    """

    image_size: int = 128
    batch_size: int = 8
    num_workers: int = 2
    budget_steps: int = 600
    phase1_fraction: float = 0.5
    seeds: list[int] = field(default_factory=lambda: [0])
    methods: list[str] = field(default_factory=lambda: ["unet", "staged", "eps"])
    lr: float = 2e-3  # every model, so optimizer settings are equal too
    num_samples: int = 2  # K samples per image for the diffusion methods
    recipes: dict[str, str | list[str]] = field(default_factory=lambda: dict(DEFAULT_RECIPES))  # key -> config(s), merged in order
    data_recipe: str = "data/lesion2d"
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> init_args over its recipe
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # ablation methods, see the class docstring
    # extra inference settings scored on every trained diffusion model, every seed:
    # {name: {sampling_steps: int | [per stage] | null, sampler: ddim|ddpm, num_samples: K, guidance_scale: s,
    #         condition_weight: w (the condition network's probability fused in with weight w),
    #         methods: [the methods it applies to; default all diffusion methods]}}
    inference_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_per_dataset: int | None = None
    split_seed: int = 0
    eval_batch_size: int = 16
    ddpm_subset_per_dataset: int = 1  # eps DDPM-1000 vs staged, side by side, on this many test images per dataset
    speed_min_seconds: float = 20.0  # the staged side-by-side pass repeats until this much time was measured
    profile_points: int = 12
    precision: str = "32-true"  # Lightning precision for training; inference runs under the matching autocast
    deterministic: bool = False  # fp32 and deterministic algorithms: two same-seed runs give identical numbers
    min_images: int = 30  # the headline macro averages only datasets with at least this many test images
    # k >= 2: every dataset with fewer than min_images test images is also scored by k-fold cross-validation (k more
    # trainings per method and seed, each testing on one fold of those sets); 0: off (the CPU profiles)
    small_set_folds: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.small_set_folds, bool) or not isinstance(self.small_set_folds, int) or self.small_set_folds == 1 \
                or self.small_set_folds < 0:
            raise ValueError(f"benchmark profile: small_set_folds must be 0 (off) or an integer >= 2, got {self.small_set_folds!r}")
        for name, spec in self.variants.items():
            bad = set(spec) - {"recipe", "configs", "overrides", "phase1_fraction"}
            if name in METHODS or bad or spec.get("recipe") not in ("unet", *DIFFUSION_METHODS) \
                    or ("configs" in spec and not _config_list(spec["configs"])):
                raise ValueError(f"benchmark profile: variant {name!r} needs a new name, a recipe among unet/staged/eps, optionally "
                                 f"configs (a non-empty list of config names replacing the recipe's) and only the keys "
                                 f"recipe/configs/overrides/phase1_fraction, got {spec}")
            if not 0 <= spec.get("phase1_fraction", 0.5) < 1:
                raise ValueError(f"benchmark profile: variant {name!r} phase1_fraction must lie in [0, 1)")
        for name, spec in self.inference_variants.items():
            if set(spec) - {"sampling_steps", "sampler", "num_samples", "guidance_scale", "condition_weight", "methods"}:
                raise ValueError(f"benchmark profile: inference variant {name!r} takes sampling_steps/sampler/num_samples/"
                                 f"guidance_scale/condition_weight/methods, got {spec}")
        stray = sorted(set(self.model_overrides) - set(METHODS) - set(self.variants))
        if stray:
            raise ValueError(f"benchmark profile: model_overrides for unknown methods {stray}; methods: {list(METHODS)} and variants")
        unknown = sorted(set(self.methods) - set(METHODS) - set(self.variants))
        if unknown:
            raise ValueError(f"benchmark profile: unknown methods {unknown}; choose from {METHODS} or define them under variants")
        if "unet_walltime" in self.methods and "staged" not in self.methods:
            raise ValueError("benchmark profile: unet_walltime needs the staged method (it trains for the staged model's wall time)")
        if self.budget_steps < 2 or not 0 < self.phase1_fraction < 1:
            raise ValueError(f"benchmark profile: budget_steps must be >= 2 and phase1_fraction in (0, 1), got {self.budget_steps}, {self.phase1_fraction}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"benchmark profile: seeds must be a non-empty list of distinct integers, got {self.seeds}")
        missing = sorted(set(DEFAULT_RECIPES) - set(self.recipes))
        if missing:
            raise ValueError(f"benchmark profile: recipes lacks {missing}")
        bad = {k: v for k, v in self.recipes.items() if not _config_list([v] if isinstance(v, str) else v)}
        if bad:
            raise ValueError(f"benchmark profile: recipes maps a key to a config name or a list of them (merged in order), got {bad}")
        if self.deterministic:
            self.precision = "32-true"

    @property
    def phase1_steps(self) -> int:
        return max(1, round(self.budget_steps * self.phase1_fraction))

    @property
    def phase2_steps(self) -> int:
        return self.budget_steps - self.phase1_steps

    def recipe_files(self, key: str) -> list[str]:
        """The config(s) of a recipe key, in the order they are merged (as several ``--config`` on the command line)."""
        value = self.recipes[key]
        return [value] if isinstance(value, str) else list(value)

    def configs_of(self, method: str) -> list[str]:
        """The config(s) a method's model is composed from: a variant's own ``configs``, else its recipe's."""
        spec = self.variants.get(method, {})
        return list(spec["configs"]) if "configs" in spec else self.recipe_files(self.recipe_of(method))

    def recipe_of(self, method: str) -> str:
        """The recipe key (unet / staged / eps) a method is built from."""
        return self.variants[method]["recipe"] if method in self.variants else {"unet_walltime": "unet"}.get(method, method)

    def overrides_of(self, method: str) -> dict[str, Any]:
        """init_args over the method's recipe: unet_walltime trains the unet's model, a variant adds its own overrides."""
        base = self.model_overrides.get("unet", {}) if method == "unet_walltime" else {}
        return {**base, **self.model_overrides.get(method, {}), **self.variants.get(method, {}).get("overrides", {})}

    def phase1_steps_of(self, method: str) -> int:
        """Phase-1 steps of a diffusion method (0: none, the condition network trains inside phase 2)."""
        if method in self.variants and "phase1_fraction" in self.variants[method]:
            return round(self.budget_steps * self.variants[method]["phase1_fraction"])
        return self.phase1_steps

    @classmethod
    def from_yaml(cls, path: str | Path) -> "BenchProfile":
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"benchmark profile {path}: unknown keys {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
