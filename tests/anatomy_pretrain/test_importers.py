"""3D importers: fixtures in each source's official layout (tiny SimpleITK volumes, dataset.json as released),
round trips into images/ + labels/ + manifest.json, every error case, and the real TotalSegmentator example.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from anatomy_pretrain.importers import (
    btcv13_names, import_amos, import_btcv, import_msd, import_totalseg_dataset, import_totalseg_multilabel, load_label_map,
)
from anatomy_pretrain.importers.__main__ import main as cli_main
from anatomy_pretrain.volume_data import find_cases
from anatomy_pretrain.volume_io import check_same_geometry, read_subject

SHAPE = (16, 16, 16)  # (z, y, x)
SPACING, ORIGIN = (0.8, 0.8, 2.5), (-120.0, 95.5, 310.0)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # LPS axes flipped in-plane, as many scanners write
BTCV_ORGANS = ["spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver", "stomach", "aorta",
               "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right", "adrenal_gland_left"]


def write(path: Path, array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=DIRECTION) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def ct(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 400, SHAPE).astype(np.int16)


def cycling_label(n_values: int) -> np.ndarray:
    """Every value 0..n_values-1 present, in slabs along x."""
    return (np.indices(SHAPE)[2] % n_values).astype(np.uint8)


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def tree_digest(root: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def assert_on_source_grid(dst: Path, name: str, source_image: Path) -> None:
    source = sitk.ReadImage(str(source_image))
    for sub in ("images", "labels"):
        check_same_geometry(source, sitk.ReadImage(str(dst / sub / f"{name}.nii.gz")), source_image, dst / sub)


# --- official layouts ------------------------------------------------------------------------------------------
@pytest.fixture
def btcv_root(tmp_path) -> Path:
    """RawData/Training/img/img0001.nii.gz + RawData/Training/label/label0001.nii.gz, RawData/Testing/img/img0061.nii.gz."""
    raw = tmp_path / "RawData"
    for k, number in enumerate(("0001", "0002")):
        write(raw / "Training" / "img" / f"img{number}.nii.gz", ct(k))
        write(raw / "Training" / "label" / f"label{number}.nii.gz", cycling_label(14))
    write(raw / "Testing" / "img" / "img0061.nii.gz", ct(5))
    return raw


def msd_dataset_json(name: str, labels: dict, modality: dict, training: list[str], test: list[str]) -> dict:
    return {
        "name": name, "description": f"{name} segmentation", "reference": "Memorial Sloan Kettering Cancer Center",
        "licence": "CC-BY-SA 4.0", "release": "1.0 06/08/2018", "tensorImageSize": "3D" if len(modality) == 1 else "4D",
        "modality": modality, "labels": labels, "numTraining": len(training), "numTest": len(test),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in training],
        "test": [f"./imagesTs/{c}.nii.gz" for c in test],
    }


@pytest.fixture
def msd_root(tmp_path) -> Path:
    """Task09_Spleen as released, including the macOS ``._`` files the MSD tarballs carry."""
    task = tmp_path / "Task09_Spleen"
    for k, case in enumerate(("spleen_2", "spleen_3")):
        write(task / "imagesTr" / f"{case}.nii.gz", ct(k))
        write(task / "labelsTr" / f"{case}.nii.gz", cycling_label(2))
    write(task / "imagesTs" / "spleen_1.nii.gz", ct(9))
    (task / "imagesTr" / "._spleen_2.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    content = msd_dataset_json("Spleen", {"0": "background", "1": "spleen"}, {"0": "CT"}, ["spleen_2", "spleen_3"], ["spleen_1"])
    (task / "dataset.json").write_text(json.dumps(content, indent=4))
    return task


AMOS_LABELS = {"0": "background", "1": "spleen", "2": "right kidney", "3": "left kidney", "4": "gall bladder", "5": "esophagus",
               "6": "liver", "7": "stomach", "8": "arota", "9": "postcava", "10": "pancreas", "11": "right adrenal gland",
               "12": "left adrenal gland", "13": "duodenum", "14": "bladder", "15": "prostate/uterus"}


@pytest.fixture
def amos_root(tmp_path) -> Path:
    """amos22/: imagesTr|labelsTr (CT amos_0001, MR amos_0507), imagesVa|labelsVa (amos_0008), imagesTs, dataset.json."""
    root = tmp_path / "amos22"
    cases = {"Tr": ("amos_0001", "amos_0507"), "Va": ("amos_0008",)}
    for split, names in cases.items():
        for k, case in enumerate(names):
            write(root / f"images{split}" / f"{case}.nii.gz", ct(k))
            write(root / f"labels{split}" / f"{case}.nii.gz", cycling_label(16))
    write(root / "imagesTs" / "amos_0002.nii.gz", ct(7))
    content = {
        "name": "AMOS", "description": "MICCAI2022 Multi-Modality Abdominal Multi-Organ Segmentation Task 2",
        "tensorImageSize": "3D", "reference": "SRIDB x CUHKSZ x HKU x SYSU x LGCHSZ x LGPHSZ", "licence": "CC-BY-SA 4.0",
        "release": "1.0 01/05/2022", "modality": {"0": "CT"}, "labels": AMOS_LABELS,
        "numTraining": 2, "numValidation": 1, "numTest": 1,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases["Tr"]],
        "validation": [{"image": "./imagesVa/amos_0008.nii.gz", "label": "./labelsVa/amos_0008.nii.gz"}],
        "test": [{"image": "./imagesTs/amos_0002.nii.gz"}],
    }
    (root / "dataset.json").write_text(json.dumps(content, indent=4))
    return root


def organ_masks() -> dict[str, np.ndarray]:
    """One x-slab per BTCV organ (x = 1..13), a kidney cyst beside the left kidney and a colon mask."""
    x = np.indices(SHAPE)[2]
    masks = {name: (x == k + 1).astype(np.uint8) for k, name in enumerate(BTCV_ORGANS)}
    masks["kidney_cyst_left"] = (x == 14).astype(np.uint8)
    masks["colon"] = (x == 15).astype(np.uint8)
    return masks


@pytest.fixture
def totalseg_root(tmp_path) -> Path:
    """Totalsegmentator_dataset_v201/s0000/{ct.nii.gz, segmentations/<structure>.nii.gz} and meta.csv."""
    root = tmp_path / "Totalsegmentator_dataset_v201"
    for k, case in enumerate(("s0000", "s0001")):
        write(root / case / "ct.nii.gz", ct(k))
        for name, mask in organ_masks().items():
            write(root / case / "segmentations" / f"{name}.nii.gz", mask)
    (root / "meta.csv").write_text("image_id;age;gender;institute;study_type;split\ns0000;61;m;A;ct abdomen;train\ns0001;70;f;B;ct thorax;val\n")
    return root


@pytest.fixture
def totalseg_ml_root(tmp_path) -> Path:
    """CTs with TotalSegmentator --ml maps (v2 ids): liver 5, kidney_cyst_left 23, aorta 52, portal vein 64, ribs 117."""
    root = tmp_path / "totalseg_ml"
    write(root / "images" / "case_a.nii.gz", ct(0))
    label = np.zeros(SHAPE, np.uint8)
    for slab, class_id in enumerate((5, 23, 52, 64, 117, 3)):
        label[:, :, slab] = class_id
    write(root / "labels" / "case_a.nii.gz", label)
    return root


# --- round trips ---------------------------------------------------------------------------------------------------
def test_btcv_round_trip_keeps_labels_and_geometry(btcv_root, tmp_path):
    before = tree_digest(btcv_root)
    manifest = import_btcv(btcv_root, tmp_path / "out", include_testing=True)
    out = tmp_path / "out"
    assert sorted(manifest["cases"]) == ["btcv_0001", "btcv_0002"] and sorted(manifest["unlabelled"]) == ["btcv_0061"]
    np.testing.assert_array_equal(read_array(out / "labels" / "btcv_0001.nii.gz"), cycling_label(14))
    np.testing.assert_array_equal(read_array(out / "images" / "btcv_0001.nii.gz"), ct(0))
    assert_on_source_grid(out, "btcv_0001", btcv_root / "Training" / "img" / "img0001.nii.gz")
    assert manifest["cases"]["btcv_0001"]["annotated"] == list(range(1, 14))
    voxel_ml = np.prod(SPACING) / 1000
    assert manifest["cases"]["btcv_0001"]["volumes_ml"]["liver"] == pytest.approx((cycling_label(14) == 6).sum() * voxel_ml, abs=0.01)
    assert json.loads((out / "manifest.json").read_text())["label_names"]["10"] == "portal and splenic veins"
    assert tree_digest(btcv_root) == before  # the source is only read


def test_imported_folder_is_what_volume_data_module_reads(btcv_root, tmp_path):
    import_btcv(btcv_root, tmp_path / "out", include_testing=True)
    labelled, unlabelled = find_cases(tmp_path / "out")
    assert [p.name for p, _ in labelled] == ["btcv_0001.nii.gz", "btcv_0002.nii.gz"]
    assert [p.name for p in unlabelled] == ["btcv_0061.nii.gz"]
    subject = read_subject(*labelled[0])
    assert int(subject["label"].data.max()) == 13


def test_btcv13_ordering_in_label_map():
    names = btcv13_names()
    assert [names[k] for k in (1, 2, 3, 6, 9, 10, 11, 12, 13)] == [
        "spleen", "right kidney", "left kidney", "liver", "inferior vena cava", "portal and splenic veins", "pancreas",
        "right adrenal gland", "left adrenal gland"]


def test_amos_maps_to_btcv13_and_records_the_missing_portal_vein(amos_root, tmp_path):
    manifest = import_amos(amos_root, tmp_path / "out")
    assert sorted(manifest["cases"]) == ["amos_0001", "amos_0008"]  # CT from Tr and Va
    assert manifest["skipped"] == {"amos_0507": "MR (modality=CT)"}
    label = read_array(tmp_path / "out" / "labels" / "amos_0001.nii.gz")
    source = cycling_label(16)
    expected = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 11, 11: 12, 12: 13, 13: 0, 14: 0, 15: 0}
    for amos_id, btcv_id in expected.items():
        assert set(np.unique(label[source == amos_id])) == {btcv_id}, amos_id
    assert 10 not in np.unique(label)
    assert manifest["absent_classes"] == [10]
    assert manifest["cases"]["amos_0001"]["annotated"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
    assert manifest["cases"]["amos_0008"]["split"] == "Va" and manifest["cases"]["amos_0001"]["modality"] == "CT"
    assert_on_source_grid(tmp_path / "out", "amos_0001", amos_root / "imagesTr" / "amos_0001.nii.gz")


def test_amos_modality_all_keeps_mr_and_test_images(amos_root, tmp_path):
    manifest = import_amos(amos_root, tmp_path / "out", modality="all", include_test=True)
    assert manifest["cases"]["amos_0507"]["modality"] == "MR" and not manifest["skipped"]
    assert list(manifest["unlabelled"]) == ["amos_0002"]


def test_msd_keeps_native_labels_and_ignores_macos_files(msd_root, tmp_path):
    manifest = import_msd(msd_root, tmp_path / "out", include_test=True)
    assert sorted(manifest["cases"]) == ["spleen_2", "spleen_3"] and list(manifest["unlabelled"]) == ["spleen_1"]
    assert manifest["label_names"] == {"0": "background", "1": "spleen"}
    assert manifest["task"] == "Spleen" and manifest["modality"] == {"0": "CT"}
    np.testing.assert_array_equal(read_array(tmp_path / "out" / "labels" / "spleen_2.nii.gz"), cycling_label(2))
    assert_on_source_grid(tmp_path / "out", "spleen_2", msd_root / "imagesTr" / "spleen_2.nii.gz")


def test_msd_4d_task_needs_a_channel(tmp_path):
    task = tmp_path / "Task05_Prostate"
    four_d = sitk.JoinSeries([sitk.GetImageFromArray(ct(0)), sitk.GetImageFromArray(ct(1) // 2)])
    (task / "imagesTr").mkdir(parents=True)
    sitk.WriteImage(four_d, str(task / "imagesTr" / "prostate_00.nii.gz"))
    write(task / "labelsTr" / "prostate_00.nii.gz", cycling_label(3), spacing=(1, 1, 1), origin=(0, 0, 0), direction=tuple(np.eye(3).ravel()))
    content = msd_dataset_json("Prostate", {"0": "background", "1": "PZ", "2": "TZ"}, {"0": "T2", "1": "ADC"}, ["prostate_00"], [])
    (task / "dataset.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"prostate_00.nii.gz: is a 4D multi-channel volume .*--channel"):
        import_msd(task, tmp_path / "out")
    manifest = import_msd(task, tmp_path / "out", channel=1)
    np.testing.assert_array_equal(read_array(tmp_path / "out" / "images" / "prostate_00.nii.gz"), ct(1) // 2)
    assert manifest["channel"] == 1 and manifest["label_names"]["2"] == "TZ"


def test_totalseg_dataset_builds_btcv13_from_binary_masks(totalseg_root, tmp_path):
    manifest = import_totalseg_dataset(totalseg_root, tmp_path / "out")
    label = read_array(tmp_path / "out" / "labels" / "s0000.nii.gz")
    x = np.indices(SHAPE)[2]
    targets = load_label_map("totalsegmentator")["structures_to_btcv13"]
    for k, name in enumerate(BTCV_ORGANS):
        assert set(np.unique(label[x == k + 1])) == {targets[name]}, name
    assert set(np.unique(label[x == 14])) == {3}  # kidney_cyst_left merged into the left kidney
    assert set(np.unique(label[x == 15])) == {0}  # colon is not a BTCV organ
    case = manifest["cases"]["s0000"]
    assert case["split"] == "train" and case["overlap_voxels"] == 0 and manifest["cases"]["s0001"]["split"] == "val"
    assert_on_source_grid(tmp_path / "out", "s0000", totalseg_root / "s0000" / "ct.nii.gz")


def test_totalseg_multilabel_v2_ids(totalseg_ml_root, tmp_path):
    manifest = import_totalseg_multilabel(totalseg_ml_root, tmp_path / "out")
    label = read_array(tmp_path / "out" / "labels" / "case_a.nii.gz")
    # v2 ids 5 liver, 23 kidney_cyst_left, 52 aorta, 64 portal/splenic vein, 117 costal cartilages, 3 kidney_left
    assert [int(label[0, 0, slab]) for slab in range(6)] == [6, 3, 8, 10, 0, 3]
    assert manifest["source_to_target"]["64"] == 10 and manifest["class_table"] == "total"


# --- errors --------------------------------------------------------------------------------------------------------
BAD_FILES = {  # id: (fixture, file written into it, its voxels, write options, importer, expected message)
    "spacing": ("btcv_root", "Training/label/label0002.nii.gz", lambda: cycling_label(14), {"spacing": (0.8, 0.8, 5.0)},
                import_btcv, r"label0002.nii.gz: label geometry does not match image .*img0002.nii.gz: spacing"),
    "origin": ("totalseg_root", "s0001/segmentations/liver.nii.gz", lambda: organ_masks()["liver"], {"origin": (-120.0, 95.5, 330.0)},
               import_totalseg_dataset, r"s0001/segmentations/liver.nii.gz: label geometry does not match .*origin"),
    "size": ("msd_root", "labelsTr/spleen_3.nii.gz", lambda: np.zeros((16, 16, 12), np.uint8), {},
             import_msd, r"spleen_3.nii.gz: label geometry does not match .*size"),
    "unknown-btcv": ("btcv_root", "Training/label/label0001.nii.gz", lambda: cycling_label(15), {},
                     import_btcv, r"label0001.nii.gz: unknown label value\(s\) \[14\]"),
    "unknown-v2-id": ("totalseg_ml_root", "labels/case_a.nii.gz", lambda: np.full(SHAPE, 118, np.uint8), {},
                      import_totalseg_multilabel, r"case_a.nii.gz: unknown label value\(s\) \[118\]"),
    "non-binary-mask": ("totalseg_root", "s0000/segmentations/spleen.nii.gz", lambda: organ_masks()["spleen"] * 2, {},
                        import_totalseg_dataset, r"spleen.nii.gz: unknown label value\(s\) \[2\]"),
    "label-without-image": ("btcv_root", "Training/label/label0003.nii.gz", lambda: cycling_label(14), {},
                            import_btcv, r"label0003.nii.gz: label has no matching image"),
    "image-without-label": ("msd_root", "imagesTr/spleen_9.nii.gz", lambda: ct(3), {},
                            import_msd, r"imagesTr/spleen_9.nii.gz: image has no matching label"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file_fails_naming_it(case, request, tmp_path):
    fixture, relative, voxels, options, importer, message = case
    root = request.getfixturevalue(fixture)
    write(root / relative, voxels(), **options)
    with pytest.raises(ValueError, match=message):
        importer(root, tmp_path / "out")


MISSING_FILES = {  # id: (fixture, files removed from it, importer, expected message)
    "organ-mask": ("totalseg_root", ["s0001/segmentations/pancreas.nii.gz"], import_totalseg_dataset,
                   r"s0001/segmentations/pancreas.nii.gz: missing organ: the case has no pancreas mask"),
    "totalseg-ct": ("totalseg_root", ["s0001/ct.nii.gz"], import_totalseg_dataset, r"s0001/ct.nii.gz: missing image for the segmentations"),
    "listed-in-dataset-json": ("amos_root", ["labelsVa/amos_0008.nii.gz", "imagesVa/amos_0008.nii.gz"], import_amos,
                               r"imagesVa/amos_0008.nii.gz: listed in dataset.json \(validation\) but missing"),
}


@pytest.mark.parametrize("case", MISSING_FILES.values(), ids=MISSING_FILES.keys())
def test_missing_file_fails_naming_it(case, request, tmp_path):
    fixture, removed, importer, message = case
    root = request.getfixturevalue(fixture)
    for relative in removed:
        (root / relative).unlink()
    with pytest.raises(ValueError, match=message):
        importer(root, tmp_path / "out")


def test_missing_dataset_json_and_foreign_amos_labels(amos_root, msd_root, tmp_path):
    (msd_root / "dataset.json").unlink()
    with pytest.raises(ValueError, match=r"Task09_Spleen/dataset.json: dataset.json is missing"):
        import_msd(msd_root, tmp_path / "a")
    content = json.loads((amos_root / "dataset.json").read_text())
    content["labels"] = {"0": "background", "1": "liver"}
    (amos_root / "dataset.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"amos22/dataset.json: labels .* differ from AMOS22's"):
        import_amos(amos_root, tmp_path / "b")


def test_destination_is_not_mixed_with_an_earlier_import(msd_root, tmp_path):
    import_msd(msd_root, tmp_path / "out")
    with pytest.raises(ValueError, match=r"out: destination already holds 2 images; .* --overwrite"):
        import_msd(msd_root, tmp_path / "out")
    assert len(import_msd(msd_root, tmp_path / "out", overwrite=True)["cases"]) == 2


def test_cli(msd_root, tmp_path, capsys):
    assert cli_main(["msd", str(msd_root), str(tmp_path / "out")]) == 0
    assert "msd: 2 labelled cases, 0 unlabelled images" in capsys.readouterr().out
    assert cli_main(["btcv", str(msd_root), str(tmp_path / "other")]) == 1
    assert "no Training/img + Training/label folders" in capsys.readouterr().err


# --- the real TotalSegmentator example -----------------------------------------------------------------------------
def test_real_totalsegmentator_example_gives_plausible_organ_volumes(shared_data, tmp_path):
    folder = shared_data / "volumes" / "ct_totalseg_example"
    ct_path, seg_path = folder / "example_ct_sm.nii.gz", folder / "example_seg.nii.gz"
    if not ct_path.is_file() or not seg_path.is_file():
        pytest.skip(f"TotalSegmentator example files not found in {folder}")
    manifest = import_totalseg_multilabel(ct_path, tmp_path / "out", seg=seg_path, name="example")
    label = read_array(tmp_path / "out" / "labels" / "example.nii.gz")
    assert set(np.unique(label)) <= set(range(14))
    assert_on_source_grid(tmp_path / "out", "example", ct_path)
    volumes = manifest["cases"]["example"]["volumes_ml"]
    print("\nTotalSegmentator example organ volumes (mL):", ", ".join(f"{k} {v:.1f}" for k, v in volumes.items()))
    # example_ct_sm is 122 x 101 x 30 voxels at 3 mm (a 90 mm abdominal slab): the liver and spleen are still inside
    # the expected ranges (liver 1043 mL, spleen 255 mL); the esophagus lies above the slab and is absent.
    assert 1000 <= volumes["liver"] <= 2000
    assert 100 <= volumes["spleen"] <= 400
    assert 50 <= volumes["right kidney"] <= 300 and 50 <= volumes["left kidney"] <= 300
    assert "esophagus" not in volumes
