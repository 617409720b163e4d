"""Default values of the training options, in one place: ``TrainConfig``, the ``train``
command line and the benchmark presets' ``TrainSettings`` all take them from here.

Torch-free on purpose (the presets and the command line load without torch); roi in voxels,
spacing in mm.
"""

from __future__ import annotations

REAL_FRACTION = 0.5  # mixed mode: share of real-tumor samples
FEATURE_SIZE = 48
ROI = (96, 96, 96)
SPACING_MM = 1.0
BATCH_SIZE = 2
STEPS = 1000
LR = 4e-4
WARMUP = 50
SYNTH_PROB = 0.9
SAVE_EVERY = 100
WORKERS = 2
CACHE = "memory"
SEED = 0
