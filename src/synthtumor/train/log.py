"""What a training run reports as it goes: ``log.csv``, tensorboard, the progress bar and
plain-text lines on stderr (rank 0 only).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from synthtumor.files import csv_cell, write_text_atomic
from synthtumor.train import distributed as dist_utils
from synthtumor.train.config import TrainConfig

LOG_COLUMNS = ("step", "loss", "lr", "samples_per_s", "val_tumor_dice", "val_liver_dice")
class CsvLog:
    """``log.csv`` appended one flushed line per step (rank 0 only)."""

    def __init__(self, path: Path, keep_until: int | None) -> None:
        """Fresh file, or (resume) keep only rows with step <= ``keep_until``: rows written
        after the checkpoint by a killed run are dropped so steps are not listed twice."""
        self.path = path
        rows: list[str] = []
        if keep_until is not None and path.is_file():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        if int(row["step"]) <= keep_until:
                            rows.append(",".join(row.get(c) or "" for c in LOG_COLUMNS))
                    except (KeyError, ValueError):
                        continue
        write_text_atomic(path, "\n".join([",".join(LOG_COLUMNS), *rows]) + "\n")
        self._f = path.open("a", newline="")

    def write(self, **values: Any) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [csv_cell(values.get(c)) for c in LOG_COLUMNS])
        self._f.write(buf.getvalue())  # one write per line: a kill leaves whole lines
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def say(info: dist_utils.DistInfo, message: str) -> None:
    """One line on stderr, from rank 0 only."""
    if info.is_main:
        print(message, file=sys.stderr, flush=True)


def tensorboard(out: Path, info: dist_utils.DistInfo) -> Any | None:
    """A SummaryWriter on ``out/tensorboard`` (rank 0, when tensorboard is installed)."""
    if not info.is_main:
        return None
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        say(info, "tensorboard is not installed: logging to log.csv only")
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))


class ProgressBar:
    """Rich bar on a terminal (rank 0), else a plain line every ``log_every`` steps."""

    def __init__(self, info: dist_utils.DistInfo, config: TrainConfig, start: int) -> None:
        self.info, self.config = info, config
        show = config.progress if config.progress is not None else sys.stderr.isatty()
        self.progress = None
        if info.is_main and show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=config.steps, completed=start,
                                               stats="")

    def update(self, step: int, loss: float, rate: float,
               val: tuple[float, float] | None) -> None:
        if not self.info.is_main:
            return
        stats = f"loss {loss:.4f}  {rate:.2f} samples/s"
        if val is not None:
            stats += f"  val tumor {val[0]:.3f} liver {val[1]:.3f}"
        if self.progress is not None:
            self.progress.update(self.task, completed=step, stats=stats)
            if val is not None:
                self.progress.console.print(f"step {step}: {stats}")
        elif val is not None or step % max(1, self.config.log_every) == 0 or \
                step == self.config.steps:
            say(self.info, f"step {step}/{self.config.steps}  {stats}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

