"""Does the training loader keep the model busy? Loader batches/s vs model steps/s.

The loader is exactly the one `synthtumor train --mode synthetic` uses (cached resample and
liver crop once, then per sample: positive/negative 96^3 crop, tumor synthesis on the patch,
intensity window, flips, rot90, jitter) over the healthy CTs in ../shared/data, at 1 mm, with
N worker processes. The model step is the reference U-Net (16-32-64-128-256, 2 residual units)
forward + DiceCE backward + AdamW at the same batch, on this CPU (all its threads) and on CUDA
when present. Each is measured alone, after a warm-up; the ratio is what matters: the loader
must deliver batches at least 2x as fast as the model consumes them.

With ``--realistic`` the loader is also timed with the ``--realistic`` synthesis (appearance
model, mass effect, capsule, necrosis, vessel avoidance with each case's vessels found once).

Run:  .venv/bin/python benchmarks/loader.py [--workers 2] [--batches 30] [--steps 8] [--realistic]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "healthy"


def healthy_datalist(folder: Path) -> Path:
    """The two healthy patients (3 mm NIfTI, 2 mm DICOM) as NIfTI + 0/1 liver, in a datalist."""
    from synthtumor.imaging import read_ct, read_mask, write_nifti

    items = []
    for name, ct_path, organs in (
        ("totalseg_ct", DATA / "totalseg_ct.nii.gz", DATA / "totalseg_ct_organs.nii.gz"),
        ("totalseg_dicom", DATA / "totalseg_dicom" / "ct", DATA / "totalseg_dicom/organs.nii.gz"),
    ):
        ct = read_ct(ct_path)
        liver = read_mask(organs, ct, label=5)
        write_nifti(folder / f"{name}_ct.nii.gz", ct.array, ct.affine, kind="ct")
        write_nifti(folder / f"{name}_liver.nii.gz", liver.array, ct.affine, kind="label")
        items.append({"image": f"{name}_ct.nii.gz", "label": f"{name}_liver.nii.gz"})
    path = folder / "healthy.json"
    path.write_text(json.dumps({"training": items}))
    return path


def loader_rate(datalist: Path, out: Path, workers: int, batches: int, roi: int,
                realistic: bool = False) -> float:
    """Batches per second of the training loader, after its caches and workers are warm;
    ``realistic``: with the ``--realistic`` synthesis (else the reference method)."""
    from synthtumor.synthesis import SynthesisConfig
    from synthtumor.train.distributed import DistInfo
    from synthtumor.train.loop import (
        TrainConfig,
        build_train_dataset,
        build_train_loader,
        load_items,
    )

    config = TrainConfig(data=datalist, out=out, roi=(roi,) * 3, spacing=1.0, batch_size=2,
                         workers=workers, cache="memory", progress=False,
                         synthesis=SynthesisConfig.realistic() if realistic else None)
    items, weights = load_items(config)
    dataset = build_train_dataset(config, items, DistInfo())
    loader = iter(build_train_loader(config, dataset, DistInfo(), 0, weights))
    for _ in range(max(2, workers * 2)):  # start the workers, fill their prefetch queues
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(loader)
    elapsed = time.perf_counter() - start
    assert tuple(batch["image"].shape) == (2, 1, roi, roi, roi)
    return batches / elapsed


def model_rate(device: str, steps: int, roi: int) -> float:
    """Optimizer steps per second of the reference U-Net at batch 2."""
    import torch
    from monai.losses import DiceCELoss

    from synthtumor.train.models import build_model

    model = build_model("unet").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x = torch.rand(2, 1, roi, roi, roi, device=device)
    y = torch.randint(0, 3, (2, 1, roi, roi, roi), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", enabled=device == "cuda"):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--batches", type=int, default=30, help="loader batches timed")
    parser.add_argument("--steps", type=int, default=8, help="model steps timed")
    parser.add_argument("--roi", type=int, default=96)
    parser.add_argument("--realistic", action="store_true",
                        help="also time the loader with the --realistic synthesis")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        datalist = healthy_datalist(Path(tmp))
        loader = {(w, synthesis): loader_rate(datalist, Path(tmp) / f"run{w}{synthesis}", w,
                                              args.batches, args.roi, synthesis == "realistic")
                  for w in args.workers
                  for synthesis in ("reference", "realistic")[:2 if args.realistic else 1]}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    model = {d: model_rate(d, args.steps, args.roi) for d in devices}

    table = Table(title=f"training loader vs model, {args.roi}³ patches, batch 2, 1 mm")
    for col in ("synthesis", "loader workers", "loader batches/s", "model", "model steps/s",
                "loader / model"):
        table.add_column(col, justify="right")
    for (w, synthesis), rate in loader.items():
        for d, steps in model.items():
            ratio = rate / steps
            table.add_row(synthesis, str(w), f"{rate:.2f}", f"U-Net on {d}", f"{steps:.2f}",
                          f"{ratio:.1f}× {'ok' if ratio >= 2 else 'LOADER-BOUND'}")
    Console(width=120).print(table)
    print(f"CPU threads for the model: {torch.get_num_threads()}; target: loader >= 2x model")


if __name__ == "__main__":
    main()
