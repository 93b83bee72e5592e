"""The guidance-gap report: runs pair by position, and the criterion is read over pretraining runs (probe seeds
averaged first), so probe-seed repeats of one pretraining run do not count as independent evidence."""

import json

import pytest


def _result(guided: list[float], unguided: list[float], probe_seeds: int = 2, pretrain_seeds: int = 3) -> dict:
    runs = lambda values: {"nonlinear": {"runs": values, "mean": sum(values) / len(values)}}  # noqa: E731
    return {"settings": {"seeds": list(range(probe_seeds)), "pretrain_seeds": list(range(pretrain_seeds)), "folds": 1, "pretrain_target": "v"},
            "probes": {"diffusion + anatomy guidance": runs(guided), "diffusion": runs(unguided)}}


def test_gap_over_pretraining_runs_averages_probe_seeds_first(bench_script):
    gap = bench_script("anatomy_guidance_gap")
    # pretraining runs 0.70/0.60, 0.72/0.61, 0.74/0.62 (each the mean of two probe seeds)
    guided = [0.69, 0.71, 0.71, 0.73, 0.73, 0.75]
    unguided = [0.60, 0.60, 0.61, 0.61, 0.62, 0.62]
    row = gap.gap_rows(_result(guided, unguided))[0]
    assert row["n"] == 6 and row["pretraining"]["n"] == 3
    q = row["pretraining"]
    assert q["guided"] == pytest.approx(0.72) and q["unguided"] == pytest.approx(0.61) and q["gap"] == pytest.approx(0.11)
    assert q["guided_std"] == pytest.approx(0.02) and q["gap_in_stds"] == pytest.approx(0.11 / 0.02)
    assert q["ci_low"] < 0.11 < q["ci_high"]


def test_runs_that_do_not_split_into_probe_seed_groups_are_refused(bench_script):
    gap = bench_script("anatomy_guidance_gap")
    with pytest.raises(ValueError, match=r"5 runs are not 1 fold\(s\) x 3 pretraining seed\(s\) x 2 probe seed\(s\)"):
        gap.gap_rows(_result([0.7] * 5, [0.6] * 5))
    with pytest.raises(ValueError, match="they must pair one to one"):
        gap.gap_rows(_result([0.7] * 6, [0.6] * 4))


def test_report_marks_the_criterion(tmp_path, bench_script, capsys):
    gap = bench_script("anatomy_guidance_gap")
    met, noisy = tmp_path / "met" / "anatomy.json", tmp_path / "noisy.json"
    met.parent.mkdir()
    met.write_text(json.dumps(_result([0.69, 0.71, 0.71, 0.73, 0.73, 0.75], [0.60, 0.60, 0.61, 0.61, 0.62, 0.62])))
    noisy.write_text(json.dumps(_result([0.70, 0.70, 0.60, 0.60, 0.66, 0.66], [0.64, 0.64, 0.65, 0.65, 0.66, 0.66])))
    assert gap.main([str(met), str(noisy)]) == 0
    out = capsys.readouterr().out
    assert "| met/anatomy.json | v | FiLM, 3 freq | 3 | nonlinear |" in out and out.count("| met |") == 1 and "| not met |" in out
    assert gap.main([str(tmp_path / "absent.json")]) == 2


def test_folds_average_into_their_pretraining_seed(bench_script):
    """Two folds x two pretraining seeds x two probe seeds: two values, not four (folds are not pretraining runs)."""
    gap = bench_script("anatomy_guidance_gap")
    # fold 0: seed 0 (0.70, 0.72), seed 1 (0.60, 0.62); fold 1: seed 0 (0.74, 0.76), seed 1 (0.64, 0.66)
    runs = [0.70, 0.72, 0.60, 0.62, 0.74, 0.76, 0.64, 0.66]
    assert gap.by_pretraining_run(runs, 2, 2, 2) == pytest.approx([0.73, 0.63])


def test_zero_guide_control_pairs_with_its_result_file(tmp_path, bench_script, capsys):
    gap = bench_script("anatomy_guidance_gap")
    result = _result([0.69, 0.71, 0.71, 0.73, 0.73, 0.75], [0.60, 0.60, 0.61, 0.61, 0.62, 0.62])
    control = {"settings": {**result["settings"], "probe_guide": "zeros"},
               "probes": {"diffusion + anatomy guidance": {"nonlinear": {"runs": [0.50, 0.52, 0.51, 0.53, 0.52, 0.54]}}}}
    row = gap.control_rows(result, control)[0]
    assert row["guided_vs_control"]["gap"] == pytest.approx(0.72 - 0.52) and row["control_vs_unguided"]["gap"] == pytest.approx(0.52 - 0.61)
    with pytest.raises(ValueError, match="not a --probe-guide zeros or head run"):
        gap.control_rows(result, {**control, "settings": result["settings"]})
    with pytest.raises(ValueError, match=r"other \['pretrain_seeds'\]"):
        gap.control_rows(result, {**control, "settings": {**control["settings"], "pretrain_seeds": [0]}})
    main, ctl = tmp_path / "main.json", tmp_path / "zero" / "anatomy.json"
    ctl.parent.mkdir()
    main.write_text(json.dumps(result))
    ctl.write_text(json.dumps(control))
    assert gap.main([str(main), "--control", str(ctl)]) == 0
    assert "| nonlinear | 0.720 +- 0.020 | 0.520 +- 0.010 | 0.610 +- 0.010 | +20.0 [" in capsys.readouterr().out


def test_each_control_pairs_with_the_result_of_its_guidance_settings(tmp_path, bench_script, capsys):
    """Two result files differing only in guidance dropout: each zero-guide control finds its own, and the tables name
    the guidance; a control matching none of them is refused with the reason."""
    gap = bench_script("anatomy_guidance_gap")
    plain = _result([0.69, 0.71, 0.71, 0.73, 0.73, 0.75], [0.60, 0.60, 0.61, 0.61, 0.62, 0.62])
    dropped = {**plain, "settings": {**plain["settings"], "guidance_dropout": 0.3}}
    zero = lambda settings, runs: {"settings": {**settings, "probe_guide": "zeros"},  # noqa: E731
                                   "probes": {"diffusion + anatomy guidance": {"nonlinear": {"runs": runs}}}}
    files = {}
    for name, body in {"plain.json": plain, "dropped.json": dropped,
                       "plain_zero.json": zero(plain["settings"], [0.50] * 6),
                       "dropped_zero.json": zero(dropped["settings"], [0.70] * 6)}.items():
        files[name] = tmp_path / name
        files[name].write_text(json.dumps(body))
    assert gap.main([str(files["plain.json"]), str(files["dropped.json"]), "--control", str(files["dropped_zero.json"]),
                     "--control", str(files["plain_zero.json"])]) == 0
    out = capsys.readouterr().out
    assert "| plain.json | v | FiLM, 3 freq | 3 x 2 x 1 fold |" in out and "| dropped.json | v | FiLM, 3 freq, dropout 0.3 | 3 |" in out
    assert "on the checkpoints of dropped.json, guidance FiLM, 3 freq, dropout 0.3" in out
    assert "| nonlinear | 0.720 +- 0.020 | 0.700 +- 0.000 | 0.610 +- 0.010 | +2.0 [" in out
    assert "| nonlinear | 0.720 +- 0.020 | 0.500 +- 0.000 | 0.610 +- 0.010 | +22.0 [" in out
    assert gap.main([str(files["plain.json"]), "--control", str(files["dropped_zero.json"])]) == 2
    assert "pairs with none of the result files" in capsys.readouterr().err
    assert gap.main([str(files["plain.json"]), "--control", str(files["plain.json"])]) == 2
    assert "is not a --probe-guide zeros or head run" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"other \['guidance_dropout'\]"):
        gap.control_rows(plain, zero(dropped["settings"], [0.7] * 6))
    assert gap.guidance_label({"guidance": "input", "guidance_frequencies": 5, "guidance_levels": [3, 4]}) == "input, 5 freq, levels 3 4"


def test_control_pairing_checks_every_pretraining_setting_and_fails_before_printing(tmp_path, bench_script, capsys):
    """A control of other pretraining settings (not only the design keys) is refused; two indistinguishable result files
    are named; a zero-guide file never pairs with itself; levels in another order, or all five, read as the same;
    bad files fail with a message and print no half report."""
    gap = bench_script("anatomy_guidance_gap")
    plain = _result([0.69, 0.71, 0.71, 0.73, 0.73, 0.75], [0.60, 0.60, 0.61, 0.61, 0.62, 0.62])
    plain["settings"].update({"pretrain_decorrelation": 1.0, "arms": ["diffusion", "guided"], "guidance_levels": [4, 3]})
    zero = {"settings": {**plain["settings"], "probe_guide": "zeros", "arms": ["guided"], "guidance_levels": [3, 4]},
            "probes": {"diffusion + anatomy guidance": {"nonlinear": {"runs": [0.5] * 6}}}}
    assert gap.control_differences(plain, zero) == []
    assert gap.guidance_settings({"guidance_levels": [4, 3, 2, 1, 0]})["guidance_levels"] is None
    assert gap.control_differences(plain, {**zero, "settings": {**zero["settings"], "pretrain_decorrelation": 0.0}}) == ["pretrain_decorrelation"]
    paths = {}
    for name, body in {"a.json": plain, "b.json": plain, "zero.json": zero}.items():
        paths[name] = tmp_path / name
        paths[name].write_text(json.dumps(body))
    (tmp_path / "broken.json").write_text("{not json")
    assert gap.main([str(paths["a.json"]), str(paths["b.json"]), "--control", str(paths["zero.json"])]) == 2
    captured = capsys.readouterr()
    assert "pairs with 2 result files" in captured.err and captured.out == ""
    assert gap.main([str(paths["a.json"]), str(paths["zero.json"]), "--control", str(paths["zero.json"])]) == 0
    assert "on the checkpoints of a.json" in capsys.readouterr().out
    assert gap.main([str(tmp_path / "broken.json")]) == 2
    captured = capsys.readouterr()
    assert "broken.json is not JSON" in captured.err and captured.out == ""
    short = _result([0.7] * 5, [0.6] * 5)
    paths["short.json"] = tmp_path / "short.json"
    paths["short.json"].write_text(json.dumps(short))
    assert gap.main([str(paths["a.json"]), str(paths["short.json"])]) == 2
    captured = capsys.readouterr()
    assert "5 runs are not" in captured.err and captured.out == ""


def test_coordinates_in_the_head_control_compares_the_unguided_arm(tmp_path, bench_script, capsys):
    """--probe-guide head: the control's unguided arm (coordinates in its head) against the guided arm and plain
    unguided diffusion, over pretraining seeds."""
    gap = bench_script("anatomy_guidance_gap")
    result = _result([0.69, 0.71, 0.71, 0.73, 0.73, 0.75], [0.60, 0.60, 0.61, 0.61, 0.62, 0.62])
    head = {"settings": {**result["settings"], "probe_guide": "head", "arms": ["diffusion"]},
            "probes": {"diffusion": {"nonlinear": {"runs": [0.70, 0.70, 0.71, 0.71, 0.72, 0.72]}}}}
    row = gap.control_rows(result, head)[0]
    assert row["guided_vs_control"]["gap"] == pytest.approx(0.72 - 0.71)
    assert row["control_vs_unguided"]["gap"] == pytest.approx(0.71 - 0.61)
    res, ctl = tmp_path / "result.json", tmp_path / "head.json"
    res.write_text(json.dumps(result))
    ctl.write_text(json.dumps(head))
    assert gap.main([str(res), "--control", str(ctl)]) == 0
    out = capsys.readouterr().out
    assert "Coordinates-in-the-head control (head.json on the checkpoints of result.json" in out
    assert "| probe | guided, coordinates | unguided, coordinates in the head | unguided |" in out
    assert "| nonlinear | 0.720 +- 0.020 | 0.710 +- 0.010 | 0.610 +- 0.010 | +1.0 [" in out
