"""Work units of an offline export: which (case, variant) pairs, their seeds, and shards.

Pure functions. A unit's seed depends only on (base seed, case id, variant), never on the order
of work or on which process or cluster task runs it, so any split of the units gives the same
files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

# ASCII digits only (\d would take "１" and "٣"), no blanks, no leading zeros: one spelling per
# shard, so two array tasks cannot name the same shard differently
_SHARD_RE = re.compile(r"(0|[1-9][0-9]*)/(0|[1-9][0-9]*)", re.ASCII)


@dataclass(frozen=True)
class Unit:
    """One output case: variant ``variant`` of healthy case ``case_id`` (variant None: the
    healthy case copied without tumors, for on-the-fly training)."""

    case_id: str
    variant: int | None
    seed: int | None

    @property
    def name(self) -> str:
        """The nnU-Net case identifier (images are ``{name}_0000.nii.gz``)."""
        return self.case_id if self.variant is None else f"{self.case_id}_v{self.variant:03d}"


def variant_seed(base_seed: int, case_id: str, variant: int) -> int:
    """A 63-bit seed from (base seed, case id, variant) alone; stable across processes and
    Python versions (SHA-256 of the id, not ``hash()``)."""
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    seq = np.random.SeedSequence([int(base_seed) & 0xFFFFFFFF, int(base_seed) >> 32 & 0xFFFFFFFF,
                                  *words, int(variant)])
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def make_units(case_ids: list[str], variants: int, base_seed: int) -> list[Unit]:
    """All units, sorted by case id then variant. ``variants == 0``: the healthy cases as-is."""
    units = []
    for case_id in sorted(case_ids):
        if variants == 0:
            units.append(Unit(case_id, None, None))
        for v in range(variants):
            units.append(Unit(case_id, v, variant_seed(base_seed, case_id, v)))
    return units


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; ValueError with a one-line reason otherwise.

    Strict: ASCII digits, no spaces, no leading zeros ("0/4", not " 0/4", "00/4" or "０/4").
    """
    m = _SHARD_RE.fullmatch(spec)
    if m is None:
        raise ValueError(f"--shard {spec!r} is not of the form i/n with plain digits and no "
                         "spaces or leading zeros (e.g. 0/4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise ValueError(f"--shard {spec!r}: the number of shards must be at least 1")
    if i >= n:
        raise ValueError(f"--shard {spec!r}: the index must be 0..{n - 1} (shards count from 0)")
    return i, n


def shard_units(units: list[Unit], index: int, count: int) -> list[Unit]:
    """Every ``count``-th unit starting at ``index`` (round robin: balanced, no overlap)."""
    return units[index::count]
