"""Tests of StagePlan: lookup, inference timesteps and one distinct error per invalid plan."""

import pytest
import torch

from unisegdiff.diffusion import Stage, StagePlan


def _default():
    return [
        dict(name="segment", start=600, end=1000, target="x0", loss={"dice": 1, "bce": 1}, steps=1),
        dict(name="model", start=200, end=600, target="v", loss="mse", steps=4),
        dict(name="refine", start=0, end=200, target="x0", loss="dice+bce+mse", steps=5),
    ]


def test_lookup_and_timesteps():
    plan = StagePlan(_default(), 1000)
    assert [s.name for s in plan.stages] == ["refine", "model", "segment"]
    idx = plan.stage_index(torch.tensor([0, 199, 200, 599, 600, 999]))
    assert idx.tolist() == [0, 0, 1, 1, 2, 2]
    assert plan.target_at(650) == "x0" and plan.target_at(300) == "v"
    assert plan.network_calls == 10
    assert plan.inference_timesteps() == [999, 599, 499, 399, 299, 199, 159, 119, 79, 39]
    assert plan.stage_at(0).loss == {"dice": 1.0, "bce": 1.0, "mse": 1.0}
    assert StagePlan(plan.to_dict(), 1000).to_dict() == plan.to_dict()


def test_single_stage_plans():
    eps = StagePlan([Stage("all", 0, 1000, "eps", {"mse": 1.0}, steps=50)], 1000)
    assert eps.network_calls == 50 and eps.inference_timesteps()[:2] == [999, 979]


@pytest.mark.parametrize("mutate, message", [
    (lambda st: st[1].update(start=250), r"gap between stage 'refine' \(ends 200\) and stage 'model' \(starts 250\)"),
    (lambda st: st[1].update(start=150), r"stage 'model' \[150, 600\) overlaps stage 'refine' \[0, 200\)"),
    (lambda st: st[2].update(start=10), r"gap before stage 'refine': timesteps \[0, 10\)"),
    (lambda st: st[0].update(end=900), r"gap after stage 'segment': it ends at 900"),
    (lambda st: st[0].update(end=1200), r"runs past T in stage 'segment'"),
    (lambda st: st[1].update(target="score"), r"stage 'model' \[200, 600\) has unknown target 'score'"),
    (lambda st: st[2].update(steps=300), r"stage 'refine' \[0, 200\) asks for 300 inference steps but its interval holds 200"),
    (lambda st: st[2].update(steps=-1), r"stage 'refine' \[0, 200\) asks for -1 inference steps"),
    (lambda st: st[0].update(loss={"hinge": 1}), r"stage 'segment' \[600, 1000\) has unknown loss terms \['hinge'\]"),
    (lambda st: st[0].update(weight=0), r"stage 'segment' \[600, 1000\) has weight 0"),
    (lambda st: st[1].update(start=600), r"stage 'model' \[600, 600\) is empty"),
    (lambda st: st[1].update(name="refine"), r"stage names must be unique, repeated: \['refine'\]"),
    (lambda st: st[1].update(speed=3), r"stage #1 has unknown keys \['speed'\]"),
    (lambda st: st[1].pop("target"), r"stage #1 \(model\) is missing \['target'\]"),
    (lambda st: [s.update(steps=0) for s in st], r"at least one stage must have steps >= 1"),
])
def test_invalid_plans_each_have_their_own_message(mutate, message):
    stages = _default()
    mutate(stages)
    with pytest.raises(ValueError, match=message):
        StagePlan(stages, 1000)


def test_empty_plan_rejected():
    with pytest.raises(ValueError, match="needs at least one stage"):
        StagePlan([], 1000)


def test_boundaries_and_steps_give_new_plans():
    plan = StagePlan(_default(), 1000)
    moved = plan.with_boundaries([100, 500])
    assert [(s.name, s.start, s.end) for s in moved.stages] == [("refine", 0, 100), ("model", 100, 500), ("segment", 500, 1000)]
    assert [(s.start, s.end) for s in plan.stages] == [(0, 200), (200, 600), (600, 1000)]  # unchanged
    assert [s.steps for s in plan.with_steps([2, 3, 1]).stages] == [2, 3, 1]
    with pytest.raises(ValueError, match="stage_boundaries needs 2 values"):
        plan.with_boundaries([100])
    with pytest.raises(ValueError, match=r"strictly ascending inside \(0, 1000\), got \[600, 500\]"):
        plan.with_boundaries([600, 500])
    with pytest.raises(ValueError, match="need 3 values"):
        plan.with_steps([1])


@pytest.mark.parametrize("field, value, message", [
    ("start", "six hundred", r"stage #0 \(segment\): start must be an integer timestep count, got 'six hundred'"),
    ("steps", 1.5, r"steps must be an integer"),
    ("weight", "heavy", r"weight must be a number, got 'heavy'"),
    ("loss", {"dice": "lots"}, r"loss must map terms"),
])
def test_wrong_field_types_name_the_stage_and_field(field, value, message):
    stages = _default()
    stages[0][field] = value
    with pytest.raises(ValueError, match=message):
        StagePlan(stages, 1000)
