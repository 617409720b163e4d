"""One figure of overlaid per-tumor distributions: a small histogram per statistic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthtumor.files import replaced_atomically

from .sets import StatsSet
from .stats import STATISTICS

_COLOURS = ("black", "tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple")
_BINS = 24


def draw_comparison(sets: list[StatsSet], path: Path, title: str = "") -> None:
    """Write a PNG (atomically) with one panel per statistic of ``STATISTICS``.

    The first set (the real one) is drawn as a grey filled histogram, the others as outlines;
    each histogram is normalised to its own area (density), so sets of different sizes compare.
    Skewed statistics (volume) are drawn as log10. The last panel holds the legend with each
    set's tumor count.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = -(-(len(STATISTICS) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows), dpi=100)
    axes = axes.ravel()
    for ax, stat in zip(axes, STATISTICS):
        data = [s.values(stat.key) for s in sets]
        if stat.log:  # skewed (volume): histogram of log10 values
            data = [np.log10(d[d > 0]) for d in data]
        sizes = [d for d in data if d.size]
        if not sizes:
            ax.axis("off")
            continue
        lo, hi = np.percentile(np.concatenate(sizes), [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, _BINS + 1)
        for i, (s, d) in enumerate(zip(sets, data)):
            if d.size == 0:
                continue
            d = np.clip(d, bins[0], bins[-1])
            if i == 0:
                ax.hist(d, bins=bins, density=True, color="0.75", label=s.name)
            else:
                ax.hist(d, bins=bins, density=True, histtype="step", linewidth=1.5,
                        color=_COLOURS[i % len(_COLOURS)], label=s.name)
        unit = f" ({stat.unit})" if stat.unit else ""
        ax.set_title(f"{'log10 ' if stat.log else ''}{stat.label}{unit}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    legend_ax = axes[len(STATISTICS)]
    handles, _ = axes[0].get_legend_handles_labels()
    legend_ax.legend(handles, [f"{s.name} (n={len(s.tumors)})" for s in sets], loc="center",
                     fontsize=8, frameon=False)
    legend_ax.axis("off")
    for ax in axes[len(STATISTICS) + 1:]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with replaced_atomically(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
