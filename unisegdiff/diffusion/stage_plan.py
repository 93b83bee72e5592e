"""StagePlan: an ordered partition of the timesteps [0, T) into stages with their own target.

Each stage names its prediction target (x0 / eps / v), its loss terms and weight, and the
number of sampling steps it gets at inference. Invalid plans are rejected with a message
naming the offending stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unisegdiff.diffusion.parameterization import TARGETS

# mse: on the stage's own target; dice / bce: on the implied x0 read as a probability map
LOSS_TERMS = ("mse", "dice", "bce")


@dataclass(frozen=True)
class Stage:
    """One stage: timesteps ``[start, end)`` predicted as ``target`` and sampled in ``steps`` calls."""

    name: str
    start: int
    end: int
    target: str
    loss: dict[str, float] = field(default_factory=lambda: {"mse": 1.0})
    weight: float = 1.0
    steps: int = 1

    def timesteps(self) -> list[int]:
        """Descending inference timesteps of this stage, evenly spaced and anchored at ``end - 1``."""
        span = self.end - self.start
        return [self.end - 1 - (i * span) // self.steps for i in range(self.steps)]


class StagePlan:
    """Validated partition of [0, num_timesteps) into :class:`Stage` objects (sorted by start)."""

    def __init__(self, stages: list[Stage | dict], num_timesteps: int = 1000):
        if num_timesteps < 1:
            raise ValueError(f"StagePlan: num_timesteps must be >= 1, got {num_timesteps}")
        if not stages:
            raise ValueError("StagePlan: needs at least one stage covering [0, num_timesteps)")
        parsed = [s if isinstance(s, Stage) else _stage_from_dict(s, i) for i, s in enumerate(stages)]
        for stage in parsed:
            _validate_stage(stage)
        names = [s.name for s in parsed]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"StagePlan: stage names must be unique, repeated: {dupes}")
        ordered = sorted(parsed, key=lambda s: s.start)
        _validate_cover(ordered, num_timesteps)
        if sum(s.steps for s in ordered) < 1:
            raise ValueError("StagePlan: at least one stage must have steps >= 1, or inference cannot run")
        self.stages: tuple[Stage, ...] = tuple(ordered)
        self.num_timesteps = num_timesteps
        self._ends = {torch.device("cpu"): torch.tensor([s.end for s in ordered], dtype=torch.long)}

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.name}[{s.start},{s.end})->{s.target}x{s.steps}" for s in self.stages)
        return f"StagePlan(T={self.num_timesteps}: {parts})"

    def stage_index(self, t: torch.Tensor) -> torch.Tensor:
        """Index (into ``stages``) of the stage holding each timestep in ``t``, computed on ``t``'s device."""
        ends = self._ends.get(t.device)
        if ends is None:  # one copy of the stage ends per device, not one host-device transfer per call
            ends = self._ends[t.device] = self._ends[torch.device("cpu")].to(t.device)
        return torch.bucketize(t.long(), ends, right=True)

    def stage_at(self, t: int) -> Stage:
        """The stage holding the scalar timestep ``t``."""
        if not 0 <= int(t) < self.num_timesteps:
            raise ValueError(f"timestep {t} outside [0, {self.num_timesteps})")
        return self.stages[int(self.stage_index(torch.tensor([int(t)]))[0])]

    def target_at(self, t: int) -> str:
        """Prediction target of the stage holding ``t`` (a callable usable by the samplers)."""
        return self.stage_at(t).target

    def inference_timesteps(self) -> list[int]:
        """All inference timesteps, descending, from the last stage to the first."""
        return [t for stage in reversed(self.stages) for t in stage.timesteps()]

    @property
    def network_calls(self) -> int:
        return sum(s.steps for s in self.stages)

    def with_boundaries(self, boundaries: list[int]) -> "StagePlan":
        """The same stages with new inner boundaries (ascending, one fewer than stages), e.g. [200, 600]."""
        if len(boundaries) != len(self.stages) - 1:
            raise ValueError(f"stage_boundaries needs {len(self.stages) - 1} values for {len(self.stages)} stages, got {boundaries}")
        edges = [0, *boundaries, self.num_timesteps]
        if any(a >= b for a, b in zip(edges, edges[1:])):
            raise ValueError(f"stage_boundaries must be strictly ascending inside (0, {self.num_timesteps}), got {boundaries}")
        return StagePlan([{**spec, "start": a, "end": b} for spec, a, b in zip(self.to_dict(), edges, edges[1:])], self.num_timesteps)

    def with_steps(self, steps: list[int]) -> "StagePlan":
        """The same stages with new inference step counts, one per stage in ascending-t order."""
        if len(steps) != len(self.stages):
            raise ValueError(f"per-stage sampling steps need {len(self.stages)} values (one per stage, ascending t), got {steps}")
        return StagePlan([{**spec, "steps": int(n)} for spec, n in zip(self.to_dict(), steps)], self.num_timesteps)

    def to_dict(self) -> list[dict]:
        return [dict(name=s.name, start=s.start, end=s.end, target=s.target, loss=dict(s.loss), weight=s.weight, steps=s.steps) for s in self.stages]


def _stage_from_dict(spec: dict, index: int) -> Stage:
    allowed = {"name", "start", "end", "target", "loss", "weight", "steps"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(f"StagePlan: stage #{index} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = {"start", "end", "target"} - set(spec)
    if missing:
        raise ValueError(f"StagePlan: stage #{index} ({spec.get('name', 'unnamed')}) is missing {sorted(missing)}")
    spec = dict(spec)
    spec.setdefault("name", f"stage{index}")
    loss = spec.get("loss", {"mse": 1.0})
    if isinstance(loss, (list, tuple)):
        loss = {k: 1.0 for k in loss}
    elif isinstance(loss, str):
        loss = {k.strip(): 1.0 for k in loss.split("+")}
    where = f"StagePlan: stage #{index} ({spec['name']})"
    for key in ("start", "end", "steps"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], int)):
            raise ValueError(f"{where}: {key} must be an integer timestep count, got {spec[key]!r}")
    if "weight" in spec and (isinstance(spec["weight"], bool) or not isinstance(spec["weight"], (int, float))):
        raise ValueError(f"{where}: weight must be a number, got {spec['weight']!r}")
    try:
        spec["loss"] = {str(k): float(v) for k, v in dict(loss).items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: loss must map terms {LOSS_TERMS} to numbers, got {loss!r}") from exc
    return Stage(**spec)


def _validate_stage(s: Stage) -> None:
    where = f"StagePlan: stage {s.name!r} [{s.start}, {s.end})"
    if s.target not in TARGETS:
        raise ValueError(f"{where} has unknown target {s.target!r}; choose one of {TARGETS}")
    if s.start >= s.end:
        raise ValueError(f"{where} is empty: start must be < end")
    unknown = sorted(set(s.loss) - set(LOSS_TERMS))
    if unknown:
        raise ValueError(f"{where} has unknown loss terms {unknown}; choose from {LOSS_TERMS}")
    if not s.loss or any(w < 0 for w in s.loss.values()) or sum(s.loss.values()) <= 0:
        raise ValueError(f"{where} needs loss weights >= 0 with a positive sum, got {s.loss}")
    if not s.weight > 0:
        raise ValueError(f"{where} has weight {s.weight}; stage weights must be > 0")
    if s.steps < 0 or s.steps > s.end - s.start:
        raise ValueError(f"{where} asks for {s.steps} inference steps but its interval holds {s.end - s.start} timesteps; use 0..{s.end - s.start}")


def _validate_cover(ordered: list[Stage], num_timesteps: int) -> None:
    if ordered[0].start != 0:
        raise ValueError(f"StagePlan: gap before stage {ordered[0].name!r}: timesteps [0, {ordered[0].start}) belong to no stage")
    for prev, nxt in zip(ordered, ordered[1:]):
        if nxt.start > prev.end:
            raise ValueError(f"StagePlan: gap between stage {prev.name!r} (ends {prev.end}) and stage {nxt.name!r} (starts {nxt.start}): timesteps [{prev.end}, {nxt.start}) belong to no stage")
        if nxt.start < prev.end:
            raise ValueError(f"StagePlan: stage {nxt.name!r} [{nxt.start}, {nxt.end}) overlaps stage {prev.name!r} [{prev.start}, {prev.end})")
    last = ordered[-1]
    if last.end != num_timesteps:
        what = "gap after" if last.end < num_timesteps else "runs past T in"
        raise ValueError(f"StagePlan: {what} stage {last.name!r}: it ends at {last.end} but the plan covers [0, {num_timesteps})")
