"""Tumor statistics of whole sets: labelled CT files, datalists, stats JSONs, synthetic samples.

The file edge of ``synthtumor.realism``: reads cases, puts them on one measuring grid (cropped
around the liver, resampled to an isotropic spacing so texture and edges compare across
scanners), and collects ``stats.tumor_statistics`` records into a ``StatsSet``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor import __version__
from synthtumor.conventions import TUMOR, spacing_of
from synthtumor.data.datalist import Case, load_all_cases
from synthtumor.errors import InputError
from synthtumor.files import read_json_file
from synthtumor.imaging import (
    Volume,
    read_case_labels,
    read_ct,
    read_labels,
    resample_to_spacing,
)
from synthtumor.synthesis import SynthesisConfig, case_vessels, synthesize
from synthtumor.synthesis.placement import bounding_box

from .gallery import add_crops
from .stats import CONNECTIVITY, GLCM_LEVELS, GLCM_WINDOW_HU, SHELL_MM, STAT_KEYS
from .stats import tumor_statistics as _tumor_statistics

DEFAULT_SPACING_MM = 1.0  # the training pipeline's grid; LiTS 117 here is nominally 1 mm
_CROP_MARGIN_MM = 10.0
Progress = Callable[[int, int, str], None]


@dataclass
class StatsSet:
    """Per-tumor statistics of one set of cases.

    name: shown in tables and figures. kind: "real" or "synthetic". tumors: one dict per tumor
    (``stats.STAT_KEYS`` plus case, tumor, voxels, centroid_mm). notes: skipped cases etc.
    settings: how it was measured (grid, connectivity, synthesis config).
    """

    name: str
    kind: str
    tumors: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def values(self, key: str) -> np.ndarray:
        """The finite values of one statistic over the set's tumors (float64, 1-D)."""
        v = np.array([t.get(key, np.nan) for t in self.tumors], dtype=np.float64)
        return v[np.isfinite(v)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "synthtumor_version": __version__, "set": self.name, "kind": self.kind,
            "n_tumors": len(self.tumors), "n_cases": len({t["case"] for t in self.tumors}),
            "settings": self.settings, "notes": self.notes, "statistics": list(STAT_KEYS),
            "tumors": [{k: _json_number(v) for k, v in t.items() if not k.startswith("_")}
                       for t in self.tumors],
        }


def _json_number(v: Any) -> Any:
    # NaN is not JSON: a statistic that could not be measured is null
    return None if isinstance(v, float) and not np.isfinite(v) else v


def _settings(spacing_mm: float | None) -> dict[str, Any]:
    return {
        "spacing_mm": spacing_mm, "connectivity": CONNECTIVITY, "shell_mm": list(SHELL_MM),
        "glcm_window_hu": list(GLCM_WINDOW_HU), "glcm_levels": GLCM_LEVELS,
    }


# --------------------------------------------------------------------------------------------
# reading


def is_stats_json(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("tumors"), list) and "set" in data


def read_stats(path: str | Path) -> StatsSet:
    """Read a stats JSON written by ``synthtumor realism`` (InputError if it is not one)."""
    p = Path(path)
    data = read_json_file(p, "stats file")
    if not is_stats_json(data):
        raise InputError(p, "is not a realism stats JSON (no 'set' and 'tumors')")
    for i, t in enumerate(data["tumors"]):
        if not isinstance(t, dict) or "case" not in t:
            raise InputError(p, f"tumor record {i} is not an object with a 'case'")
    tumors = [{k: (np.nan if v is None else v) for k, v in t.items()} for t in data["tumors"]]
    return StatsSet(str(data["set"]), str(data.get("kind", "")), tumors,
                    list(data.get("notes", [])), dict(data.get("settings", {})))


def measuring_grid(
    ct: Volume, label: Volume, spacing_mm: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop a case to its liver (label > 0) + 10 mm and resample it to ``spacing_mm``.

    Returns (ct HU float32, label uint8, affine), all (x, y, z). ``spacing_mm`` None keeps the
    native grid. The CT is resampled linearly, the labels by nearest neighbour.
    """
    box = bounding_box(label.array > 0)
    if box is None:
        raise InputError(label.path, "has no liver (no label > 0)")
    margin = [int(np.ceil(_CROP_MARGIN_MM / s)) for s in ct.spacing]
    box = tuple(slice(max(0, b.start - m), min(n, b.stop + m))
                for b, m, n in zip(box, margin, ct.shape))
    affine = ct.affine.copy()
    affine[:3, 3] = ct.affine[:3, :3] @ [b.start for b in box] + ct.affine[:3, 3]
    ct_c = Volume(np.ascontiguousarray(ct.array[box], dtype=np.float32), affine, ct.path)
    lab_c = Volume(np.ascontiguousarray(label.array[box], dtype=np.uint8), affine, label.path)
    if spacing_mm is not None and not np.allclose(ct_c.spacing, spacing_mm, rtol=1e-3):
        ct_c = resample_to_spacing(ct_c, spacing_mm, order=1)
        lab_c = resample_to_spacing(lab_c, spacing_mm, order=0)
    return ct_c.array, lab_c.array, ct_c.affine


def read_case(
    image: str | Path, label: str | Path, spacing_mm: float | None,
    *, liver_label: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a CT and its label map (0/1/2, or a multi-label map with ``liver_label``) onto
    the measuring grid (see ``measuring_grid``)."""
    ct = read_ct(image)
    if liver_label is not None:
        lab = read_labels(label, ct)
        arr = (lab.array == liver_label).astype(np.uint8)
        if not arr.any():
            raise InputError(label, f"has no voxel of liver label {liver_label}")
        lab = Volume(arr, lab.affine, lab.path)
    else:
        lab = read_case_labels(label, ct)
    return measuring_grid(ct, lab, spacing_mm)


# --------------------------------------------------------------------------------------------
# measuring


def measure_cases(
    cases: list[Case], name: str, kind: str = "real",
    spacing_mm: float | None = DEFAULT_SPACING_MM, progress: Progress | None = None,
) -> StatsSet:
    """Measure the tumors of labelled cases (labels 0/1/2). Cases without tumor are skipped
    with a note; InputError (naming the first case) if no case has any."""
    tumors: list[dict[str, Any]] = []
    notes: list[str] = []
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), f"measuring {case.case_id}")
        ct, lab, affine = read_case(case.image, case.label, spacing_mm)
        found = _tumor_statistics(ct, lab, affine, case.case_id)
        add_crops(ct, lab, affine, found.tumors)
        if found.skipped_small:
            notes.append(f"{case.case_id}: {found.skipped_small} component(s) under "
                         "8 voxels not measured")
        if not found.tumors:
            notes.append(f"{case.case_id}: no tumor (label 2), skipped")
        tumors += found.tumors
    if progress:
        progress(len(cases), len(cases), "measured")
    if not tumors:
        raise InputError(cases[0].label if len(cases) == 1 else Path(name),
                         "no tumor (label 2) in any case of the set")
    return StatsSet(name, kind, tumors, notes, _settings(spacing_mm))


def load_set(
    path: str | Path, kind: str, spacing_mm: float | None = DEFAULT_SPACING_MM,
    label: str | Path | None = None, progress: Progress | None = None,
) -> StatsSet:
    """A set from a stats JSON, a datalist JSON, a ``synthtumor synthesize`` output folder
    (ct.nii.gz + label.nii.gz) or one CT with ``label``."""
    p = Path(path)
    if label is not None:
        cases = [Case(_stem(p), p, Path(label))]
        return measure_cases(cases, _stem(p), kind, spacing_mm, progress)
    if p.is_dir():
        ct, lab = p / "ct.nii.gz", p / "label.nii.gz"
        if not (ct.is_file() and lab.is_file()):
            raise InputError(p, "is a folder without ct.nii.gz and label.nii.gz")
        return measure_cases([Case(p.name, ct, lab)], p.name, kind, spacing_mm, progress)
    if not p.exists():
        raise InputError(p, "does not exist")
    if p.suffix.lower() != ".json":
        raise InputError(p, "is an image: give its label map too (--real-label), or pass a "
                         "datalist or stats JSON")
    data = read_json_file(p, "stats or datalist file")
    if is_stats_json(data):
        return read_stats(p)
    return measure_cases(load_all_cases(p), p.stem, kind, spacing_mm, progress)


def _stem(p: Path) -> str:
    name = p.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return p.stem


def cranio_caudal_half(stats_set: StatsSet, half: str) -> StatsSet:
    """The tumors of one half of a set, split at the median height (world z, mm) of their
    centroids: "cranial" (above, z > median) or "caudal" (the rest)."""
    z = np.array([float(t["centroid_mm"][2]) for t in stats_set.tumors])
    if z.size < 2:
        raise InputError(None, f"{stats_set.name}: too few tumors to split in halves")
    keep = z > np.median(z) if half == "cranial" else z <= np.median(z)
    tumors = [t for t, k in zip(stats_set.tumors, keep) if k]
    return StatsSet(f"{stats_set.name}-{half}", stats_set.kind, tumors, stats_set.notes,
                    stats_set.settings | {"half": half})


def synthesize_into(
    healthy: str | Path,
    samples: int,
    config: SynthesisConfig,
    seed: int = 0,
    *,
    spacing_mm: float | None = DEFAULT_SPACING_MM,
    liver_label: int | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> StatsSet:
    """Synthesize ``samples`` tumor samples into the healthy cases of a datalist and measure
    the tumors, in memory (no files written).

    Sample i uses case i mod n and ``numpy.random.default_rng([seed, i])``; the liver is the
    label map's 1 (0/1 labels) or ``liver_label`` (multi-organ map). Cases are read and put on
    the measuring grid once; tumors are synthesized on that grid, as training does.
    """
    p = Path(healthy)
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    cases = load_all_cases(p)
    grids: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = {}
    tumors: list[dict[str, Any]] = []
    notes: set[str] = set()
    for i in range(samples):
        case = cases[i % len(cases)]
        if progress:
            progress(i, samples, f"sample {i + 1}/{samples} in {case.case_id}")
        if i % len(cases) not in grids:
            ct, lab, affine = read_case(case.image, case.label, spacing_mm,
                                        liver_label=liver_label)
            if (lab == TUMOR).any():
                raise InputError(case.label, "holds tumor voxels (label 2): not a healthy liver")
            vessels = case_vessels(ct, lab, config, affine=affine)  # once per case
            grids[i % len(cases)] = (ct, lab, affine, vessels)
        ct, lab, affine, vessels = grids[i % len(cases)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = synthesize(ct, lab, np.random.default_rng([seed, i]), config, affine=affine,
                                vessels=vessels)
        notes |= {f"{case.case_id}: {w.message}" for w in caught}
        found = _tumor_statistics(result.ct, result.label, affine, f"{case.case_id}#{i}")
        add_crops(result.ct, result.label, affine, found.tumors)
        for t in found.tumors:
            t["sample"] = i
            t["tumor_type"] = result.tumor_type
        tumors += found.tumors
    if progress:
        progress(samples, samples, "measured")
    if not tumors:
        raise InputError(p, "no synthetic tumor could be measured")
    settings = _settings(spacing_mm) | {
        "healthy": str(p), "samples": samples, "seed": seed,
        "realistic": bool(config.mass_effect or config.capsule or config.necrosis),
        "drop_hu": list(config.drop_hu),
    }
    label = "synthetic-realistic" if settings["realistic"] else "synthetic-reference"
    return StatsSet(name or label, "synthetic", tumors, sorted(notes), settings)


__all__ = [
    "DEFAULT_SPACING_MM", "StatsSet", "load_set", "measure_cases",
    "measuring_grid", "read_case", "read_stats", "spacing_of", "synthesize_into",
]
