"""Importers of 3D datasets (BTCV, AMOS22, MSD tasks, TotalSegmentator) into the layout ``VolumeDataModule`` reads:
``<dst>/images/<case>.nii.gz`` + ``<dst>/labels/<case>.nii.gz`` + ``<dst>/manifest.json``.

Label maps are data (``configs/anatomy_pretrain/label_maps/*.yml``); BTCV, AMOS and TotalSegmentator end in the BTCV
13-organ set, MSD keeps its own labels. The manifest records, per case, the sources, the annotated class ids (AMOS has
no portal/splenic vein: class 10 is not annotated there, so probes must not count it) and organ volumes in mL.
Command line: ``python -m anatomy_pretrain.importers <kind> <src> <dst>``.
"""

from anatomy_pretrain.importers.btcv import import_btcv
from anatomy_pretrain.importers.common import MANIFEST, btcv13_names, load_label_map, summary
from anatomy_pretrain.importers.decathlon import import_amos, import_msd
from anatomy_pretrain.importers.totalseg import import_totalseg_dataset, import_totalseg_multilabel

IMPORTERS = {
    "btcv": import_btcv,
    "amos": import_amos,
    "msd": import_msd,
    "totalseg": import_totalseg_dataset,
    "totalseg-ml": import_totalseg_multilabel,
}

__all__ = [
    "IMPORTERS", "MANIFEST", "btcv13_names", "import_amos", "import_btcv", "import_msd", "import_totalseg_dataset",
    "import_totalseg_multilabel", "load_label_map", "summary",
]
