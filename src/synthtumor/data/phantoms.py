"""Healthy phantom CTs as a training set: ``synthtumor data phantoms --n N --out DIR``.

Each case is a procedural abdomen (``synthtumor.phantom``) with its own anatomy and its own
acquisition drawn from :class:`~synthtumor.phantom_scan.ScanRanges`: contrast phase, noise
level, reconstruction sharpness and voxel spacing. Case ``i`` is drawn from the seed sequence
``[seed, i]`` alone (two children: the acquisition, then the anatomy), so the same seed gives
byte-identical files whatever the number of workers, and fixing one randomization leaves the
anatomy and the other draws unchanged.

Layout of DIR: ``images/phantom_NNNN.nii.gz`` (int16 HU), ``labels/phantom_NNNN.nii.gz``
(uint8 0/1 liver), ``phantoms.json`` (the settings, written first) and ``datalist.json``
(``training`` list, written last: its presence means the set is complete). A killed run is
resumed by the same command: finished cases are kept.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json, write_json_atomic
from synthtumor.phantom_scan import ScanRanges, draw_scan

SETTINGS = "phantoms.json"
DATALIST = "datalist.json"
FORMAT = "synthtumor-phantoms-1"
# what this command writes into DIR (anything else there is not ours)
_OURS = frozenset({"images", "labels", SETTINGS, DATALIST})


@dataclass(frozen=True)
class PhantomSetResult:
    """What :func:`write_phantom_set` produced: the datalist, its items, seconds spent and how
    many cases were already there (resumed)."""

    datalist: Path
    items: list[dict[str, Any]]
    seconds: float
    reused: int


def case_name(i: int) -> str:
    return f"phantom_{i:04d}"


def draw_case(
    seed: int, i: int, ranges: ScanRanges
) -> tuple[Any, Any, tuple[float, float, float]]:
    """(scan, anatomy generator, spacing mm) of case ``i``; see the module docstring."""
    scan_seq, anatomy_seq = np.random.SeedSequence([seed, i]).spawn(2)
    scan, spacing = draw_scan(np.random.default_rng(scan_seq), ranges)
    return scan, np.random.default_rng(anatomy_seq), spacing


def _write_case(out: str, seed: int, i: int, ranges: ScanRanges) -> dict[str, Any]:
    """Draw and write case ``i`` (runs in a worker process); returns its datalist item."""
    from synthtumor.imaging import write_nifti
    from synthtumor.phantom import make_phantom

    scan, rng, spacing = draw_case(seed, i, ranges)
    name = case_name(i)
    image = Path(out) / "images" / f"{name}.nii.gz"
    label = Path(out) / "labels" / f"{name}.nii.gz"
    if not (image.is_file() and label.is_file()):
        ph = make_phantom(rng, spacing=spacing, scan=scan)
        write_nifti(label, ph.liver, ph.affine, kind="label")
        write_nifti(image, np.rint(ph.ct).astype(np.int16), ph.affine, kind="ct")
    return {"case": name, "image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz",
            "tumor": False, "spacing_mm": list(spacing), **scan.to_dict()}


def _settings(n: int, seed: int, ranges: ScanRanges) -> dict[str, Any]:
    return {"format": FORMAT, "n": n, "seed": seed, "ranges": ranges.to_dict()}


def _check_folder(out: Path, settings: dict[str, Any]) -> None:
    """Refuse a folder holding anything but an earlier run of the same settings."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    old = read_json(out / SETTINGS)
    if old is None or not {p.name for p in out.iterdir()} <= _OURS:
        raise InputError(out, "is not empty and does not hold a phantom set; choose another "
                         "--out")
    if old != settings:
        differ = [k for k in settings if old.get(k) != settings[k]]
        raise InputError(out, f"holds a phantom set with other settings (differs in: "
                         f"{', '.join(differ)}); choose another --out")


def _remove_debris(out: Path) -> None:
    """Hidden temporary files of a killed write (names only ``write_nifti`` uses)."""
    for sub in ("images", "labels"):
        for tmp in (out / sub).glob(".phantom_*.tmp.nii.gz"):
            tmp.unlink(missing_ok=True)


def write_phantom_set(
    out: Path, n: int, *, seed: int = 0, workers: int = 1, ranges: ScanRanges | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PhantomSetResult:
    """Write ``n`` healthy phantoms and their datalist into ``out`` (see module docstring).

    Args:
        out: output folder (created; an earlier run with the same settings is resumed).
        n: number of cases (>= 1).
        seed: non-negative seed of the whole set.
        workers: processes drawing cases in parallel (1: in this process).
        ranges: what to randomize (default :class:`ScanRanges`).
        progress: called as ``progress(done, n)``.

    Raises:
        InputError: ``out`` not writable or holding something else.
        ValueError: ``n``, ``seed`` or ``workers`` out of range.
    """
    if n < 1:
        raise InputError(None, f"--n must be at least 1, got {n}")
    if seed < 0:
        raise InputError(None, f"--seed must be non-negative, got {seed}")
    if workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {workers}")
    ranges = ranges or ScanRanges()
    out = Path(out)
    settings = _settings(n, seed, ranges)
    _check_folder(out, settings)
    t0 = time.perf_counter()
    done = read_json(out / DATALIST)
    if done is not None and read_json(out / SETTINGS) == settings:
        return PhantomSetResult(out / DATALIST, done["training"], 0.0, n)
    for sub in ("images", "labels"):
        make_folder(out / sub)
    write_json_atomic(out / SETTINGS, settings)
    _remove_debris(out)
    reused = sum((out / "images" / f"{case_name(i)}.nii.gz").is_file()
                 and (out / "labels" / f"{case_name(i)}.nii.gz").is_file() for i in range(n))
    items: list[dict[str, Any]] = [{}] * n
    if workers == 1:
        for i in range(n):
            items[i] = _write_case(str(out), seed, i, ranges)
            if progress:
                progress(i + 1, n)
    else:
        # spawn: the caller may hold torch threads or open files that fork would copy
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = [pool.submit(_write_case, str(out), seed, i, ranges) for i in range(n)]
            for k, fut in enumerate(futures):
                items[k] = fut.result()
                if progress:
                    progress(k + 1, n)
    write_json_atomic(out / DATALIST, {
        "description": f"{n} healthy CT phantoms (seed {seed}), tumor-free",
        "labels": {"0": "background", "1": "liver"}, "modality": {"0": "CT"},
        "numTraining": n, "training": items, "validation": [],
    })
    return PhantomSetResult(out / DATALIST, items, time.perf_counter() - t0, reused)


def summary_line(result: PhantomSetResult) -> str:
    """One line: how many of each phase, noise and spacing ranges."""
    items = result.items
    phases = {p: sum(it["phase"] == p for it in items) for p in sorted({i["phase"] for i in items})}
    noise = [it["noise_std_hu"] for it in items]
    sp = np.array([it["spacing_mm"] for it in items])
    return (f"{len(items)} phantoms ({', '.join(f'{v} {k}' for k, v in phases.items())}); "
            f"noise {min(noise):.1f}-{max(noise):.1f} HU; in-plane {sp[:, 0].min():.2f}-"
            f"{sp[:, 0].max():.2f} mm, slices {sp[:, 2].min():.2f}-{sp[:, 2].max():.2f} mm")


def ranges_from_options(spacing: float | None, phases: list[str] | None = None,
                        noise: tuple[float, float] | None = None,
                        psf: tuple[float, float] | None = None) -> ScanRanges:
    """ScanRanges from command-line options (None: the default range)."""
    base = ScanRanges()
    ranges = ScanRanges(tuple(phases) if phases else base.phases, noise or base.noise_std_hu,
                        psf or base.psf_mm, base.inplane_mm, base.slice_mm)
    return ranges.fixed_spacing(spacing) if spacing is not None else ranges


__all__ = ["PhantomSetResult", "ranges_from_options", "summary_line", "write_phantom_set"]
