"""Turn each public set's label maps into the liver masks the synthesizer needs.

Output: one NIfTI per input, uint8, 0 = background, 1 = liver (and 2 = tumor with
``keep_tumor``), on the label file's own grid (in the four public sets that is the grid of its
CT). A case whose labels hold tumor voxels is not a healthy liver: it is skipped unless the
tumor is kept on purpose for real-tumor training.

Readable inputs: NIfTI, NRRD and MetaImage label volumes. CHAOS ships some masks as PNG
slices; stack those into one NIfTI/NRRD volume first (2D slices carry no 3D geometry).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthtumor.conventions import LIVER, TUMOR
from synthtumor.errors import InputError
from synthtumor.files import make_folder, write_json_atomic
from synthtumor.imaging import read_image, write_nifti

REPORT_NAME = "labels_report.json"
_ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class LabelPreset:
    """How one dataset stores the liver.

    Attributes:
        name: preset id on the command line.
        liver: voxel value of the liver, or None for a liver-only mask (any non-zero value).
        tumor: voxel value of liver tumors, or None when the set has no tumor label.
        description: where the convention comes from.
    """

    name: str
    liver: int | None
    tumor: int | None
    description: str


PRESETS: dict[str, LabelPreset] = {
    p.name: p
    for p in (
        LabelPreset("btcv", 6, None, "BTCV multi-organ map, liver = 6"),
        LabelPreset("pancreas-ct", 6, None, "Pancreas-CT multi-organ labels, liver = 6"),
        LabelPreset("chaos", None, None, "CHAOS liver-only mask (0/1 or 0/255): non-zero = liver"),
        LabelPreset("lits", 1, 2, "LiTS: 1 = liver, 2 = tumor"),
        LabelPreset("msd", 1, 2, "MSD Task03 Liver: 1 = liver, 2 = tumor"),
        LabelPreset("totalseg", 5, None, "TotalSegmentator multi-organ map, liver = 5"),
    )
}

SkipReason = Literal["has tumor", "no liver", "unexpected labels", "unreadable"]


class LabelSkip(InputError):
    """A label file that is readable but not usable as asked; ``reason`` says why."""

    def __init__(self, path: str | None, reason: SkipReason, problem: str) -> None:
        super().__init__(path, f"{reason}: {problem}")
        self.reason: SkipReason = reason


@dataclass(frozen=True)
class LabelRule:
    """The conversion to apply: which value is liver, which is tumor, keep tumors or not."""

    liver: int | None
    tumor: int | None
    keep_tumor: bool = False


def make_rule(
    preset: str | None, *, liver_label: int | None = None, keep_tumor: bool = False
) -> LabelRule:
    """Build the conversion rule from a preset name and/or an explicit liver id.

    Args:
        preset: a key of ``PRESETS`` (case-insensitive), or None with ``liver_label``.
        liver_label: liver voxel value; overrides the preset's.
        keep_tumor: keep tumor voxels as 2 instead of skipping tumor cases (needs a preset
            with a tumor label: lits or msd).

    Raises:
        ValueError: unknown preset, neither preset nor liver_label, liver_label < 1, or
            keep_tumor without a tumor label.
    """
    found: LabelPreset | None = None
    if preset is not None:
        found = PRESETS.get(preset.strip().lower())
        if found is None:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if found is None and liver_label is None:
        raise ValueError(f"pass --preset ({', '.join(PRESETS)}) or --liver-label N")
    if liver_label is not None and liver_label < 1:
        raise ValueError(f"--liver-label must be a positive label id, got {liver_label}")
    liver = liver_label if liver_label is not None else (found.liver if found else None)
    tumor = found.tumor if found else None
    if keep_tumor and tumor is None:
        raise ValueError("--keep-tumor needs a preset with a tumor label (lits, msd)")
    if tumor is not None and liver == tumor:
        raise ValueError(f"the liver label {liver} is the preset's tumor label")
    return LabelRule(liver=liver, tumor=tumor, keep_tumor=keep_tumor)


@dataclass(frozen=True)
class Outcome:
    """Result for one label file.

    Attributes:
        file: input path relative to the source folder (POSIX separators).
        status: "converted" or "skipped".
        output: written file relative to the output folder, for converted files.
        liver_voxels: liver voxel count (voxels).
        tumor_voxels: tumor voxel count (voxels).
        reason: for skipped files: has tumor, no liver, unexpected labels or unreadable.
        detail: one-line explanation for skipped files.
    """

    file: str
    status: Literal["converted", "skipped"]
    output: str | None = None
    liver_voxels: int = 0
    tumor_voxels: int = 0
    reason: SkipReason | None = None
    detail: str | None = None


@dataclass
class LabelsReport:
    """All outcomes of a batch conversion; ``to_json`` is what ``labels_report.json`` holds."""

    source: str
    output: str
    rule: LabelRule
    preset: str | None
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def converted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "converted"]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    def to_json(self) -> dict[str, Any]:
        def clean(o: Outcome) -> dict[str, Any]:
            return {k: v for k, v in asdict(o).items() if v is not None and k != "status"}

        return {
            "source": self.source,
            "output": self.output,
            "preset": self.preset,
            "liver_label": self.rule.liver,
            "tumor_label": self.rule.tumor,
            "keep_tumor": self.rule.keep_tumor,
            "converted": [clean(o) for o in self.converted],
            "skipped": [clean(o) for o in self.skipped],
        }


def convert_array(labels: np.ndarray, rule: LabelRule, path: str | None = None) -> np.ndarray:
    """Map a label array to uint8 0/1 (or 0/1/2 with tumors kept).

    Args:
        labels: integer label values, any shape.
        rule: see ``make_rule``.
        path: for error messages.

    Returns:
        uint8 array of the same shape.

    Raises:
        LabelSkip: reason ``has tumor`` (tumor voxels and not ``keep_tumor``), ``no liver``
            or ``unexpected labels``.
    """
    if rule.liver is None:
        present = _present_values(labels)
        if len(present) > 1:
            raise LabelSkip(
                path,
                "unexpected labels",
                f"holds values {present[:10]}, not a liver-only mask; pass --liver-label N",
            )
        liver = labels != 0
        tumor = None
    else:
        liver = labels == rule.liver
        tumor = labels == rule.tumor if rule.tumor is not None else None
        if tumor is not None:
            # a liver+tumor map (LiTS/MSD) has no other ids: anything else is a wrong preset
            extra = [v for v in _present_values(labels) if v not in (rule.liver, rule.tumor)]
            if extra:
                raise LabelSkip(
                    path,
                    "unexpected labels",
                    f"holds {extra[:10]} besides liver {rule.liver} and tumor {rule.tumor}; "
                    "check the preset",
                )
    n_tumor = int(np.count_nonzero(tumor)) if tumor is not None else 0
    if n_tumor and not rule.keep_tumor:
        raise LabelSkip(path, "has tumor", f"{n_tumor} tumor voxels (not a healthy liver)")
    if not liver.any() and not n_tumor:
        wanted = "non-zero" if rule.liver is None else str(rule.liver)
        raise LabelSkip(path, "no liver", f"no voxel has the liver label ({wanted})")
    out = liver.astype(np.uint8)
    if n_tumor:
        out[tumor] = 2
    return out


def output_name(relative: Path) -> Path:
    """Output path for an input: the same name; non-NIfTI inputs get ``.nii.gz``."""
    lower = relative.name.lower()
    if lower.endswith((".nii.gz", ".nii")):
        return relative
    for suffix in _ITK_SUFFIXES:
        if lower.endswith(suffix):
            return relative.with_name(relative.name[: -len(suffix)] + ".nii.gz")
    return relative.with_name(relative.name + ".nii.gz")


def convert_labels(
    src_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    rule: LabelRule,
    *,
    preset: str | None = None,
    pattern: str = "*.nii.gz",
    progress: Callable[[int, int, str], None] | None = None,
) -> LabelsReport:
    """Convert every label file matching ``pattern`` in ``src_dir`` into ``out_dir``.

    One bad file never stops the batch: it is recorded as skipped ("unreadable" with its
    one-line error) and the next file is converted. Skipped files get no output; an output of
    the same name left by an earlier run is deleted so ``out_dir`` only holds valid masks.
    ``out_dir/labels_report.json`` lists every outcome.

    Args:
        src_dir: folder of label maps.
        out_dir: output folder (created); must differ from ``src_dir``.
        rule: conversion rule (``make_rule``).
        preset: preset name, recorded in the report.
        pattern: glob relative to ``src_dir`` (``**/*.nii.gz`` recurses; sub-folders are
            mirrored in ``out_dir``).
        progress: called as ``progress(done_files, total_files, current_name)``.

    Returns:
        LabelsReport with one outcome per matched file, in sorted order.

    Raises:
        InputError: ``src_dir`` missing or with no matching file, ``out_dir`` equal to
            ``src_dir`` or not creatable, report not writable.
    """
    src, out = Path(src_dir), Path(out_dir)
    if not src.is_dir():
        raise InputError(src, "is not a folder" if src.exists() else "does not exist")
    files = sorted(
        p for p in src.glob(pattern) if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise InputError(src, f"holds no file matching {pattern!r}")
    if out.resolve() == src.resolve():
        raise InputError(out, "is the source folder; choose another so the original labels stay")
    make_folder(out)

    report = LabelsReport(str(src), str(out), rule, preset)
    for i, path in enumerate(files):
        rel = path.relative_to(src)
        if progress is not None:
            progress(i, len(files), rel.as_posix())
        report.outcomes.append(_convert_one(path, rel, out, rule))
    if progress is not None:
        progress(len(files), len(files), "")
    write_json_atomic(out / REPORT_NAME, report.to_json())
    return report


def _convert_one(path: Path, rel: Path, out: Path, rule: LabelRule) -> Outcome:
    dst_rel = output_name(rel)
    dst = out / dst_rel
    try:
        vol = read_image(path)
        labels = _integer_labels(vol.array, path)
        mask = convert_array(labels, rule, str(path))
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_nifti(dst, mask, vol.affine, kind="label")
    except (InputError, ValueError, OSError) as err:
        reason: SkipReason = err.reason if isinstance(err, LabelSkip) else "unreadable"
        if dst.is_file() and not dst.samefile(path):
            dst.unlink()  # an earlier run's output for a file now skipped
        detail = str(err if isinstance(err, InputError) else InputError(path, str(err)))
        return Outcome(rel.as_posix(), "skipped", reason=reason, detail=detail)
    n_liver = int(np.count_nonzero(mask == LIVER))
    n_tumor = int(np.count_nonzero(mask == TUMOR))
    return Outcome(rel.as_posix(), "converted", dst_rel.as_posix(), n_liver, n_tumor)


def _integer_labels(arr: np.ndarray, path: Path) -> np.ndarray:
    """Check the values are whole numbers (labels) and return them as an integer array."""
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind != "f":
        raise InputError(path, f"holds {arr.dtype} values; expected a label map")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr)):
        raise InputError(path, "holds non-integer values; expected a label map")
    return arr.astype(np.int32)


def _present_values(arr: np.ndarray) -> list[int]:
    """Sorted non-zero values present in an integer array.

    Counting (bincount) beats sorting (np.unique) by far on CT-sized volumes; it runs over
    slabs of 16 M voxels so a 200 M-voxel map never needs a full-size int64 copy.
    """
    flat = arr.ravel(order="K")  # no copy for C- or Fortran-ordered arrays
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi <= 1 << 16:
        counts = np.zeros(hi + 1, np.int64)
        step = 1 << 24
        for start in range(0, flat.size, step):
            counts += np.bincount(flat[start:start + step], minlength=hi + 1)
        values = np.flatnonzero(counts)
    else:
        values = np.unique(flat)
    return [int(v) for v in values if v != 0]
