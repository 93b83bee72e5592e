"""The guidance-variant driver: variants are read from the config and checked, each becomes one bench_anatomy.py run,
guidance-only variants share the unguided arm's checkpoints, and finished variants are skipped on a rerun."""

import json
import subprocess
from pathlib import Path

import pytest


def test_the_shipped_variants_file_is_valid_and_maps_to_bench_arguments(bench_script, tmp_path):
    drv = bench_script("bench_anatomy_guidance_variants")
    base, variants = drv.load_variants()
    assert {"film", "dropout30", "input", "long"} <= set(variants)
    args = drv.bench_args(base, variants["deep_levels"], tmp_path / "w", tmp_path / "o")
    assert args[args.index("--guidance-levels") + 1:args.index("--guidance-levels") + 3] == ["3", "4"]
    assert args[args.index("--profile") + 1] == "quick" and "--reuse" in args
    assert drv.bench_args(base, variants["long"], tmp_path, tmp_path)[1] == "quick_long"
    assert "--guidance-dropout" in drv.bench_args(base, variants["dropout30"], tmp_path, tmp_path)


@pytest.mark.parametrize("text, message", [
    ("variants: {}\n", "expected the mappings 'base' and 'variants'"),
    ("base: {profile: quick}\nvariants: {}\n", "base must have the keys"),
    ("base: {profile: quick, pretrain_target: v, pretrain_seeds: [0]}\nvariants: {a: {lr: 1}}\n", "variant 'a' may set only"),
])
def test_bad_variant_files_are_refused_naming_the_fault(bench_script, tmp_path, text, message):
    drv = bench_script("bench_anatomy_guidance_variants")
    path = tmp_path / "v.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit, match=message):
        drv.load_variants(path)


def _result(path, arms_runs: int, probe_seeds: int = 2):
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = {"nonlinear": {"runs": [0.6] * arms_runs}}
    path.write_text(json.dumps({"settings": {"seeds": list(range(probe_seeds))},
                                "probes": {"diffusion": runs, "diffusion + anatomy guidance": runs}}))


def test_runs_share_the_unguided_arm_and_skip_finished_variants(bench_script, tmp_path, monkeypatch):
    drv = bench_script("bench_anatomy_guidance_variants")
    config = tmp_path / "variants.yaml"
    config.write_text("base: {profile: quick, pretrain_target: v, pretrain_seeds: [0, 1]}\n"
                      "variants: {a: {}, b: {guidance_dropout: 0.3}, c: {profile: quick_long}, d: {guidance: input}}\n")
    work, out = tmp_path / "work", tmp_path / "out"
    _result(out / "d" / "anatomy.json", 4)  # finished: 2 pretraining x 2 probe seeds
    _result(out / "b" / "anatomy.json", 2)  # interrupted: runs again
    calls = []

    def fake_run(cmd, check=True, **kwargs):
        if cmd[1].endswith("bench_anatomy.py"):
            w = cmd[cmd.index("--work") + 1]
            calls.append((w, sorted(str(p.relative_to(w)) for p in Path(w).rglob("*.ckpt"))))
            for d in drv.seed_dirs(Path(w), [0, 1]):  # what the run leaves behind
                d.mkdir(parents=True, exist_ok=True)
                (d / "pretrain_diffusion.ckpt").write_text(w)
            (Path(w) / "fold0" / "coordinates.ckpt").write_text(w)
            _result(Path(cmd[cmd.index("--out") + 1]) / "anatomy.json", 4)
            return subprocess.CompletedProcess(cmd, 0)
        return subprocess.CompletedProcess(cmd, 0, stdout="| gap table |\n")

    monkeypatch.setattr(drv.subprocess, "run", fake_run)
    assert drv.main(["--config", str(config), "--work", str(work), "--out", str(out)]) == 0
    ran = [c[0].rsplit("/", 1)[1] for c in calls]
    assert ran == ["a", "b", "c"]  # d was complete
    assert calls[0][1] == []  # the first trains the unguided arm itself
    assert calls[1][1] == ["fold0/coordinates.ckpt", "fold0/pretrain_diffusion.ckpt",
                           "fold0/pretrain_seed1/pretrain_diffusion.ckpt"]  # b reuses a's
    assert calls[2][1] == []  # another profile trains its own
    assert (work / "b" / "fold0" / "pretrain_diffusion.ckpt").read_text() == str(work / "b")  # the run's own, after the copy
    assert "| gap table |" in (out / "summary.md").read_text()
    with pytest.raises(SystemExit, match=r"--variants \['zz'\]: not in"):
        drv.main(["--config", str(config), "--variants", "zz"])
    with pytest.raises(SystemExit, match="no fold0/ there"):
        drv.main(["--config", str(config), "--seed-from", str(tmp_path / "nowhere")])


def test_sharing_never_overwrites_a_variants_own_checkpoints(bench_script, tmp_path):
    drv = bench_script("bench_anatomy_guidance_variants")
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in drv.seed_dirs(src, [0, 2]):
        d.mkdir(parents=True)
        (d / "pretrain_diffusion.ckpt").write_text("src")
        (d / "pretrain_diffusion_and_anatomy_guidance.ckpt").write_text("src guided")
    (src / "fold0" / "coordinates.ckpt").write_text("src")
    (dst / "fold0").mkdir(parents=True)
    (dst / "fold0" / "pretrain_diffusion.ckpt").write_text("own")
    assert drv.share_unguided(src, dst, [0, 2]) == ["fold0/coordinates.ckpt", "fold0/pretrain_seed2/pretrain_diffusion.ckpt"]
    assert (dst / "fold0" / "pretrain_diffusion.ckpt").read_text() == "own"
    assert not (dst / "fold0" / "pretrain_diffusion_and_anatomy_guidance.ckpt").exists()  # the guided arm is never shared


def _full_result(path, rows: dict, **settings):
    """A bench_anatomy.py-shaped result file: ``rows`` maps a result row to its non-linear runs."""
    st = {"phantoms": 16, "folds": 1, "seeds": [0, 1], "pretrain_seeds": [0, 1], "pretrain_steps": 1200, "features": [8, 16],
          "pretrain_max_timestep": 600, "pretrain_skip_dropout": 0.0, "pretrain_decorrelation": 1.0, "pretrain_target": "v",
          "probe_steps": 1000, "linear_steps": 400, "low_label_cases": 2, "low_label_steps": 600, "finetune_steps": 600,
          "columns": ["nonlinear"], "arms": ["guided"], **settings}
    probes = {row: {"nonlinear": {"mean": sum(r) / len(r), "std": 0.01, "runs": r, "per_class": {}, "sec_per_step": 0.1}}
              for row, r in rows.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profile": "quick", "settings": st, "probes": probes, "wall_s": 10.0, "device": "cpu",
                                "coordinates": {"distance_r_mean": 0.957, "steps": 1000, "sec_per_step": 0.2}}))
    return path


def test_a_guided_only_run_borrows_the_unguided_arm_of_its_reference(bench_script, tmp_path):
    drv = bench_script("bench_anatomy_guidance_variants")
    ref = _full_result(tmp_path / "ref" / "anatomy.json", {"diffusion": [0.66, 0.65, 0.64, 0.67],
                       "diffusion + anatomy guidance": [0.7] * 4}, arms=["diffusion", "guided"])
    res = _full_result(tmp_path / "out" / "anatomy.json", {"diffusion + anatomy guidance": [0.71, 0.7, 0.69, 0.72]},
                       guidance="input")
    merged = drv.import_unguided(res, ref)
    on_disk = json.loads(res.read_text())
    assert on_disk == merged and list(merged["probes"]) == ["diffusion", "diffusion + anatomy guidance"]
    assert merged["probes"]["diffusion"]["nonlinear"]["runs"] == [0.66, 0.65, 0.64, 0.67]
    assert merged["probes"]["diffusion + anatomy guidance"]["nonlinear"]["runs"] == [0.71, 0.7, 0.69, 0.72]  # its own
    assert merged["settings"]["arms"] == ["diffusion", "guided"] and merged["settings"]["guidance"] == "input"
    assert merged["unguided_from"]["file"] == str(ref) and drv.complete(res, [0, 1])
    assert f"come from {ref}" in (tmp_path / "out" / "anatomy.md").read_text()


@pytest.mark.parametrize("ref_settings, ref_arms, edit, message", [
    ({"pretrain_steps": 2400}, {"diffusion": [0.6] * 4}, {}, r"differ .* in pretrain_steps \(2400 there, 1200 here\)"),
    ({}, {"diffusion": [0.6] * 2}, {}, r"unguided \('diffusion'\) non-linear arm has 2 of the 4 runs"),
    ({}, {"diffusion + anatomy guidance": [0.6] * 4}, {}, "has 0 of the 4 runs"),
    ({}, {"diffusion": [0.6] * 4}, {"device": "cuda"}, "probed on 'cuda', this run on 'cpu'"),
    ({}, {"diffusion": [0.6] * 4}, {"coordinates": {"distance_r_mean": 0.9}}, "another coordinate model"),
])
def test_a_reference_of_other_settings_or_incomplete_is_refused(bench_script, tmp_path, ref_settings, ref_arms, edit, message):
    drv = bench_script("bench_anatomy_guidance_variants")
    ref = _full_result(tmp_path / "ref.json", ref_arms, **ref_settings)
    ref.write_text(json.dumps({**json.loads(ref.read_text()), **edit}))
    res = _full_result(tmp_path / "out" / "anatomy.json", {"diffusion + anatomy guidance": [0.7] * 4})
    before = res.read_text()
    with pytest.raises(SystemExit, match=message):
        drv.import_unguided(res, ref)
    assert res.read_text() == before  # nothing written on a refusal


def test_with_unguided_from_guidance_only_variants_run_the_guided_arm_only(bench_script, tmp_path, monkeypatch):
    drv = bench_script("bench_anatomy_guidance_variants")
    config = tmp_path / "variants.yaml"
    config.write_text("base: {profile: quick, pretrain_target: v, pretrain_seeds: [0, 1]}\n"
                      "variants: {b: {guidance: input}, c: {profile: quick_long}}\n")
    seed = tmp_path / "seed"
    (seed / "fold0").mkdir(parents=True)
    ref = _full_result(tmp_path / "ref.json", {"diffusion": [0.6] * 4}, arms=["diffusion", "guided"])
    calls = []

    def fake_run(cmd, check=True, **kwargs):
        if cmd[1].endswith("bench_anatomy.py"):
            arms = cmd[cmd.index("--arms") + 1:cmd.index("--skip-hippocampus")]
            calls.append(arms)
            rows = {drv.ARMS[a]: [0.7] * 4 for a in arms}
            _full_result(Path(cmd[cmd.index("--out") + 1]) / "anatomy.json", rows, arms=arms,
                         **({"pretrain_steps": 2400} if "quick_long" in cmd else {}))
            return subprocess.CompletedProcess(cmd, 0)
        return subprocess.CompletedProcess(cmd, 0, stdout="| gap table |\n")

    monkeypatch.setattr(drv.subprocess, "run", fake_run)
    argv = ["--config", str(config), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--seed-from", str(seed)]
    assert drv.main(argv + ["--unguided-from", str(ref)]) == 0
    assert calls == [["guided"], ["diffusion", "guided"]]  # another profile still trains its own unguided arm
    assert json.loads((tmp_path / "o" / "b" / "anatomy.json").read_text())["unguided_from"]["file"] == str(ref)
    assert "unguided_from" not in json.loads((tmp_path / "o" / "c" / "anatomy.json").read_text())
    with pytest.raises(SystemExit, match="needs --seed-from"):
        drv.main(["--config", str(config), "--unguided-from", str(ref)])


def test_run_counts_include_folds(bench_script, tmp_path):
    drv = bench_script("bench_anatomy_guidance_variants")
    runs = [0.6] * 16  # 4 folds x 2 pretraining seeds x 2 probe seeds
    ref = _full_result(tmp_path / "ref.json", {"diffusion": runs}, folds=4)
    res = _full_result(tmp_path / "out" / "anatomy.json", {"diffusion + anatomy guidance": runs}, folds=4)
    assert drv.complete(res, [0, 1], ("guided",)) and not drv.complete(res, [0, 1])
    drv.import_unguided(res, ref)
    assert drv.complete(res, [0, 1])


def test_an_interrupted_borrow_imports_without_running_again(bench_script, tmp_path, monkeypatch):
    drv = bench_script("bench_anatomy_guidance_variants")
    config = tmp_path / "variants.yaml"
    config.write_text("base: {profile: quick, pretrain_target: v, pretrain_seeds: [0, 1]}\nvariants: {b: {guidance: input}}\n")
    (tmp_path / "seed" / "fold0").mkdir(parents=True)
    ref = _full_result(tmp_path / "ref.json", {"diffusion": [0.6] * 4})
    _full_result(tmp_path / "o" / "b" / "anatomy.json", {"diffusion + anatomy guidance": [0.7] * 4}, guidance="input")
    ran = []
    monkeypatch.setattr(drv.subprocess, "run", lambda cmd, **k: ran.append(cmd[1]) or subprocess.CompletedProcess(cmd, 0, stdout=""))
    drv.main(["--config", str(config), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
              "--seed-from", str(tmp_path / "seed"), "--unguided-from", str(ref)])
    assert not any(c.endswith("bench_anatomy.py") for c in ran)  # only the gap table ran
    assert drv.complete(tmp_path / "o" / "b" / "anatomy.json", [0, 1])


def test_the_reference_is_checked_before_any_run(bench_script, tmp_path, monkeypatch):
    drv = bench_script("bench_anatomy_guidance_variants")
    config = tmp_path / "variants.yaml"
    config.write_text("base: {profile: quick, pretrain_target: v, pretrain_seeds: [0, 1, 2]}\nvariants: {b: {guidance: input}}\n")
    (tmp_path / "seed" / "fold0").mkdir(parents=True)
    ref = _full_result(tmp_path / "ref.json", {"diffusion": [0.6] * 4})  # pretraining seeds [0, 1]
    monkeypatch.setattr(drv.subprocess, "run", lambda *a, **k: pytest.fail("ran before the reference was checked"))
    with pytest.raises(SystemExit, match=r"not a run of the base settings \(pretrain_seeds: \[0, 1\] there, \[0, 1, 2\] here\)"):
        drv.main(["--config", str(config), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                  "--seed-from", str(tmp_path / "seed"), "--unguided-from", str(ref)])
    with pytest.raises(SystemExit, match="no such file"):
        drv.main(["--config", str(config), "--seed-from", str(tmp_path / "seed"), "--unguided-from", str(tmp_path / "nope.json")])
