"""A 3D image and its voxel-to-world geometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthtumor import conventions


# eq=False: the default __eq__ would compare arrays element-wise and then fail on `bool()`.
@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image on a regular grid.

    Attributes:
        array: voxel values, shape (x, y, z) = (i, j, k) index order, as nibabel's
            ``get_fdata()`` (not SimpleITK's (z, y, x)).
        affine: 4x4 float64 matrix mapping homogeneous voxel indices (i, j, k, 1) to world
            RAS+ coordinates in mm (NIfTI convention; index (0, 0, 0) is the centre of the
            first voxel).
        path: where the image was read from, used in error messages; None if built in memory.
        stored_dtype: the voxel type in the file when ``array`` was converted on reading (a CT
            is read as float32), so outputs can keep it; None if not converted.
    """

    array: np.ndarray
    affine: np.ndarray
    path: str | None = None
    stored_dtype: np.dtype | None = None

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
        if np.ndim(self.array) != 3:
            raise ValueError(f"array must be 3D (x, y, z), got shape {np.shape(self.array)}")
        # frozen dataclass: normalise the field in place through object.__setattr__
        object.__setattr__(self, "affine", affine)
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along array axes (x, y, z): column norms of ``affine[:3, :3]``."""
        return conventions.spacing_of(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape in (x, y, z) voxels."""
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """Map voxel indices to world RAS+ coordinates.

        Args:
            ijk: (N, 3) voxel indices in (i, j, k) order (fractional allowed), or a single (3,).

        Returns:
            float64 array of the same shape: world coordinates in mm (R, A, S).
        """
        pts = np.asarray(ijk, dtype=np.float64)
        world: np.ndarray = pts @ self.affine[:3, :3].T + self.affine[:3, 3]
        return world

    def axis_codes(self) -> tuple[str, str, str]:
        """Anatomical direction each array axis points to, e.g. ``('R', 'A', 'S')``."""
        return conventions.axis_codes(self.affine)

    def cranio_caudal_axis(self) -> int:
        """Index (0, 1 or 2) of the array axis whose direction is closest to world S (or I)."""
        return conventions.cranio_caudal_axis(self.affine)
