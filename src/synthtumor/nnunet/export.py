"""Offline export of healthy livers with synthetic tumors as an nnU-Net v2 raw dataset.

Layout written under ``RAW_DIR/DatasetXXX_Name/``::

    imagesTr/{case}_0000.nii.gz   CT in HU (integer when the input HU are; never wrapped)
    labelsTr/{case}.nii.gz        uint8: 0 background, 1 liver, 2 tumor
    synthtumor/{case}.json        seed, tumor records and sample draws of that case
    synthtumor/export.json        the export's settings (so a re-run can resume safely)
    dataset.json                  written last, by an unsharded run or by ``--merge``

Each case is finished when its side JSON exists (written after both images, every file
atomically), so a killed run resumes where it stopped and a shard never sees half a case.
Pre-generated tumors trained worse than on-the-fly ones in the paper (43.5 vs 52.9 % DSC, Hu
et al. CVPR 2023); the trainer ``nnUNetTrainerSynthTumor`` is the recommended route.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor import __version__
from synthtumor.data.datalist import Case, load_datalist
from synthtumor.errors import InputError
from synthtumor.files import (
    check_not_inputs,
    make_folder,
    read_json,
    remove_stale,
    staging_path,
    write_json_atomic,
)
from synthtumor.imaging import ct_values_to_store, write_nifti
from synthtumor.nnunet.shards import Unit, make_units, shard_units
from synthtumor.synthesis import SynthesisConfig, synthesize

LABELS = {"background": 0, "liver": 1, "tumor": 2}
FILE_ENDING = ".nii.gz"
PAPER_NOTE = (
    "Pre-generated tumors trained worse than tumors synthesized on the fly in the paper "
    "(43.5 vs 52.9 % tumor DSC, Hu et al. CVPR 2023): prefer the nnUNetTrainerSynthTumor trainer."
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_CASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SETTINGS_KEYS = ("cases", "variants", "seed", "realistic", "synthesis")
_MAX_LISTED = 5

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ExportSettings:
    """What to export. ``variants == 0`` copies the healthy cases without tumors (labels 0/1)
    as the dataset for on-the-fly training with ``nnUNetTrainerSynthTumor``."""

    datalist: Path
    raw_dir: Path
    dataset_id: int
    name: str
    variants: int
    seed: int = 0
    realistic: bool = False
    synthesis: SynthesisConfig | None = None  # from the synthesis options; None: ``realistic``

    def __post_init__(self) -> None:
        if not 1 <= self.dataset_id <= 999:
            raise ValueError(f"--dataset-id {self.dataset_id}: nnU-Net ids have 3 digits, 1..999")
        if not _NAME_RE.match(self.name):
            raise ValueError(f"--name {self.name!r}: use letters, digits, '_' and '-' only")
        if self.variants < 0:
            raise ValueError(f"--variants {self.variants}: must be 0 or more")

    @property
    def folder(self) -> Path:
        return self.raw_dir / f"Dataset{self.dataset_id:03d}_{self.name}"

    def config(self) -> SynthesisConfig:
        if self.synthesis is not None:
            return self.synthesis
        return SynthesisConfig.realistic() if self.realistic else SynthesisConfig()


@dataclass
class ExportSummary:
    """What a run did: cases written now, cases found finished, and dataset.json if written."""

    folder: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    total: int = 0
    dataset_json: Path | None = None


# --------------------------------------------------------------------------------------------
# checks


def load_cases(datalist: Path) -> list[Case]:
    """The datalist's training cases, with case ids checked (file-name safe, unique)."""
    cases = load_datalist(datalist, "training")
    seen: set[str] = set()
    for case in cases:
        if not _CASE_RE.match(case.case_id):
            raise InputError(datalist, f"case id {case.case_id!r} is not usable in file names")
        if case.case_id in seen:
            raise InputError(datalist, f"case id {case.case_id!r} appears twice")
        seen.add(case.case_id)
    return cases


def check_id_clash(settings: ExportSettings) -> None:
    """Refuse a dataset id used by another ``DatasetXXX_*`` folder in RAW_DIR or $nnUNet_raw."""
    ours = settings.folder.resolve()
    prefix = f"Dataset{settings.dataset_id:03d}_"
    places = [settings.raw_dir]
    if os.environ.get("nnUNet_raw"):
        places.append(Path(os.environ["nnUNet_raw"]))
    for place in places:
        if not place.is_dir():
            continue
        for other in sorted(place.glob(prefix + "*")):
            if other.is_dir() and other.resolve() != ours:
                raise InputError(other, f"already uses dataset id {settings.dataset_id}; "
                                        "choose another --dataset-id")


def _has_files(folder: Path) -> bool:
    """Any non-hidden file below ``folder`` (empty folders and our temp files do not count)."""
    return any(p.is_file() and not p.name.startswith(".") for p in folder.rglob("*"))


def _manifest(settings: ExportSettings, cases: list[Case]) -> dict[str, Any]:
    return {
        "synthtumor_version": __version__,
        "dataset": settings.folder.name,
        "datalist": str(settings.datalist.absolute()),
        "cases": sorted(c.case_id for c in cases),
        "variants": settings.variants,
        "seed": settings.seed,
        "realistic": settings.realistic,
        "synthesis": settings.config().to_dict(),
    }


def prepare_folder(settings: ExportSettings, cases: list[Case], *, overwrite: bool) -> None:
    """Create (or, with ``overwrite``, replace) the dataset folder and its manifest.

    An existing folder is resumed when its manifest has the same settings; a folder with other
    content, or exported with other settings, is refused unless ``overwrite``.
    """
    folder = settings.folder
    check_id_clash(settings)
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "exists and is not a folder")
    wanted = _manifest(settings, cases)
    manifest_path = folder / "synthtumor" / "export.json"
    if folder.is_dir() and overwrite:
        check_not_inputs(folder, [settings.datalist, *(c.image for c in cases),
                                  *(c.label for c in cases)])
        shutil.rmtree(folder)
    elif folder.is_dir():
        found = read_json(manifest_path)
        if found is None and _has_files(folder):
            raise InputError(folder, "exists and holds other content; pass --overwrite to "
                                     "replace it")
        if found is not None and "synthesis" not in found:  # written before it was stored
            old = SynthesisConfig.realistic() if found.get("realistic") else SynthesisConfig()
            found["synthesis"] = old.to_dict()
        if found is not None and any(found.get(k) != wanted[k] for k in _SETTINGS_KEYS):
            theirs = ", ".join(f"{k} {found.get(k)!r}" for k in _SETTINGS_KEYS
                               if k not in ("cases", "synthesis"))
            if found.get("synthesis") != wanted["synthesis"]:
                theirs += ", another synthesis config"
            raise InputError(folder, f"was exported with other settings or cases ({theirs}); "
                                     "pass --overwrite to start over")
    for sub in ("synthtumor", "imagesTr", "labelsTr"):
        make_folder(folder / sub)
    remove_temp_leftovers(folder)
    if read_json(manifest_path) is None:
        write_json_atomic(manifest_path, wanted)


# A temporary image that earlier versions wrote into imagesTr/labelsTr (they now stage their
# writes in synthtumor/), left there by a killed run: ".{case}.{8 hex}.tmp.nii.gz".
_OLD_TEMP = re.compile(r"^\.[A-Za-z0-9][A-Za-z0-9._-]*\.[0-9a-f]{8}\.tmp\.nii(\.gz)?$")


def remove_temp_leftovers(folder: Path) -> list[Path]:
    """Delete temporary files a killed export left in the dataset: stale staging folders in
    ``synthtumor/`` and half-written images in imagesTr/labelsTr from earlier versions, which
    nnU-Net would count as cases. Returns what was removed."""
    removed = []
    for sub in ("imagesTr", "labelsTr"):
        for p in (folder / sub).glob(".*.tmp.nii*"):
            if _OLD_TEMP.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    if (folder / "synthtumor").is_dir():
        removed += remove_stale(folder / "synthtumor", None)
    return removed


# --------------------------------------------------------------------------------------------
# one case


def _paths(folder: Path, name: str) -> tuple[Path, Path, Path]:
    return (folder / "imagesTr" / f"{name}_0000{FILE_ENDING}",
            folder / "labelsTr" / f"{name}{FILE_ENDING}",
            folder / "synthtumor" / f"{name}.json")


def is_done(folder: Path, unit: Unit) -> bool:
    """Whether ``unit``'s three files exist (the side JSON is written last)."""
    return all(p.is_file() for p in _paths(folder, unit.name))


def export_unit(unit: Unit, case: Case, folder: Path, config: SynthesisConfig,
                base_seed: int) -> None:
    """Write one output case: CT, label, then its side JSON (the 'finished' marker)."""
    from synthtumor.workflow import load_healthy_case

    ct, liver = load_healthy_case(case.image, case.label)
    record: dict[str, Any] = {
        "synthtumor_version": __version__,
        "case": unit.name,
        "source": {"case": case.case_id, "image": str(case.image), "label": str(case.label)},
        "variant": unit.variant,
        "base_seed": base_seed,
        "seed": unit.seed,
        "spacing_mm": [round(v, 6) for v in ct.spacing],
    }
    if unit.seed is None:  # healthy copy, for on-the-fly training
        out_ct, out_label = ct.array, liver
        record.update(tumor_type=None, tumors=[], warnings=[])
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = synthesize(ct.array, liver, np.random.default_rng(unit.seed), config,
                                affine=ct.affine)
        out_ct, out_label = result.ct, result.label
        cfg = asdict(config)
        cfg["tumor_probs"] = dict(config.tumor_probs)
        record.update(tumor_type=result.tumor_type, config=cfg, sample=result.params,
                      warnings=sorted({str(w.message) for w in caught}),
                      tumors=[t.to_dict() for t in result.tumors])
    out_ct = ct_values_to_store(out_ct, ct)  # integer HU in, integer HU out, never wrapped
    image_path, label_path, record_path = _paths(folder, unit.name)
    # staged outside imagesTr/labelsTr: a kill leaves nothing there that nnU-Net would count
    side = folder / "synthtumor"  # stale stagings of killed runs: see remove_temp_leftovers
    stage = staging_path(side, unit.name)
    try:
        stage.mkdir(mode=0o700)
        write_nifti(stage / image_path.name, out_ct, ct.affine, kind="ct")
        write_nifti(stage / label_path.name, out_label, ct.affine, kind="label")
        os.replace(stage / image_path.name, image_path)
        os.replace(stage / label_path.name, label_path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    write_json_atomic(record_path, record)


def _export_unit_safe(unit: Unit, case: Case, folder: Path, config: SynthesisConfig,
                      base_seed: int) -> tuple[str, str] | None:
    # InputError does not survive pickling back from a worker: send its parts instead
    try:
        export_unit(unit, case, folder, config, base_seed)
    except InputError as err:
        return (err.path or "", err.problem)
    return None


# --------------------------------------------------------------------------------------------
# the run


def run_export(
    settings: ExportSettings,
    *,
    shard: tuple[int, int] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> ExportSummary:
    """Export this shard's cases (all of them without ``shard``), skipping finished ones.

    An unsharded run (or shard 0/1) then writes dataset.json (see ``merge``).
    workers: processes for synthesis (1 = in this process).
    """
    if shard is not None and shard[1] > 1 and overwrite:
        raise ValueError("--overwrite cannot be combined with --shard: parallel shards would "
                         "delete each other's work; clear the folder once before the array")
    if workers < 1:
        raise ValueError(f"--workers {workers}: must be at least 1")
    cases = load_cases(settings.datalist)
    prepare_folder(settings, cases, overwrite=overwrite)
    by_id = {c.case_id: c for c in cases}
    units = make_units(list(by_id), settings.variants, settings.seed)
    if shard is not None:
        units = shard_units(units, *shard)
    folder = settings.folder
    summary = ExportSummary(folder, total=len(units))
    pending = [u for u in units if not is_done(folder, u)]
    summary.skipped = [u.name for u in units if u not in pending]
    args = [(u, by_id[u.case_id], folder, settings.config(), settings.seed) for u in pending]
    for name in _run_all(args, workers, progress, len(summary.skipped), len(units)):
        summary.written.append(name)
    if shard is None or shard[1] == 1:
        summary.dataset_json = merge(settings)
    return summary


def _run_all(args: list[tuple[Any, ...]], workers: int, progress: ProgressFn | None,
             already: int, total: int) -> Iterable[str]:
    """Run ``_export_unit_safe`` over ``args``; yield each finished case name."""
    done = already
    if progress:
        progress(done, total, "")
    if workers == 1 or len(args) <= 1:
        for a in args:
            _raise(_export_unit_safe(*a))
            done += 1
            if progress:
                progress(done, total, a[0].name)
            yield a[0].name
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(args))) as pool:
        futures = {pool.submit(_export_unit_safe, *a): a[0].name for a in args}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
            for fut in finished:
                problem = fut.result()
                if problem is not None:
                    for other in remaining:
                        other.cancel()
                    _raise(problem)
                done += 1
                if progress:
                    progress(done, total, futures[fut])
                yield futures[fut]


def _raise(problem: tuple[str, str] | None) -> None:
    if problem is not None:
        raise InputError(problem[0] or None, problem[1])


# --------------------------------------------------------------------------------------------
# merge


def merge(settings: ExportSettings) -> Path:
    """Check that every case of the export is finished and nothing else is there; write
    dataset.json. Returns its path."""
    folder = settings.folder
    manifest = read_json(folder / "synthtumor" / "export.json")
    if manifest is None:
        raise InputError(folder, "holds no synthtumor export (synthtumor/export.json missing); "
                                 "run the export first")
    cases = load_cases(settings.datalist)
    wanted = _manifest(settings, cases)
    if any(manifest.get(k) != wanted[k] for k in _SETTINGS_KEYS):
        raise InputError(folder, "was exported with other settings or cases than this --merge "
                                 "names (compare synthtumor/export.json)")
    units = make_units([c.case_id for c in cases], settings.variants, settings.seed)
    missing = [u.name for u in units if not is_done(folder, u)]
    if missing:
        raise InputError(folder, f"{len(missing)} of {len(units)} cases are not finished "
                                 f"({', '.join(missing[:_MAX_LISTED])}"
                                 f"{', ...' if len(missing) > _MAX_LISTED else ''}); run the "
                                 "missing shards again, then --merge")
    remove_temp_leftovers(folder)
    for sub, ending in (("imagesTr", f"_0000{FILE_ENDING}"), ("labelsTr", FILE_ENDING)):
        expected = {u.name + ending for u in units}
        stray = sorted(p.name for p in (folder / sub).iterdir() if p.name not in expected)
        if stray:
            raise InputError(folder / sub, f"holds {len(stray)} file(s) that are not cases of "
                             f"this export ({', '.join(stray[:_MAX_LISTED])}"
                             f"{', ...' if len(stray) > _MAX_LISTED else ''}); nnU-Net would "
                             "count them: move them out, then --merge")
    path = folder / "dataset.json"
    write_json_atomic(path, dataset_json(settings, len(units)))
    return path


def dataset_json(settings: ExportSettings, num_training: int) -> dict[str, Any]:
    """nnU-Net v2's dataset.json for the export (extra keys are ignored by nnU-Net)."""
    kind = ("healthy livers (labels 0/1) for on-the-fly synthesis with nnUNetTrainerSynthTumor"
            if settings.variants == 0 else
            f"{settings.variants} synthetic-tumor variant(s) per healthy liver")
    return {
        "channel_names": {"0": "CT"},
        "labels": dict(LABELS),
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        "name": settings.name,
        "description": f"synthtumor export: {kind}. {PAPER_NOTE}",
        "reference": "Hu et al., Label-Free Liver Tumor Segmentation, CVPR 2023",
        "synthtumor": {"version": __version__, "variants": settings.variants,
                       "seed": settings.seed, "realistic": settings.realistic,
                       # read by nnUNetTrainerSynthTumor: on-the-fly tumors use this config
                       "synthesis": settings.config().to_dict()},
    }
