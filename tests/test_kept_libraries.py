"""Where a kept library does the job: the NSD's surfel areas are MONAI's table and the NSD equals
MONAI's ``compute_surface_dice`` (scikit-image is no longer needed); the reader study's PNGs are
Pillow's encoding with fixed settings."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import LITS_LABEL
from PIL import Image

from synthtumor.evaluate.metrics import normalized_surface_dice, surfel_area_table
from synthtumor.turing.png import PNG_SETTINGS, chunk_layout, encode_gray_png


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.7, 0.8, 2.5)])
def test_nsd_equals_monai_compute_surface_dice(spacing: tuple) -> None:
    from monai.metrics import compute_surface_dice

    truth = np.asarray(nib.load(LITS_LABEL).dataobj) == 2
    pred = np.roll(truth, (1, -3, 2), axis=(0, 1, 2))
    one_hot = [torch.from_numpy(np.stack([~m, m])[None]) for m in (pred, truth)]
    for tol in (1.0, 2.0):
        ref = float(compute_surface_dice(*one_hot, [tol], include_background=False,
                                         spacing=list(spacing), use_subvoxels=True)[0, 0])
        assert normalized_surface_dice(pred, truth, spacing, tol) == pytest.approx(ref, abs=1e-6)
    # a single surfel cell: one corner inside -> one triangle across the corner (unit spacing)
    assert surfel_area_table((1.0, 1.0, 1.0))[1] == pytest.approx(np.sqrt(3) / 8)
    assert surfel_area_table((1.0, 1.0, 1.0))[0] == surfel_area_table((1.0, 1.0, 1.0))[255] == 0


def test_nsd_needs_no_scikit_image() -> None:
    code = ("import sys; sys.modules['skimage'] = None\n"  # any import of it fails
            "import numpy as np\n"
            "from synthtumor.evaluate.metrics import normalized_surface_dice\n"
            "a = np.zeros((9, 9, 9), bool); a[2:6, 2:6, 2:6] = True\n"
            "print(normalized_surface_dice(a, np.roll(a, 3, 0), (1.0, 1.0, 2.0), 1.0))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert 0.5 < float(proc.stdout) < 1.0


@pytest.mark.parametrize("shape", [(64, 80), (256, 256)], ids=["small", "study_default"])
def test_png_is_pillow_with_fixed_settings(shape: tuple) -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    flat = np.full(shape, 17, np.uint8)
    for img in (noise, flat):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, **PNG_SETTINGS)
        assert encode_gray_png(img) == buf.getvalue()
    assert PNG_SETTINGS == {"format": "PNG", "compress_level": 0, "optimize": False}
    a, b = encode_gray_png(noise), encode_gray_png(flat)
    # the study's slice size too: bytes and chunks independent of the pixels, pixels only
    assert len(a) == len(b) and chunk_layout(a) == chunk_layout(b)
    assert {kind for kind, _ in chunk_layout(a)} == {"IHDR", "IDAT", "IEND"}
    decoded = Image.open(io.BytesIO(a))
    assert decoded.mode == "L" and not decoded.info
    assert np.array_equal(np.asarray(decoded), noise)
