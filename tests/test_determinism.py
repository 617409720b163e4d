"""Same seed, same network on the CPU, whatever the machine's default thread count: two tiny
training runs under different OMP_NUM_THREADS with the thread count pinned (as the demo does)
end with bit-identical weights. The real healthy CT, a 4 mm grid and 32^3 patches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import TS_LIVER, TS_SMALL

from synthtumor.train.determinism import fixed_threads

pytestmark = pytest.mark.xdist_group("train")

_RUN = """
import sys
from synthtumor.train.determinism import fixed_threads
from synthtumor.train.loop import TrainConfig, train
with fixed_threads(2):
    train(TrainConfig(data=sys.argv[1], out=sys.argv[2], steps=3, roi=(32, 32, 32),
                      spacing=4.0, batch_size=2, workers=int(sys.argv[3]), warmup=1, lr=4e-3,
                      save_every=3, overwrite=True, progress=False, seed=5))
"""


def _data(folder: Path) -> Path:
    organs = nib.load(TS_SMALL.with_name("totalseg_ct_small_organs.nii.gz"))
    liver = (np.asarray(organs.dataobj) == TS_LIVER).astype(np.uint8)
    nib.save(nib.Nifti1Image(liver, organs.affine), folder / "liver.nii.gz")
    items = [{"image": str(TS_SMALL), "label": str(folder / "liver.nii.gz")}]
    data = folder / "d.json"
    data.write_text(json.dumps({"training": items, "validation": items}))
    return data


def _train(data: Path, out: Path, omp_threads: int, workers: int = 0) -> dict[str, torch.Tensor]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
           "OMP_NUM_THREADS": str(omp_threads)}
    proc = subprocess.run([sys.executable, "-c", _RUN, str(data), str(out), str(workers)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return torch.load(out / "last.pt", map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
def test_pinned_threads_give_identical_weights(tmp_path: Path) -> None:
    data = _data(tmp_path)
    one = _train(data, tmp_path / "one", omp_threads=1)
    two = _train(data, tmp_path / "two", omp_threads=2, workers=0)
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert any(float(v.abs().max()) > 0 for v in one.values())


_BURN = "import time\nend = time.monotonic() + 240\nwhile time.monotonic() < end:\n    pass\n"


@pytest.mark.slow
def test_worker_timing_does_not_change_the_weights(tmp_path: Path) -> None:
    """Two augmentation workers, once on a quiet machine and once next to two busy-looping
    processes (bounded to 4 minutes, killed when done): the batches arrive in sampler order
    and each worker's stream is seeded, so the weights are bit-identical."""
    data = _data(tmp_path)
    quiet = _train(data, tmp_path / "quiet", omp_threads=2, workers=2)
    hogs = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(2)]
    try:
        loaded = _train(data, tmp_path / "loaded", omp_threads=2, workers=2)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)
    assert all(torch.equal(quiet[k], loaded[k]) for k in quiet)


def test_fixed_threads_restores_the_settings() -> None:
    before = torch.get_num_threads()
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == before
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="--threads"), fixed_threads(0):
        pass
