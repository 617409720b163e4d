"""Command line of ``synthtumor.realism``: ``register(app)`` adds its commands to a typer app."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from synthtumor.synthesis_options import (
    CountLongOpt,
    ProfileOpt,
    RealisticOpt,
    TumorProbsOpt,
    TypeOpt,
    build_config,
)

if TYPE_CHECKING:
    from .sets import StatsSet

_HALVES = ("cranial", "caudal")


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("realism")(realism)


RealOpt = Annotated[Path | None, typer.Option(
    "--real", help="Real tumors: a datalist JSON (labels 0/1/2), a stats JSON, a "
    "synthesize output folder, or one CT with --real-label.")]
RealLabelOpt = Annotated[Path | None, typer.Option(
    "--real-label", help="Label map (0/1/2) of the CT given as --real.")]
SyntheticOpt = Annotated[list[Path] | None, typer.Option(
    "--synthetic", help="Synthetic tumors (same forms as --real); repeat to compare "
    "several sets.")]
SynthesizeIntoOpt = Annotated[Path | None, typer.Option(
    "--synthesize-into", help="Healthy datalist: synthesize --samples tumor samples into "
    "its cases and measure them (nothing written but the stats).")]
SamplesOpt = Annotated[int, typer.Option("--samples", "-n", min=1,
                                         help="Samples for --synthesize-into.")]
SeedOpt = Annotated[int, typer.Option("--seed", "-s", help="Seed for --synthesize-into.")]
LiverLabelOpt = Annotated[int | None, typer.Option(
    "--liver-label", help="Liver id in the healthy cases' label maps (default: 0/1 "
    "labels).")]
FitOpt = Annotated[bool, typer.Option(
    "--fit", help="Fit a synthesis profile to the real tumors: OUT/profile.json.")]
FitFixedPhaseOpt = Annotated[bool, typer.Option(
    "--fit-fixed-phase", help="With --fit: keep the real scans' liver enhancement in the "
    "profile, so its tumors get the fitted contrasts in any scan (default: phase-aware, "
    "contrasts follow each scan's liver HU).")]
FitBeyondLiverOpt = Annotated[bool, typer.Option(
    "--fit-beyond-liver", help="With --fit: fit the tumors' heterogeneity and edges beyond "
    "the real liver's own (scan noise removed), so that they keep that excess in scans of "
    "other noise (default: as measured, the real scans' noise included).")]
HalfOpt = Annotated[str | None, typer.Option(
    "--half", help="Use only the real tumors of one cranio-caudal half (cranial or "
    "caudal, split at the median height of their centroids): fit on one, compare on the "
    "other.")]
SpacingOpt = Annotated[float, typer.Option(
    "--spacing", min=0.0, help="Measure on this isotropic grid (mm); 0: each case's own "
    "grid.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]


def realism(
    real: RealOpt = None,
    real_label: RealLabelOpt = None,
    synthetic: SyntheticOpt = None,
    synthesize_into: SynthesizeIntoOpt = None,
    samples: SamplesOpt = 20,
    realistic: RealisticOpt = False,
    seed: SeedOpt = 0,
    tumor_type: TypeOpt = None,
    profile: ProfileOpt = None,
    tumor_probs: TumorProbsOpt = None,
    count: CountLongOpt = None,
    liver_label: LiverLabelOpt = None,
    fit: FitOpt = False,
    fit_fixed_phase: FitFixedPhaseOpt = False,
    fit_beyond_liver: FitBeyondLiverOpt = False,
    half: HalfOpt = None,
    spacing: SpacingOpt = 1.0,
    out: OutOpt = Path("realism-output"),
) -> None:
    """Per-tumor statistics of real and synthetic tumors, their comparison, a fitted profile.

    Writes OUT/real_stats.json, OUT/synthetic_stats.json (synthetic2_stats.json, ...),
    OUT/comparison.json and OUT/realism.png when both sides are given, OUT/gallery.png (tumor
    crops side by side) when images were measured, OUT/profile.json with --fit. Tumors are
    26-connected components of label 2; everything is in mm, ml and HU.
    """
    from synthtumor.console import console, user_errors
    from synthtumor.files import make_folder

    from . import sets

    with user_errors():
        _check_inputs(real, real_label, synthetic, synthesize_into, fit, half)
        grid = spacing if spacing > 0 else None
        # synthesis options shape --synthesize-into only
        config = build_config(tumor_type=tumor_type, tumor_probs=tumor_probs, count=count,
                              realistic=realistic, profile=profile) if synthesize_into else None
        with _progress() as progress:
            real_set = None
            if real is not None:
                real_set = sets.load_set(real, "real", grid, real_label, progress)
                if half is not None:
                    real_set = sets.cranio_caudal_half(real_set, half)
            synth_sets = [sets.load_set(p, "synthetic", grid, None, progress)
                          for p in synthetic or []]
            if synthesize_into is not None:
                assert config is not None  # built above whenever --synthesize-into is given
                synth_sets.append(sets.synthesize_into(
                    synthesize_into, samples, config, seed, spacing_mm=grid,
                    liver_label=liver_label, name=_synthetic_name(realistic, profile),
                    progress=progress))
        _unique_names([s for s in [real_set, *synth_sets] if s is not None])
        if fit_beyond_liver and real is not None and real_set is not None:
            _check_beyond_liver(real, real_set)
        make_folder(out)  # only now: a bad input leaves nothing behind
        written = _write_outputs(out, real_set, synth_sets, fit, {
            "fixed_phase": fit_fixed_phase, "beyond_liver": fit_beyond_liver})
    console.print(f"wrote [bold]{out}[/]: {', '.join(written)}")


def _check_beyond_liver(real: Path, real_set: StatsSet) -> None:
    """InputError unless the real tumors were measured with the liver shell's own std."""
    from synthtumor.errors import InputError

    if real_set.values("std_above_liver_hu").size < 2:
        raise InputError(real, "--fit-beyond-liver: no heterogeneity beyond the liver was "
                         "measured in these stats (an earlier version's?): give the images")


def _check_inputs(real: Path | None, real_label: Path | None, synthetic: list[Path] | None,
                  synthesize_into: Path | None, fit: bool, half: str | None) -> None:
    """Refuse option combinations that cannot work, before anything is read or written."""
    from synthtumor.errors import InputError

    if real is None and not synthetic and synthesize_into is None:
        raise InputError(None, "nothing to measure: give --real, --synthetic or "
                         "--synthesize-into")
    if fit and real is None:
        raise InputError(None, "--fit needs the real tumors (--real)")
    if half is not None and half not in _HALVES:
        raise ValueError(f"--half must be one of {', '.join(_HALVES)}, got {half!r}")
    if half is not None and real is None:
        raise InputError(None, "--half needs the real tumors (--real)")
    if real_label is not None and real is None:
        raise InputError(real_label, "--real-label needs the CT as --real")


def _write_outputs(out: Path, real_set: StatsSet | None, synth_sets: list[StatsSet],
                   fit: bool, fit_options: dict[str, bool]) -> list[str]:
    """Write the stats, comparison, figures and fitted profile into ``out``; their names."""
    from synthtumor.console import console, print_table
    from synthtumor.files import write_json_atomic

    written = []
    if real_set is not None:
        write_json_atomic(out / "real_stats.json", real_set.to_dict())
        written.append("real_stats.json")
    for i, s in enumerate(synth_sets):
        name = f"synthetic{i + 1 if i else ''}_stats.json"
        write_json_atomic(out / name, s.to_dict())
        written.append(name)
    all_sets = [s for s in [real_set, *synth_sets] if s is not None]
    for s in all_sets:
        for note in s.notes:
            console.print(f"[yellow]note:[/] {s.name}: {note}", highlight=False)
    if real_set is not None and synth_sets:
        from .compare import compare

        result = compare(real_set, synth_sets)
        write_json_atomic(out / "comparison.json", result)
        written.append("comparison.json")
        print_table(_comparison_table(result))
    else:
        for s in all_sets:
            print_table(_summary_table(s))
    written += _write_figures(out, all_sets)
    if fit:
        from .fit import fit_profile, write_profile

        assert real_set is not None  # --fit without --real was refused above
        fitted, summary = fit_profile(real_set, **fit_options)
        write_profile(out / "profile.json", fitted, {"set": real_set.name,
                                                     "fit": summary})
        written.append("profile.json")
        console.print(_fit_text(summary, fitted.drop_hu), highlight=False)
        for note in summary["cautions"]:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
    return written


def _write_figures(out: Path, all_sets: list[StatsSet]) -> list[str]:
    """The distribution figure and, when tumor crops were kept, the gallery; their names."""
    from .figure import draw_comparison
    from .gallery import draw_gallery, has_crops

    draw_comparison(all_sets, out / "realism.png",
                    title=" vs ".join(f"{s.name}" for s in all_sets))
    written = ["realism.png"]
    if any(has_crops(s) for s in all_sets):
        draw_gallery(all_sets, out / "gallery.png")
        written.append("gallery.png")
    return written


def _synthetic_name(realistic: bool, profile: Path | None) -> str:
    name = "synthetic-realistic" if realistic else "synthetic-reference"
    return f"{name}-{profile.stem}" if profile is not None else name


def _unique_names(all_sets: list[StatsSet]) -> None:
    seen: dict[str, int] = {}
    for s in all_sets:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name} ({seen[s.name]})"


class _progress:
    """A rich progress bar on stderr; calling it with (done, total, message) updates it."""

    def __enter__(self) -> _progress:
        import sys

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from synthtumor.console import err_console

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), console=err_console, transient=True,
                             disable=not sys.stderr.isatty())
        self._bar.__enter__()
        self._task = self._bar.add_task("reading", total=None)
        return self

    def __call__(self, done: int, total: int, message: str) -> None:
        self._bar.update(self._task, completed=done, total=total, description=message)

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    a = abs(v)
    return f"{v:.3g}" if a < 10 else f"{v:.0f}" if a >= 100 else f"{v:.1f}"


def _comparison_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    real = result["real"]
    table = Table(title=f"per-tumor statistics: median [25-75 %]; W = Wasserstein distance in "
                  f"real std, KS (p): Kolmogorov-Smirnov vs {real}", title_justify="left")
    table.add_column("statistic")
    table.add_column(f"{real} (n={result['n_tumors'][real]})", justify="right")
    for name in result["synthetic"]:
        table.add_column(f"{name} (n={result['n_tumors'][name]})", justify="right")
        table.add_column("W", justify="right")
        table.add_column("KS (p)", justify="right")
    for entry in result["statistics"].values():
        unit = f" ({entry['unit']})" if entry["unit"] else ""
        row = [entry["label"] + unit, _quartiles(entry[real])]
        for name in result["synthetic"]:
            e = entry[name]
            row += [_quartiles(e), _fmt(e["wasserstein"]),
                    "-" if not math.isfinite(e["ks"]) else f"{e['ks']:.2f} ({e['ks_p']:.1g})"]
        table.add_row(*row)
    return table


def _quartiles(s: dict[str, float]) -> str:
    if not s["n"]:
        return "-"
    return f"{_fmt(s['median'])} [{_fmt(s['q25'])}, {_fmt(s['q75'])}]"


def _summary_table(stats_set: StatsSet) -> Any:
    from rich.table import Table

    from .compare import summary
    from .stats import STATISTICS

    table = Table(title=f"{stats_set.name}: {len(stats_set.tumors)} tumors",
                  title_justify="left")
    for col in ("statistic", "median", "5 %", "25 %", "75 %", "95 %"):
        table.add_column(col, justify="left" if col == "statistic" else "right")
    for stat in STATISTICS:
        s = summary(stats_set.values(stat.key))
        unit = f" ({stat.unit})" if stat.unit else ""
        table.add_row(stat.label + unit, *(_fmt(s[k]) for k in
                                           ("median", "q05", "q25", "q75", "q95")))
    return table


def _fit_text(summary: dict[str, Any], drop_hu: Any) -> str:
    parts = [f"{n}: {c['tumors']} tumors, r {c['radius_mm']:.1f} mm, {c['count'][0]}-"
             f"{c['count'][1]} per case" for n, c in summary["classes"].items()]
    drop = "" if drop_hu is None else f"; drop {drop_hu[0]:.0f}-{drop_hu[1]:.0f} HU"
    return f"fitted profile ({summary['cases']} case(s), {summary['tumors']} tumors): " + \
        "; ".join(parts) + drop
