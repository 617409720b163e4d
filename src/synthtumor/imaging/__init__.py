"""Medical image I/O and geometry: arrays in (x, y, z) order, affines voxel -> RAS+ mm."""

from synthtumor.imaging.io import (
    ct_values_to_store,
    looks_like_hu,
    read_case_labels,
    read_ct,
    read_image,
    read_labels,
    read_mask,
    write_nifti,
)
from synthtumor.imaging.resample import resample_nearest, resample_to_spacing, same_grid
from synthtumor.imaging.volume import Volume

__all__ = [
    "Volume",
    "ct_values_to_store",
    "looks_like_hu",
    "read_case_labels",
    "read_ct",
    "read_image",
    "read_labels",
    "read_mask",
    "resample_nearest",
    "resample_to_spacing",
    "same_grid",
    "write_nifti",
]
