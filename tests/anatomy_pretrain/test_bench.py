"""The anatomy-pretraining benchmark end to end with its smoke profile: every arm gets a row with every probe column
(fine-tuning included) over pretraining and probe seeds, the ordering verdict is recorded, and --reuse refuses
checkpoints of another recipe."""

import json
from pathlib import Path

import pytest



@pytest.mark.slow
def test_anatomy_bench_smoke_writes_the_full_table(tmp_path, bench_script):
    bench = bench_script("bench_anatomy")
    work, out = tmp_path / "work", tmp_path / "out"
    assert bench.main(["--profile", "smoke", "--skip-hippocampus", "--threads", "2", "--work", str(work), "--out", str(out),
                       "--pretrain-seeds", "0", "1"]) == 0
    results = json.loads((out / "anatomy.json").read_text())
    assert set(results["probes"]) == set(bench.ARMS)
    for name, cols in results["probes"].items():
        assert set(cols) == set(bench.PROBES), name
        for col in cols.values():  # pretrained arms: 2 pretraining seeds x 1 probe seed; random init: its probe seed only
            assert 0.0 <= col["mean"] <= 1.0 and len(col["runs"]) == (1 if name == "random init" else 2)
    assert (work / "fold0" / "pretrain_seed1" / "pretrain_diffusion.ckpt").is_file()
    assert isinstance(results["ordering_holds"], bool) and set(results["ordering_by_column"]) == set(bench.PROBES)
    means = [results["probes"][arm]["nonlinear"]["mean"] for arm in ("diffusion + anatomy guidance", "diffusion", "restorative", "random init")]
    assert results["ordering_holds"] == (means == sorted(means, reverse=True))  # recomputed here, not the bench's expression
    report = (out / "anatomy.md").read_text()
    assert "fine-tuning |" in report and report.count("| diffusion + anatomy guidance |") == 1
    # a changed recipe must not reuse the pretraining checkpoints already in --work
    with pytest.raises(ValueError, match="other settings"):
        bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out), "--reuse",
                    "--pretrain-decorrelation", "0.5"])
    with pytest.raises(ValueError, match="target"):  # the restorative arm is reused, the diffusion arms are refused
        bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out), "--reuse",
                    "--pretrain-target", "x0"])
    # --columns runs only the columns asked for, on the checkpoints already there
    out2 = tmp_path / "out2"
    assert bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out2), "--reuse",
                       "--columns", "nonlinear"]) == 0
    partial = json.loads((out2 / "anatomy.json").read_text())
    assert all(set(cols) == {"nonlinear"} for cols in partial["probes"].values())
    assert set(partial["ordering_by_column"]) == {"nonlinear"} and partial["settings"]["columns"] == ["nonlinear"]
    assert "| - | - | - |" in (out2 / "anatomy.md").read_text()
    # --arms: only the two arms of the guidance gap, no ordering verdict (it needs all four)
    out3 = tmp_path / "out3"
    assert bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out3), "--reuse",
                       "--columns", "nonlinear", "--arms", "diffusion", "guided"]) == 0
    two = json.loads((out3 / "anatomy.json").read_text())
    assert set(two["probes"]) == {"diffusion", "diffusion + anatomy guidance"} and two["ordering_holds"] is None
    assert two["settings"]["arms"] == ["diffusion", "guided"] and "Ordering" not in (out3 / "anatomy.md").read_text()


def totalseg_btcv_root(shared_data: Path, tmp_path: Path) -> Path:
    """A BTCV-13 root imported from the real TotalSegmentator example: its CT with the full model's map and, as a second
    case, the same CT with the --fast model's map (two labelled cases for a 2-fold split; they share a CT, so the
    smoke's numbers are not a result)."""
    folder = shared_data / "volumes" / "ct_totalseg_example"
    files = {"ct": folder / "example_ct_sm.nii.gz", "seg": folder / "example_seg.nii.gz", "fast": folder / "example_seg_fast.nii.gz"}
    if not all(f.is_file() for f in files.values()):
        pytest.skip(f"TotalSegmentator example files not found in {folder}")
    from anatomy_pretrain.importers import import_totalseg_multilabel

    src = tmp_path / "src"
    for name, seg in (("example", files["seg"]), ("example_fast", files["fast"])):
        for sub, source in (("images", files["ct"]), ("labels", seg)):
            (src / sub).mkdir(parents=True, exist_ok=True)
            (src / sub / f"{name}.nii.gz").write_bytes(source.read_bytes())
    import_totalseg_multilabel(src, tmp_path / "root")
    return tmp_path / "root"


@pytest.mark.slow
def test_btcv_protocol_smoke_on_real_ct(shared_data, tmp_path, bench_script):
    bench = bench_script("bench_anatomy")
    root = totalseg_btcv_root(shared_data, tmp_path)
    unlabelled = shared_data / "volumes" / "spleen_ct_msd"
    work, out = tmp_path / "work", tmp_path / "out"
    assert bench.main(["--protocol", "btcv", "--data", str(root), "--unlabelled", str(unlabelled), "--profile", "smoke",
                       "--threads", "2", "--work", str(work), "--out", str(out)]) == 0
    results = json.loads((out / "anatomy_btcv.json").read_text())
    assert results["protocol"] == "btcv" and results["dataset"]["labelled"] == 2 and results["settings"]["folds"] == 2
    organs = ["spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta", "inferior vena cava",
              "portal and splenic veins", "pancreas", "right adrenal gland", "left adrenal gland"]
    assert set(results["probes"]) == set(bench.ARMS)
    for name, cols in results["probes"].items():
        assert set(cols) == set(bench.PROBES), name
        for col in cols.values():  # one probe seed x one pretraining seed x 2 folds
            assert len(col["runs"]) == 2 and 0.0 <= col["mean"] <= 1.0
            assert list(col["per_class"]) == organs
            # the esophagus lies above the example's 90 mm slab: absent from every held-out fold, so no Dice for it
            assert col["per_class"]["esophagus"] is None and 0.0 <= col["per_class"]["liver"] <= 1.0
    assert len(results["coordinates_per_fold"]) == 2
    for fold in (0, 1):  # each fold pretrains its own arms, never on its held-out case
        assert (work / f"fold{fold}" / "pretrain_diffusion_and_anatomy_guidance.ckpt").is_file()
    report = (out / "anatomy_btcv.md").read_text()
    assert "BTCV protocol (smoke profile)" in report and "| liver |" in report and "| esophagus | - | - | - | - |" in report
    assert not (out / "anatomy.json").exists()  # the phantom report is left alone


def test_btcv_protocol_refuses_bad_roots_and_profiles(tmp_path, bench_script):
    bench = bench_script("bench_anatomy")
    with pytest.raises(SystemExit, match="needs --data ROOT"):
        bench.main(["--protocol", "btcv", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="does not exist"):
        bench.main(["--protocol", "btcv", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="not a profile"):
        bench.btcv_profile("huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("folds: 1\n")
    with pytest.raises(SystemExit, match="missing keys"):
        bench.btcv_profile(str(bad))
    with pytest.raises(SystemExit, match="belong to --protocol btcv"):
        bench.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")])
    # one labelled case cannot make a 2-fold split; a root of another label set is refused by its manifest
    import numpy as np
    import SimpleITK as sitk

    for sub in ("images", "labels"):
        (tmp_path / "one" / sub).mkdir(parents=True)
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8, 8), np.int16)), str(tmp_path / "one" / sub / "case.nii.gz"))
    with pytest.raises(SystemExit, match="1 labelled case.*2-fold"):
        bench.btcv_root(str(tmp_path / "one"), 2)
    (tmp_path / "one" / "manifest.json").write_text(json.dumps({"label_names": {"0": "background", "1": "hippocampus"}}))
    with pytest.raises(SystemExit, match="not BTCV-13"):
        bench.btcv_root(str(tmp_path / "one"), 1)
    for name in ("smoke", "cpu", "gpu"):  # the shipped profiles load
        assert bench.btcv_profile(name)["folds"] >= 2


def test_the_guided_arm_takes_the_profile_guidance_settings(bench_script):
    bench = bench_script("bench_anatomy")
    guided, plain = bench.ARMS["diffusion + anatomy guidance"], bench.ARMS["diffusion"]
    assert bench.guided_args({}, guided) == {**guided, "num_frequencies": 3, "guidance_dropout": 0.0, "film_levels": None}
    assert bench.guided_args({"guidance": "input", "guidance_frequencies": 5, "guidance_dropout": 0.2}, guided) == {
        "pretext": "diffusion", "guidance": "input", "num_frequencies": 5, "guidance_dropout": 0.2, "film_levels": None}
    assert bench.guided_args({"guidance": "input"}, plain) == plain  # the unguided arms stay unguided
    assert bench.guided_args({"guidance_levels": (3, 4)}, guided)["film_levels"] == (3, 4)
    assert bench.guided_args({}, guided)["film_levels"] is None  # every level


def test_reuse_refuses_other_guidance_levels_and_step_counts(tmp_path, bench_script, capsys):
    """--reuse must not take a checkpoint of other FiLM levels or another pretraining length (quick vs quick_long);
    a checkpoint without the newer fields reads as the defaults, with a note for the missing step count."""
    from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
    from anatomy_pretrain.tiny import TINY_FEATURES, save_module_checkpoint

    bench = bench_script("bench_anatomy")
    guided = bench.ARMS["diffusion + anatomy guidance"]
    wanted = {"features": TINY_FEATURES} | bench.guided_args({}, guided)
    deep = save_module_checkpoint(AnatomyGuidedDiffusionPretrainer(**(wanted | {"film_levels": (3, 4)})), tmp_path / "deep.ckpt",
                                  global_step=4)
    with pytest.raises(ValueError, match="other settings.*film_levels"):
        bench.reusable(deep, True, AnatomyGuidedDiffusionPretrainer, wanted, steps=4)
    plain = save_module_checkpoint(AnatomyGuidedDiffusionPretrainer(**wanted), tmp_path / "plain.ckpt", global_step=1200)
    assert bench.reusable(plain, True, AnatomyGuidedDiffusionPretrainer, wanted, steps=1200)
    with pytest.raises(ValueError, match="trained for 1200 steps, this profile wants 2400"):
        bench.reusable(plain, True, AnatomyGuidedDiffusionPretrainer, wanted, steps=2400)
    legacy = save_module_checkpoint(AnatomyGuidedDiffusionPretrainer(**wanted), tmp_path / "legacy.ckpt")  # no step count
    assert bench.reusable(legacy, True, AnatomyGuidedDiffusionPretrainer, wanted, steps=2400)
    assert "records no step count" in capsys.readouterr().out
    assert not bench.reusable(plain, False, AnatomyGuidedDiffusionPretrainer, wanted, steps=1)  # without --reuse: retrain


def test_phantom_profiles_are_read_from_their_yaml(tmp_path, bench_script):
    bench = bench_script("bench_anatomy")
    quick, long = bench.phantom_profile("quick"), bench.phantom_profile("quick_long")
    assert quick["pretrain_steps"] == 1200 and quick["features"] == (8, 16, 32, 64, 128, 8)
    assert long["pretrain_steps"] == 2400 and {k: v for k, v in long.items() if k != "pretrain_steps"} == {
        k: v for k, v in quick.items() if k != "pretrain_steps"}  # the YAML merge key keeps everything else
    with pytest.raises(SystemExit, match=r"'huge': not a profile of .*phantoms.yaml \(profiles: \['full', 'quick', 'quick_long', 'smoke'\]\)"):
        bench.main(["--profile", "huge", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    import yaml

    one = tmp_path / "one.yaml"  # a profile file of its own: the guidance keys are optional, anything else unknown is refused
    one.write_text(yaml.safe_dump({**{k: list(v) if isinstance(v, tuple) else v for k, v in quick.items()}, "guidance": "input"}))
    assert bench.phantom_profile(str(one))["guidance"] == "input"
    one.write_text(yaml.safe_dump({**{k: list(v) if isinstance(v, tuple) else v for k, v in quick.items()}, "pretrain_stepz": 5}))
    with pytest.raises(SystemExit, match=r"unknown keys \['pretrain_stepz'\]"):
        bench.phantom_profile(str(one))
    one.write_text("quick: [unclosed\n")
    with pytest.raises(SystemExit, match="not valid YAML"):
        bench.phantom_profile(str(one))


def test_bad_guidance_levels_stop_before_any_training(tmp_path, bench_script):
    bench = bench_script("bench_anatomy")
    work = tmp_path / "w"
    with pytest.raises(SystemExit, match="where FiLM enters; the guided arm's guidance is 'input'"):
        bench.main(["--profile", "smoke", "--guidance", "input", "--guidance-levels", "0", "--work", str(work), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="distinct encoder levels in 0..4"):
        bench.main(["--profile", "smoke", "--guidance-levels", "1", "1", "--work", str(work), "--out", str(tmp_path / "o")])
    assert not work.exists()  # nothing was trained or cached
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SystemExit, match="expected a mapping of one profile's keys, got NoneType"):
        bench.phantom_profile(str(empty))


def test_probe_guide_reaches_the_probe(bench_script, monkeypatch):
    """--probe-guide zeros (the coordinates-withheld control) is what every probe of the run is built with."""
    bench = bench_script("bench_anatomy")
    built = []

    class Stop(Exception):
        pass

    def capture(**kwargs):
        built.append(kwargs)
        raise Stop

    monkeypatch.setattr(bench, "SegmentationProbe", capture)
    for p, expected in (({"features": (4,) * 6}, "coords"), ({"features": (4,) * 6, "probe_guide": "zeros"}, "zeros")):
        with pytest.raises(Stop):
            bench.probe(p, None, None, "nonlinear", 1, 16, [f"c{i}" for i in range(15)])
        assert built[-1]["probe_guide"] == expected


def test_head_probe_guide_gives_every_arm_coordinates(bench_script, monkeypatch):
    """--probe-guide head: the probe data of unguided arms carry the coordinate maps too (the head needs them); by
    default only the guided arm's do."""
    bench = bench_script("bench_anatomy")
    monkeypatch.setattr(bench, "probe", lambda *a, **k: {"dice": {"mean": 0.5, "c1": 0.5}, "sec_per_step": 0.1})
    ckpts = {"diffusion": "d.ckpt", "diffusion + anatomy guidance": "g.ckpt"}
    for probe_guide, expected in ((None, [False, True]), ("head", [True, True])):
        asked = []
        p = {"seeds": [0], "probe_steps": 1} | ({"probe_guide": probe_guide} if probe_guide else {})
        runs = {name: {"nonlinear": []} for name in ckpts}
        bench.probe_arms(p, ckpts, runs, {"probes": {}}, lambda with_coords, budget: asked.append(with_coords), lambda: None,
                         columns=["nonlinear"], names=["c1"])
        assert asked == expected
