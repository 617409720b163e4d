"""The prepared GPU check: is the GPU fed, how fast is inference, what does the benchmark cost?

Three measurements, one JSON + one table (about 8 minutes on one GPU):

1. Loader vs model: samples/s of the training loader of `synthtumor train --mode synthetic`
   (healthy phantoms at 1 mm, 96³ patches, batch 2, tumors synthesized on the fly) with 4, 8
   and 16 worker processes, against optimizer steps/s x batch of U-Net and Swin UNETR with AMP
   on random tensors of the same shape. The GPU is fed when the loader's samples/s exceed the
   model's.
2. Sliding-window inference: seconds per 512x512x200 CT (96³ windows, overlap 0.5, AMP) for
   both networks.
3. `synthtumor benchmark efficacy --preset cpu` scaled to about 5 minutes of GPU (more steps,
   more workers; arms synthetic, phantom, synthetic+phantom): the healthy CTs and LiTS 117 of
   ../shared/data when present, else healthy phantoms and a phantom with held-out tumors.

`--smoke` runs everything tiny on the CPU, its benchmark on the phantoms (about a minute and a
half on two cores; tested in CI).

Run:  python benchmarks/gpu_check.py [--smoke] [--out gpu_check]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Sizes:
    """Everything the full check and the smoke run differ in."""

    device: str
    roi: int
    spacing: float
    workers: tuple[int, ...]
    loader_batches: int
    model_steps: int
    phantoms: int
    phantom_spacing: float
    volume: tuple[int, int, int]
    feature_size: int
    efficacy: dict[str, Any]
    real_cases: bool  # the benchmark on ../shared/data's real CT when present, else phantoms


FULL = Sizes("cuda", 96, 1.0, (4, 8, 16), 40, 20, 8, 1.0, (512, 512, 200), 48,
             {"train": {"steps": 1500, "workers": 8, "roi": [64, 64, 64]},
              "phantoms": {"workers": 8}}, True)
SMOKE = Sizes("cpu", 64, 4.0, (1,), 2, 1, 2, 4.0, (64, 64, 24), 12,
              {"train": {"steps": 2, "workers": 0, "roi": [32, 32, 32], "spacing": 4.0,
                         "batch_size": 1, "save_every": 1, "warmup": 1},
               "phantoms": {"n": 1, "workers": 1, "inplane_mm": [4.0, 4.0],
                            "slice_mm": [4.0, 4.0]}, "arms": ["phantom"]},
               False)  # the benchmark on real CT has its own tests


def phantom_datalist(folder: Path, n: int, spacing: float) -> Path:
    """Healthy phantoms at ``spacing`` mm (the loader's input)."""
    from synthtumor.data.phantoms import write_phantom_set
    from synthtumor.phantom_scan import ScanRanges

    res = write_phantom_set(folder, n, seed=0, workers=min(n, os.cpu_count() or 1),
                            ranges=ScanRanges().fixed_spacing(spacing))
    return res.datalist


def loader_rate(datalist: Path, out: Path, s: Sizes, workers: int) -> float:
    """Samples/s of the training loader after warm-up (caches filled, queues primed)."""
    from synthtumor.train.distributed import DistInfo
    from synthtumor.train.loop import (
        TrainConfig,
        build_train_dataset,
        build_train_loader,
        load_items,
    )

    config = TrainConfig(data=datalist, out=out, roi=(s.roi,) * 3, spacing=s.spacing,
                         batch_size=2, workers=workers, cache="memory", progress=False)
    items, weights = load_items(config)
    dataset = build_train_dataset(config, items, DistInfo())
    loader = iter(build_train_loader(config, dataset, DistInfo(), 0, weights))
    for _ in range(max(2, 2 * workers)):
        next(loader)
    t0 = time.perf_counter()
    for _ in range(s.loader_batches):
        batch = next(loader)
    rate = 2 * s.loader_batches / (time.perf_counter() - t0)
    assert tuple(batch["image"].shape) == (2, 1, s.roi, s.roi, s.roi)
    return rate


def model_rate(name: str, s: Sizes) -> float:
    """Optimizer steps/s (batch 2, AMP on CUDA) on random tensors of the training shape."""
    import torch
    from monai.losses import DiceCELoss

    from synthtumor.train.models import build_model

    dev = torch.device(s.device)
    model = build_model(name, s.feature_size).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4)
    scaler = torch.amp.GradScaler("cuda") if dev.type == "cuda" else None
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    x = torch.rand(2, 1, s.roi, s.roi, s.roi, device=dev)
    y = torch.randint(0, 3, (2, 1, s.roi, s.roi, s.roi), device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, enabled=dev.type == "cuda"):
            loss = loss_fn(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    step()
    step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(s.model_steps):
        step()
    _sync(dev)
    return s.model_steps / (time.perf_counter() - t0)


def _sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def inference_seconds(name: str, s: Sizes) -> float:
    """Seconds of sliding-window inference (overlap 0.5, AMP) on one volume of ``s.volume``."""
    import torch
    from monai.inferers import sliding_window_inference

    from synthtumor.train.models import build_model

    dev = torch.device(s.device)
    model = build_model(name, s.feature_size).to(dev).eval()
    x = torch.rand(1, 1, *s.volume, device=dev)
    with torch.no_grad(), torch.autocast(dev.type, enabled=dev.type == "cuda"):
        sliding_window_inference(x[..., : s.roi * 2], (s.roi,) * 3, 4, model)  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        out = sliding_window_inference(x, (s.roi,) * 3, 4, model, overlap=0.5)
        _sync(dev)
    assert out.shape[2:] == x.shape[2:]
    return time.perf_counter() - t0


def efficacy_inputs(work: Path, real: bool) -> tuple[Path, Path, list[str]]:
    """(healthy datalist, test datalist, label-id options): the shared real CTs when present
    and ``real``, else phantoms (healthy) and a phantom carrying held-out tumors (test)."""
    if real and (SHARED / "tumor" / "lits117_ct.nii.gz").is_file():
        h = SHARED / "healthy"
        healthy = {"training": [
            {"image": str(h / "totalseg_ct.nii.gz"), "label": str(h / "totalseg_ct_organs.nii.gz")},
            {"image": str(h / "totalseg_dicom" / "ct"),
             "label": str(h / "totalseg_dicom" / "organs.nii.gz")}]}
        test = {"validation": [{"case": "lits117",
                                "image": str(SHARED / "tumor" / "lits117_ct.nii.gz"),
                                "label": str(SHARED / "tumor" / "lits117_label.nii.gz")}]}
        ids = ["--healthy-liver-id", "5"]
    else:
        from synthtumor.demo import PRESETS, write_phantom_cases

        listing = json.loads(write_phantom_cases(work / "phantom_cases", PRESETS["quick"],
                                                 seed=7).read_text())
        base = work / "phantom_cases"
        abs_ = [{**i, "image": str(base / i["image"]), "label": str(base / i["label"])}
                for i in listing["training"] + listing["validation"]]
        healthy = {"training": [i for i in abs_ if not i["tumor"]]}
        test = {"validation": [i for i in abs_ if i["tumor"]]}
        ids = []
    (work / "healthy.json").write_text(json.dumps(healthy))
    (work / "test.json").write_text(json.dumps(test))
    return work / "healthy.json", work / "test.json", ids


def efficacy_run(work: Path, s: Sizes) -> dict[str, Any]:
    """The cpu preset scaled (``s.efficacy``) as a `synthtumor benchmark efficacy` command."""
    from synthtumor.benchmark.preset import load_preset, preset_toml

    work.mkdir(parents=True, exist_ok=True)
    preset = work / "scaled.toml"
    preset.write_text(preset_toml(load_preset("cpu"), **s.efficacy))
    healthy, test, ids = efficacy_inputs(work, real=s.real_cases)
    cmd = [sys.executable, "-m", "synthtumor.cli", "benchmark", "efficacy", "--preset",
           str(preset), "--healthy", str(healthy), "--test", str(test), *ids,
           "--device", s.device, "--out", str(work / "efficacy")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark efficacy failed: {proc.stderr[-2000:]}")
    table = json.loads((work / "efficacy" / "efficacy.json").read_text())
    return {"seconds": seconds, "command": " ".join(cmd), "rows": table["rows"]}


def run_check(s: Sizes, work: Path) -> dict[str, Any]:
    """All three measurements; returns the JSON-able results."""
    import torch

    result: dict[str, Any] = {"device": s.device, "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name() if s.device == "cuda" else None,
                              "roi": s.roi, "spacing_mm": s.spacing, "batch": 2}
    t0 = time.perf_counter()
    datalist = phantom_datalist(work / "phantoms", s.phantoms, s.phantom_spacing)
    result["loader_samples_per_s"] = {
        str(w): loader_rate(datalist, work / f"loader{w}", s, w) for w in s.workers}
    result["model_samples_per_s"] = {m: 2 * model_rate(m, s) for m in ("unet", "swin_unetr")}
    result["inference_s"] = {m: inference_seconds(m, s) for m in ("unet", "swin_unetr")}
    result["inference_volume"] = list(s.volume)
    result["efficacy"] = efficacy_run(work / "efficacy_work", s)
    result["total_s"] = time.perf_counter() - t0
    return result


def table_text(r: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    lines = [f"GPU check on {r['gpu'] or r['device']} (torch {r['torch']}), {r['roi']}³ "
             f"patches, batch 2, {r['spacing_mm']:g} mm, AMP on CUDA", "",
             "| loader workers | loader samples/s | U-Net samples/s | Swin UNETR samples/s | "
             "fed? |", "|---|---|---|---|---|"]
    model = r["model_samples_per_s"]
    for w, rate in r["loader_samples_per_s"].items():
        fed = "U-Net and Swin UNETR" if rate >= model["unet"] else (
            "Swin UNETR only" if rate >= model["swin_unetr"] else "no: loader-bound")
        lines.append(f"| {w} | {rate:.1f} | {model['unet']:.1f} | {model['swin_unetr']:.1f} | "
                     f"{fed} |")
    v = "x".join(map(str, r["inference_volume"]))
    inf = r["inference_s"]
    lines += ["", f"Sliding-window inference on {v} voxels (overlap 0.5): U-Net "
              f"{inf['unet']:.1f} s, Swin UNETR {inf['swin_unetr']:.1f} s",
              "", f"benchmark efficacy (cpu preset scaled): {r['efficacy']['seconds']:.0f} s",
              "", "| arm | steps | tumor Dice | liver Dice | train s |", "|---|---|---|---|---|"]
    for row in r["efficacy"]["rows"]:
        dice = "–" if row["tumor_dice"] is None else f"{row['tumor_dice']:.3f}"
        liver = "–" if row["liver_dice"] is None else f"{row['liver_dice']:.3f}"
        lines.append(f"| {row['arm']} | {row['steps']} | {dice} | {liver} | {row['train_s']} |")
    lines.append(f"\ntotal {r['total_s']:.0f} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (CI)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"),
                        help="folder for gpu_check.json, gpu_check.md and the work files")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if sizes.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device; use --smoke on a CPU", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_check(sizes, args.out / "work")
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table_text(result)
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
