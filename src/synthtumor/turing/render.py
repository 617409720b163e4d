"""What a reader sees: lesion centres, and a stack of axial slices around one, as uint8 pixels.

Pure NumPy/SciPy. Every case of a study is sampled on the same physical grid (a square field of
view in mm, a fixed number of pixels and slices at a fixed slice distance), whatever the CT's
own voxel size or orientation, so image size says nothing about where a case came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthtumor.conventions import AIR_HU, TUMOR, spacing_of
from synthtumor.evaluate.lesions import label_lesions


@dataclass(frozen=True)
class View:
    """The physical grid of a case's slices (the same for every case of a study).

    fov_mm: side of the square axial field of view (mm); pixels: its side in pixels;
    slices: number of axial slices, centred on the lesion; slice_mm: distance between slices
    (mm); window_hu: CT window (low, high) in HU mapped to grey 0..255.
    """

    fov_mm: float = 128.0
    pixels: int = 256
    slices: int = 15
    slice_mm: float = 2.0
    window_hu: tuple[float, float] = (-100.0, 250.0)

    def __post_init__(self) -> None:
        if not (self.fov_mm > 0 and self.slice_mm > 0):
            raise ValueError("fov_mm and slice_mm must be positive")
        if not 16 <= self.pixels <= 1024:
            raise ValueError(f"pixels must be 16..1024, got {self.pixels}")
        if not 1 <= self.slices <= 201:
            raise ValueError(f"slices must be 1..201, got {self.slices}")
        lo, hi = self.window_hu
        if not hi > lo:
            raise ValueError(f"window_hu must be (low, high) with high > low, got {self.window_hu}")


@dataclass(frozen=True)
class Lesion:
    """One connected tumor component: centroid in world RAS mm, volume in ml, voxel count."""

    centre_mm: tuple[float, float, float]
    volume_ml: float
    voxels: int


def find_lesions(
    label: np.ndarray,
    affine: np.ndarray,
    *,
    min_volume_ml: float = 0.1,
    max_count: int = 1,
    min_distance_mm: float = 30.0,
) -> list[Lesion]:
    """The largest tumor components (label == 2) of a (x, y, z) label map, for study cases.

    Components (26-connected) below ``min_volume_ml`` are ignored. Taken largest first, a
    lesion whose centroid lies within ``min_distance_mm`` of one already taken is skipped, so
    two study cases of one CT show different places. At most ``max_count`` are returned.
    """
    spacing = spacing_of(affine)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    components, n = label_lesions(label == TUMOR)
    if n == 0:
        return []
    sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
    centroids = ndimage.center_of_mass(np.ones(label.shape), components, range(1, n + 1))
    taken: list[Lesion] = []
    for idx in np.argsort(-sizes, kind="stable"):
        if len(taken) >= max_count or sizes[idx] * voxel_ml < min_volume_ml:
            break
        centre = np.asarray(affine)[:3, :3] @ np.asarray(centroids[idx]) + np.asarray(affine)[:3, 3]
        if any(np.linalg.norm(centre - np.asarray(t.centre_mm)) < min_distance_mm for t in taken):
            continue
        taken.append(Lesion((float(centre[0]), float(centre[1]), float(centre[2])),
                            float(sizes[idx] * voxel_ml),
                            int(sizes[idx])))
    return taken


def axial_grid(centre_mm: np.ndarray, view: View) -> np.ndarray:
    """World RAS mm of every pixel: shape (slices, pixels, pixels, 3).

    Radiological display: slice 0 is the most inferior; row 0 is anterior; column 0 is the
    patient's right (RAS +x), so the patient's right appears on the left of the image.
    """
    px = view.fov_mm / view.pixels
    offs = (np.arange(view.pixels) - (view.pixels - 1) / 2.0) * px
    zs = (np.arange(view.slices) - (view.slices - 1) / 2.0) * view.slice_mm
    k, r, c = np.meshgrid(zs, offs, offs, indexing="ij")
    c0 = np.asarray(centre_mm, float)
    return np.stack([c0[0] - c, c0[1] - r, c0[2] + k], axis=-1)


def render_stack(
    ct: np.ndarray, affine: np.ndarray, centre_mm: tuple[float, float, float], view: View
) -> np.ndarray:
    """Axial slices of ``ct`` (x, y, z, HU) around ``centre_mm`` (world RAS mm) on ``view``'s grid.

    Trilinear sampling in world space (any orientation or spacing); outside the CT is air.
    Returns uint8 (slices, pixels, pixels), the window mapped linearly to 0..255.
    """
    world = axial_grid(np.asarray(centre_mm), view).reshape(-1, 3)
    inv = np.linalg.inv(np.asarray(affine, float))
    ijk = world @ inv[:3, :3].T + inv[:3, 3]
    hu = ndimage.map_coordinates(
        np.asarray(ct, np.float32), ijk.T, order=1, mode="constant", cval=AIR_HU, prefilter=False
    )
    lo, hi = view.window_hu
    grey = np.clip((hu - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return np.rint(grey).astype(np.uint8).reshape(view.slices, view.pixels, view.pixels)
