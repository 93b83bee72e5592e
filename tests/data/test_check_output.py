"""``unisegdiff data check`` prints the pairs of every dataset, and a dataset folder passed as the root gets told
to pass its parent."""

from unisegdiff.data.cli import main as data_cli
from unisegdiff.data.phantoms import write_phantom_root


def test_check_prints_pairs_per_dataset(tmp_path, capsys):
    write_phantom_root(tmp_path / "root", 3, 32, 0)
    next((tmp_path / "root" / "phantom_mr" / "masks").iterdir()).unlink()
    assert data_cli(["check", str(tmp_path / "root")]) == 1
    out = capsys.readouterr().out
    assert "  phantom_ct: 3 pairs\n" in out and "  phantom_mr: 2 pairs, 1 problem(s)\n" in out
    assert out.count(" pairs") == 6


def test_dataset_folder_as_root_names_its_parent(tmp_path, capsys):
    write_phantom_root(tmp_path / "root", 2, 32, 0)
    assert data_cli(["check", str(tmp_path / "root" / "phantom_ct")]) == 2
    err = capsys.readouterr().err
    assert "is a dataset folder" in err and f"pass its parent: unisegdiff data check {tmp_path / 'root'}" in err
