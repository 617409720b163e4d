"""Write MONAI/MSD-style datalists, a healthy list and k folds from paired images and labels.

Files pair by case id (rule in ``synthtumor.data.cases``); grids are checked from the headers
(``synthtumor.data.headers``). Both modules' public names are re-exported here.

Labels must already be 0 background / 1 liver / 2 tumor (``synthtumor data labels``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.conventions import LABEL_NAMES as _LABEL_NAMES
from synthtumor.conventions import TUMOR, check_labels
from synthtumor.data.cases import IMAGE_SUFFIXES, Case, case_id, pair_files, strip_image_suffix
from synthtumor.data.headers import GRID_TOLERANCE_VOXELS, check_pair, read_header
from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json_file, write_json_atomic
from synthtumor.imaging import read_image

__all__ = [
    "GRID_TOLERANCE_VOXELS",
    "IMAGE_SUFFIXES",
    "LABEL_NAMES",
    "Case",
    "DatalistResult",
    "build_datalist",
    "case_id",
    "check_pair",
    "label_has_tumor",
    "load_all_cases",
    "load_datalist",
    "make_folds",
    "pair_files",
    "read_header",
    "split_validation",
    "strip_image_suffix",
]

_FOLD_RE = re.compile(r"^fold_(\d+)\.json$")
LABEL_NAMES = {str(k): v for k, v in _LABEL_NAMES.items()}  # datalist JSON "labels" entry
_MAX_LISTED = 10

ProgressFn = Callable[[int, int, str], None]


@dataclass
class DatalistResult:
    """What ``build_datalist`` found and wrote.

    Attributes:
        cases: all pairs, sorted by case id, with ``has_tumor`` filled in.
        training: cases in ``datalist.json``'s training list.
        validation: cases in its validation list.
        folds: validation cases of each fold (tumor cases only).
        written: JSON files written.
        warnings: unmatched files and other non-fatal notes.
    """

    cases: list[Case]
    training: list[Case]
    validation: list[Case]
    folds: list[list[Case]]
    written: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> list[Case]:
        return [c for c in self.cases if not c.has_tumor]

    @property
    def tumor(self) -> list[Case]:
        return [c for c in self.cases if c.has_tumor]



# --------------------------------------------------------------------------------------------
# checking


def label_has_tumor(path: str | os.PathLike[str], tumor_label: int = TUMOR) -> bool:
    """Read a 0/1/2 label map and say whether it holds tumor voxels.

    Raises:
        InputError: unreadable file, or values other than 0, 1, 2 (a label map that was not
            converted with ``synthtumor data labels``).
    """
    arr = read_image(path).array
    check_labels(arr, path, max_id=max(TUMOR, tumor_label))
    return bool(np.any(arr == tumor_label))


def load_datalist(
    path: str | os.PathLike[str], key: str = "training", *, check: bool = True,
    label_optional: bool = False,
) -> list[Case]:
    """Read one list of a MONAI/MSD-style datalist, resolving paths against its folder.

    Args:
        path: the JSON file.
        key: which list (``training``, ``validation``).
        check: also check every pair's grids from the headers (``check_pair``).
        label_optional: accept items without a ``label`` (inference only); their ``Case.label``
            is None and they are not grid-checked.

    Returns:
        The cases in file order (``has_tumor`` from the item's ``tumor`` field if present).

    Raises:
        InputError: unreadable JSON, missing or empty list, an item without image/label, a
            named file that does not exist (naming it and the datalist), a grid mismatch.
    """
    p = Path(path)
    data = read_json_file(p, "datalist")
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InputError(p, f"has no {key!r} list")
    if not items:
        raise InputError(p, f"its {key!r} list is empty")
    base = p.parent
    cases = []
    for i, item in enumerate(items):
        needed = {"image"} if label_optional else {"image", "label"}
        if not isinstance(item, dict) or not needed <= item.keys():
            raise InputError(p, f"item {i} of {key!r} lacks an image or a label")
        image = base / str(item["image"])
        label = base / str(item["label"]) if item.get("label") is not None else None
        for f in (image, label):
            if f is not None and not f.is_file():
                raise InputError(f, f"named in {p} does not exist")
        tumor = item.get("tumor")
        case = Case(str(item.get("case", i)), image, label,  # type: ignore[arg-type]
                    tumor if isinstance(tumor, bool) else None)
        if check and label is not None:
            check_pair(case)
        cases.append(case)
    return cases


def load_all_cases(path: str | os.PathLike[str]) -> list[Case]:
    """Every case of a datalist: its ``training`` list, then its ``validation`` list (either may
    be absent or empty, not both).

    Raises:
        InputError: as :func:`load_datalist`, or neither list holds a case.
    """
    p = Path(path)
    data = read_json_file(p, "datalist")
    keys = [k for k in ("training", "validation")
            if isinstance(data, dict) and isinstance(data.get(k), list) and data[k]]
    if not keys:
        raise InputError(p, "has no non-empty 'training' or 'validation' list")
    return [case for key in keys for case in load_datalist(p, key)]


# --------------------------------------------------------------------------------------------
# splitting


def split_validation(
    cases: Sequence[Case], fraction: float, seed: int
) -> tuple[list[Case], list[Case]]:
    """Random train/validation split, stratified by tumor / no tumor.

    Each group gives ``round(fraction * n)`` cases to validation (at most n - 1 so a group is
    never all validation), drawn with ``numpy.random.default_rng([seed, 0])``.

    Returns:
        (training, validation), each sorted by case id.
    """
    rng = np.random.default_rng([seed, 0])
    training: list[Case] = []
    validation: list[Case] = []
    for group in ([c for c in cases if not c.has_tumor], [c for c in cases if c.has_tumor]):
        n = len(group)
        n_val = min(int(np.floor(fraction * n + 0.5)), max(n - 1, 0))
        order = rng.permutation(n)
        validation += [group[i] for i in order[:n_val]]
        training += [group[i] for i in order[n_val:]]
    return _sorted(training), _sorted(validation)


def make_folds(cases: Sequence[Case], folds: int, seed: int) -> list[list[Case]]:
    """Split cases into ``folds`` validation folds: shuffle with
    ``numpy.random.default_rng([seed, 1])``, then deal round-robin (sizes differ by <= 1).

    Returns:
        One sorted list per fold; every case is in exactly one.
    """
    rng = np.random.default_rng([seed, 1])
    ordered = _sorted(cases)
    order = rng.permutation(len(ordered))
    out: list[list[Case]] = [[] for _ in range(folds)]
    for rank, i in enumerate(order):
        out[rank % folds].append(ordered[i])
    return [_sorted(f) for f in out]


def _sorted(cases: Sequence[Case]) -> list[Case]:
    return sorted(cases, key=lambda c: c.case_id)


# --------------------------------------------------------------------------------------------
# the whole job


def build_datalist(
    images_dir: str | os.PathLike[str],
    labels_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    validation_fraction: float = 0.2,
    folds: int = 5,
    seed: int = 0,
    healthy_only: bool = False,
    progress: ProgressFn | None = None,
) -> DatalistResult:
    """Pair, check and split a dataset; write ``datalist.json``, ``healthy.json`` and folds.

    Outputs in ``out_dir`` (paths inside are relative to ``out_dir``, so MONAI's
    ``load_decathlon_datalist`` resolves them; items carry ``image``, ``label``, ``case`` and
    ``tumor``):
    - ``datalist.json``: ``training`` / ``validation`` split of all cases (only the tumor-free
      ones with ``healthy_only``), stratified by tumor presence;
    - ``healthy.json``: every tumor-free case under ``training`` (the synthetic-tumor set);
    - ``fold_k.json``, k = 0..folds-1: the real-tumor cases, fold k under ``validation`` and
      the others under ``training``. Fold files of an earlier run with more folds are removed.
    The same inputs and seed give byte-identical files. Nothing is written unless every check
    passes.

    Args:
        images_dir: folder of CT images.
        labels_dir: folder of 0/1/2 label maps.
        out_dir: output folder (created).
        validation_fraction: share of cases for validation, in [0, 1).
        folds: number of folds of the tumor cases, 0 for none, else at least 2.
        seed: non-negative random seed.
        healthy_only: keep tumor cases out of ``datalist.json``.
        progress: called as ``progress(done, total, case_id)`` while labels are read.

    Raises:
        InputError: missing folders or files, no pairs, grid mismatch, unexpected label ids,
            too few tumor cases for the folds, output folder not creatable.
        ValueError: argument out of range.
    """
    _check_arguments(validation_fraction, folds, seed)
    out = Path(out_dir)
    _check_creatable(out)

    cases, lone_images, lone_labels = pair_files(images_dir, labels_dir)
    warnings = _unpaired_warnings(lone_images, lone_labels)
    if not cases:
        raise InputError(
            images_dir,
            f"no image/label pairs found with {labels_dir} (files pair by case id: e.g. "
            "img0001/label0001, identical names, or case_0000 images)",
        )
    for case in cases:
        check_pair(case)

    checked = _with_tumor_flags(cases, progress)
    healthy = [c for c in checked if not c.has_tumor]
    tumor = [c for c in checked if c.has_tumor]
    pool = healthy if healthy_only else checked
    if not pool:
        raise InputError(labels_dir, "no tumor-free case found; --healthy-only leaves nothing")
    training, validation = split_validation(pool, validation_fraction, seed)
    fold_lists: list[list[Case]] = []
    if folds and tumor:
        if len(tumor) < folds:
            raise InputError(
                labels_dir,
                f"only {len(tumor)} tumor case(s) for {folds} folds; pass --folds "
                f"{len(tumor) if len(tumor) >= 2 else 0} or fewer (0: no folds)",
            )
        fold_lists = make_folds(tumor, folds, seed)
    elif folds:
        warnings.append("no tumor case found: no fold files written")

    result = DatalistResult(checked, training, validation, fold_lists, warnings=warnings)
    _write_outputs(result, out, seed, validation_fraction, healthy_only)
    return result


def _check_arguments(validation_fraction: float, folds: int, seed: int) -> None:
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"--validation-fraction must be in [0, 1), got {validation_fraction}")
    if folds < 0 or folds == 1:
        raise ValueError(f"--folds must be 0 (no folds) or at least 2, got {folds}")
    if seed < 0:
        raise ValueError(f"--seed must be non-negative, got {seed}")


def _unpaired_warnings(lone_images: Sequence[Path], lone_labels: Sequence[Path]) -> list[str]:
    """One note per kind of unpaired file, naming at most ``_MAX_LISTED`` of them."""
    warnings = []
    for what, lone in (("image(s) without a label", lone_images),
                       ("label(s) without an image", lone_labels)):
        if lone:
            names = ", ".join(p.name for p in lone[:_MAX_LISTED])
            more = ", ..." if len(lone) > _MAX_LISTED else ""
            warnings.append(f"{len(lone)} {what}, left out: {names}{more}")
    return warnings


def _with_tumor_flags(cases: Sequence[Case], progress: ProgressFn | None) -> list[Case]:
    """The cases with ``has_tumor`` read from their labels, reporting progress per case."""
    checked = []
    for i, case in enumerate(cases):
        if progress is not None:
            progress(i, len(cases), case.case_id)
        checked.append(Case(case.case_id, case.image, case.label, label_has_tumor(case.label)))
    if progress is not None:
        progress(len(cases), len(cases), "")
    return checked


def _write_outputs(
    result: DatalistResult, out: Path, seed: int, fraction: float, healthy_only: bool
) -> None:
    make_folder(out)
    base = out.absolute()

    def items(cases: Sequence[Case]) -> list[dict[str, Any]]:
        return [
            {
                "image": Path(os.path.relpath(c.image, base)).as_posix(),
                "label": Path(os.path.relpath(c.label, base)).as_posix(),
                "case": c.case_id,
                "tumor": bool(c.has_tumor),
            }
            for c in cases
        ]

    common = {"labels": LABEL_NAMES, "tensorImageSize": "3D", "modality": {"0": "CT"}}
    files: dict[str, dict[str, Any]] = {
        "datalist.json": {
            "description": "all cases" if not healthy_only else "tumor-free cases only",
            **common,
            "seed": seed,
            "validation_fraction": fraction,
            "numTraining": len(result.training),
            "numValidation": len(result.validation),
            "training": items(result.training),
            "validation": items(result.validation),
        },
        "healthy.json": {
            "description": "tumor-free cases, for training with synthetic tumors",
            **common,
            "numTraining": len(result.healthy),
            "training": items(result.healthy),
            "validation": [],
        },
    }
    tumor = result.tumor
    for k, fold in enumerate(result.folds):
        in_fold = {c.case_id for c in fold}
        files[f"fold_{k}.json"] = {
            "description": f"real-tumor cases, fold {k} of {len(result.folds)} for validation",
            **common,
            "seed": seed,
            "fold": k,
            "folds": len(result.folds),
            "numTraining": len(tumor) - len(fold),
            "numValidation": len(fold),
            "training": items([c for c in tumor if c.case_id not in in_fold]),
            "validation": items(fold),
        }
    for name, data in files.items():
        write_json_atomic(out / name, data)
        result.written.append(out / name)
    for stale in out.glob("fold_*.json"):
        m = _FOLD_RE.match(stale.name)
        if m and int(m.group(1)) >= len(result.folds):
            stale.unlink()  # from an earlier run with more folds: would mislead


def _check_creatable(folder: Path) -> None:
    """Fail early (before the slow label pass) if ``folder`` cannot exist or be written."""
    p = folder.absolute()
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise InputError(folder, f"cannot be created: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(folder, f"cannot be created or written: {p} is not writable")
