"""The bridge benchmark: the pretrained arms really start from the exported encoder (U-Net and the staged model's
condition network), and the smoke profile runs every arm and seed on the real hippocampus volumes, writes one file per
(arm, seed) that a rerun reuses, and reports paired statistics."""

import json

import pytest
import torch

from anatomy_pretrain.bridge import export_encoder
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
from anatomy_pretrain.tiny import TINY_FEATURES, save_module_checkpoint


def profiles_of(bench) -> list[str]:
    from anatomy_pretrain.profiles import profile_names
    return profile_names(bench.PROFILES)



def test_pretrained_arms_start_from_the_exported_encoder(tmp_path, bench_script):
    bench = bench_script("bench_bridge3d")
    pre = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="input")
    encoder = export_encoder(save_module_checkpoint(pre, tmp_path / "pre.ckpt"), tmp_path / "encoder.pt")
    p = {"features": list(TINY_FEATURES), "denoiser_channels": [4, 8, 8, 16], "lr": 1e-3, "num_samples": 2,
         **{k: bench.LEGACY_SETTINGS[k] for k in ("recipes", "model_overrides")}}
    name = "down_3.convs.conv_0.conv.weight"
    unet = bench.make_model(p, "unet", encoder, tmp_path)
    unet.load_encoder_weights()  # what setup() does when a fit starts
    assert torch.equal(unet.net.state_dict()[name], pre.net.state_dict()[name])
    staged = bench.make_model(p, "staged", encoder, tmp_path)
    assert not torch.equal(staged.condition.state_dict()[name], pre.net.state_dict()[name])
    staged.load_condition_weights()
    assert torch.equal(staged.condition.state_dict()[name], pre.net.state_dict()[name])
    assert not staged.hparams.freeze_condition and staged.network_calls == 1
    plain = bench.make_model(p, "staged", None, tmp_path)
    assert plain.hparams.condition_ckpt is None


@pytest.mark.slow
def test_bridge_smoke_on_real_hippocampus(shared_data, tmp_path, bench_script):
    bench = bench_script("bench_bridge3d")
    root = shared_data / "volumes" / "hippocampus_mri_msd"
    if not (root / "images").is_dir():
        pytest.skip(f"MSD hippocampus volumes not found in {root}")
    out, work = tmp_path / "out", tmp_path / "work"
    assert bench.main(["--profile", "smoke", "--data", str(root), "--out", str(out), "--work", str(work)]) == 0
    report = json.loads((out / "bridge3d.json").read_text())
    assert set(report["arms"]) == set(bench.ARMS) and all(a["seeds"] == [0, 1] for a in report["arms"].values())
    assert set(report["paired"]) == {f"{a} - {b}" for a, b in bench.COMPARISONS}
    files = sorted((out / "bridge3d_runs" / "smoke").glob("*/seed*.json"))
    assert len(files) == 8
    held_out = {v["case"] for v in json.loads(files[0].read_text())["volumes"]}
    assert len(held_out) == 2  # 10 cases, fold 0 of 5
    for f in files:
        run = json.loads(f.read_text())
        assert {v["case"] for v in run["volumes"]} == held_out and 0 <= run["uncertainty_auroc"] <= 1 and run["steps"] == 2
    stamps = {f: f.stat().st_mtime_ns for f in files}
    assert bench.main(["--profile", "smoke", "--data", str(root), "--out", str(out), "--work", str(work)]) == 0
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # the rerun trained nothing
    assert "| staged + pretrained encoder - staged |" in (out / "bridge3d.md").read_text()


def test_bridge_profiles_carry_the_pretraining_recipe(tmp_path, bench_script):
    bench = bench_script("bench_bridge3d")
    assert profiles_of(bench) == ["cpu", "gpu", "smoke"]  # the shared _models block is not a profile
    with pytest.raises(SystemExit, match="not a profile"):
        bench.load_profile("_models")
    for name in ("smoke", "cpu", "gpu"):
        p = bench.load_profile(name)
        assert p["recipes"]["staged"] == ["unisegdiff/staged"] and p["model_overrides"]["staged"] == {"denoiser_trains_condition": False}
        assert p["pretrain_target"] in ("x0", "eps", "v") and 0 < p["pretrain_max_timestep"] <= 1000 and isinstance(p["seeds"], tuple)
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases: 10\n")
    with pytest.raises(SystemExit, match=r"missing keys \[.*'pretrain_target'.*\]"):
        bench.load_profile(str(bad))
    with pytest.raises(SystemExit, match="not a profile"):
        bench.load_profile("huge")


def test_recipes_still_build_what_the_committed_runs_trained(bench_script, tmp_path):
    """The committed cpu result files were trained by models built in code with these arguments; the profile's recipes
    must build the same models (same hyper-parameters, the stage plan included), else a rerun would silently mix two
    models under one arm name. Both sides take today's class defaults, so a changed class default is not caught here."""
    from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter

    bench = bench_script("bench_bridge3d")
    p = bench.load_profile("cpu")
    assert {k: p[k] for k in ("recipes", "model_overrides")} == {k: bench.LEGACY_SETTINGS[k] for k in ("recipes", "model_overrides")}
    sizes = {"spatial_dims": 3, "in_channels": 1, "lr": p["lr"]}
    legacy = {
        "unet": DeterministicSegmenter(**sizes, features=tuple(p["features"])),
        "staged": StagedDiffusionSegmenter(**sizes, condition_features=tuple(p["features"]), denoiser_channels=tuple(p["denoiser_channels"]),
                                           freeze_condition=False, denoiser_trains_condition=False, condition_loss_weight=1.0,
                                           sampling_steps=[0, 0, 1], num_samples=p["num_samples"]),
    }
    plain = lambda hp: json.loads(json.dumps(dict(hp)))  # noqa: E731
    for kind, model in legacy.items():
        built = bench.make_model(p, kind, None, tmp_path)
        assert type(built) is type(model)
        assert plain(built.hparams) == plain(model.hparams), (
            f"configs changed what the committed bridge3d {kind} runs trained with: rerun them or record the old recipe")
    fingerprint = bench.model_fingerprint(p, "staged", pretrained=False)["init_args"]
    assert fingerprint["condition_ckpt"] is None and fingerprint["spatial_dims"] == 3
    assert bench.model_fingerprint(p, "unet", pretrained=True)["init_args"]["encoder_ckpt"] == "<pretrained encoder>"


def _empty_root(tmp_path):
    root = tmp_path / "volumes"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    return root


def test_runs_of_another_model_are_refused(tmp_path, bench_script, monkeypatch):
    """A stored result whose model differs from what the profile builds now is refused, not mixed into the report;
    one of the same model under a renamed recipe is taken."""
    bench = bench_script("bench_bridge3d")
    monkeypatch.setattr(bench, "run_arm", lambda *a, **k: pytest.fail("nothing should train"))
    p = bench.load_profile("smoke")
    settings = json.loads(json.dumps(p))
    path = tmp_path / "out" / "bridge3d_runs" / "smoke" / "unet" / "seed0.json"
    path.parent.mkdir(parents=True)
    argv = ["--profile", "smoke", "--data", str(_empty_root(tmp_path)), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"),
            "--arms", "unet"]
    other = {"class_path": "unisegdiff.models.DeterministicSegmenter", "init_args": {"features": [4, 4, 4, 4, 4, 4]}}
    path.write_text(json.dumps({"settings": settings, "model": other}))
    with pytest.raises(SystemExit, match="other settings or another model"):
        bench.main(argv)
    assert not bench.same_run({"settings": settings, "model": other}, settings, bench.model_fingerprint(p, "unet", False))
    renamed = {**settings, "recipes": {"unet": ["my/unet_copy"], "staged": ["unisegdiff/staged"]}}
    partial = bench.model_section(p, "unet")  # as stored by a file: defaults may be left out, they are filled in
    assert bench.same_run({"settings": renamed, "model": partial}, settings, bench.model_fingerprint(p, "unet", False))


def test_committed_legacy_results_are_taken_as_they_are(tmp_path, bench_script, monkeypatch):
    """The committed cpu files predate the model fingerprint and the recipe keys: a rerun of the cpu profile takes all
    of them (nothing retrains) and reports every arm with its seeds."""
    import shutil

    bench = bench_script("bench_bridge3d")
    committed = bench.ROOT / "reports" / "bench" / "bridge3d_runs" / "cpu"
    files = sorted(committed.glob("*/seed*.json"))
    if not files:
        pytest.skip(f"no committed bridge3d results in {committed}")
    assert all("model" not in json.loads(f.read_text()) for f in files)  # all legacy: this test covers that path
    out = tmp_path / "out"
    shutil.copytree(committed, out / "bridge3d_runs" / "cpu")
    monkeypatch.setattr(bench, "run_arm", lambda *a, **k: pytest.fail("a committed result was not taken"))
    monkeypatch.setattr(bench, "pretrained_encoder", lambda *a, **k: pytest.fail("nothing should pretrain"))
    present = {f.parent.name for f in files}
    arms = [a for a in bench.ARMS if a.replace(" ", "_").replace("+", "and") in present]
    seeds = {a: sorted(int(f.stem[4:]) for f in files if f.parent.name == a.replace(" ", "_").replace("+", "and")) for a in arms}
    if any(s != [0, 1, 2] for s in seeds.values()):
        pytest.skip(f"the committed cpu results are incomplete: {seeds}")
    assert bench.main(["--profile", "cpu", "--data", str(_empty_root(tmp_path)), "--out", str(out), "--work", str(tmp_path / "w"),
                       "--arms", *arms]) == 0
    report = json.loads((out / "bridge3d.json").read_text())
    assert {a: r["seeds"] for a, r in report["arms"].items()} == seeds


def test_bad_model_keys_in_a_profile_are_refused(tmp_path, bench_script):
    import yaml

    bench = bench_script("bench_bridge3d")
    base = {k: list(v) if isinstance(v, tuple) else v for k, v in bench.load_profile("smoke").items()}
    cases = {
        "stagd": ({"model_overrides": {"stagd": {"lr": 1.0}}}, "model_overrides maps kinds among"),
        "sized": ({"model_overrides": {"staged": {"num_samples": 8}}}, r"model_overrides may not set \['num_samples'\]"),
        "no_unet": ({"recipes": {"staged": ["unisegdiff/staged"]}}, "recipes must map each of"),
        "empty": ({"recipes": {"unet": [], "staged": ["unisegdiff/staged"]}}, "recipes.unet must be a config name or a non-empty list"),
    }
    for name, (change, message) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**base, **change}))
        with pytest.raises(SystemExit, match=message):
            bench.load_profile(str(path))
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump({**base, "recipes": {"unet": "unisegdiff/unet", "staged": "unisegdiff/staged"}}))
    assert bench.load_profile(str(one))["recipes"] == {"unet": ["unisegdiff/unet"], "staged": ["unisegdiff/staged"]}
