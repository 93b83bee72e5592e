"""The bad-input cases that already behaved (issue 17, item 7), kept so: each one beside four good pairs is named with
its problem by `data check` and refused the same way by `fit`'s data module, and no input file changes."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unisegdiff.data.checks import check_root
from unisegdiff.data.datamodule import LesionDataModule
from unisegdiff.data.errors import DataError


def _zero_byte(ds: Path, image, mask):
    (ds / "images" / "z.png").write_bytes(b"")
    Image.fromarray(mask).save(ds / "masks" / "z.png")


def _text_as_png(ds: Path, image, mask):
    (ds / "images" / "t.png").write_text("hello, this is not a PNG")
    Image.fromarray(mask).save(ds / "masks" / "t.png")


def _mask_without_image(ds: Path, image, mask):
    Image.fromarray(mask).save(ds / "masks" / "orphan.png")


def _gif(ds: Path, image, mask):
    Image.fromarray(image).save(ds / "images" / "g.gif")
    Image.fromarray(mask).save(ds / "masks" / "g.png")


def _webp(ds: Path, image, mask):
    Image.fromarray(image).save(ds / "images" / "w.webp")
    Image.fromarray(mask).save(ds / "masks" / "w.png")


def _two_extensions(ds: Path, image, mask):
    Image.fromarray(image).save(ds / "images" / "d.png")
    Image.fromarray(image).save(ds / "images" / "d.jpg")
    Image.fromarray(mask).save(ds / "masks" / "d.png")


CASES = {  # name -> (builder, what the message must say)
    "zero-byte png": (_zero_byte, r"images/z\.png: cannot decode the image"),
    "text file as .png": (_text_as_png, r"images/t\.png: cannot decode the image"),
    "mask without image": (_mask_without_image, r"masks/orphan\.png: mask without image"),
    "gif": (_gif, r"images/g\.gif: unsupported entry \('\.gif'\)"),
    "webp": (_webp, r"images/w\.webp: unsupported entry \('\.webp'\)"),
    "one stem, two extensions": (_two_extensions, r"images/d\.png: stem 'd' also used by d\.jpg"),
}


def _checksums(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_named_by_check_and_fit_and_left_unchanged(tmp_path: Path, case: str):
    build, message = CASES[case]
    ds = tmp_path / "breast_us_busi"
    (ds / "images").mkdir(parents=True)
    (ds / "masks").mkdir(parents=True)
    image, mask = np.full((16, 16), 90, np.uint8), np.zeros((16, 16), np.uint8)
    mask[4:9, 4:9] = 255
    for i in range(4):
        Image.fromarray(image).save(ds / "images" / f"ok{i}.png")
        Image.fromarray(mask).save(ds / "masks" / f"ok{i}.png")
    build(ds, image, mask)
    before = _checksums(tmp_path)
    problems = [str(p) for p in check_root(tmp_path)]
    assert any(re.search(message, p) for p in problems), problems
    assert not any("ok0.png" in p for p in problems)
    with pytest.raises(DataError, match=message):
        LesionDataModule(root=str(tmp_path), num_workers=0, image_size=16).setup("fit")
    assert _checksums(tmp_path) == before
