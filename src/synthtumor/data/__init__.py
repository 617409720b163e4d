"""Dataset preparation: download the public CT sets, convert their labels to liver masks,
and write MONAI/MSD-style datalists, a healthy list and k-fold splits."""

from synthtumor.data.datalist import (
    Case,
    DatalistResult,
    build_datalist,
    case_id,
    check_pair,
    load_datalist,
    pair_files,
)
from synthtumor.data.download import DATASETS, Dataset, DownloadResult, download, extract_archive
from synthtumor.data.labels import (
    PRESETS,
    LabelPreset,
    LabelRule,
    LabelsReport,
    convert_array,
    convert_labels,
    make_rule,
)

__all__ = [
    "DATASETS",
    "PRESETS",
    "Case",
    "DatalistResult",
    "Dataset",
    "DownloadResult",
    "LabelPreset",
    "LabelRule",
    "LabelsReport",
    "build_datalist",
    "case_id",
    "check_pair",
    "convert_array",
    "convert_labels",
    "download",
    "extract_archive",
    "load_datalist",
    "make_rule",
    "pair_files",
]
