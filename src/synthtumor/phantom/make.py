"""``make_phantom``: draw the anatomy, render it and simulate the scanner (blur, noise)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthtumor.errors import InputError
from synthtumor.phantom.draw import _draw_anatomy
from synthtumor.phantom.geometry import _Grid
from synthtumor.phantom.render import _render
from synthtumor.phantom_scan import Scan, phase_hu

_NOISE_CORR_VOX = 0.6  # Gaussian sigma (voxels) that correlates the white noise
_PSF_SIGMA_MM = 0.75  # scanner blur; voxel averaging is added per axis (partial volume)


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic abdominal CT.

    Attributes:
        ct: float32 HU, shape ``(nx, ny, nz)``, index order ``(x, y, z)``.
        liver: uint8 0/1 liver mask, vessels inside the liver included.
        vessels: uint8 0/1, the enhanced vessel tree inside the liver (subset of ``liver``).
        affine: float64 4x4, voxel index -> world RAS+ mm (diagonal spacing, centred origin).
        labels: uint8 organ map with the ids of :data:`ORGANS`.
    """

    ct: np.ndarray
    liver: np.ndarray
    vessels: np.ndarray
    affine: np.ndarray
    labels: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along axes (x, y, z)."""
        d = np.diag(self.affine)[:3]
        return (float(d[0]), float(d[1]), float(d[2]))


def _check3(name: str, v) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64).reshape(3)
    except (TypeError, ValueError) as err:
        raise InputError(None, f"{name} must be three numbers, got {v!r}") from err
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InputError(None, f"{name} must be three positive numbers, got {v!r}")
    return a


def make_phantom(
    seed: int | np.random.Generator = 0,
    spacing: tuple[float, float, float] = (1.5, 1.5, 1.5),
    shape_mm: tuple[float, float, float] = (300.0, 220.0, 200.0),
    scan: Scan | None = None,
) -> Phantom:
    """Draw a synthetic portal-venous-phase abdominal CT.

    Args:
        seed: integer seed or a ``numpy.random.Generator``; every random draw comes from it,
            so the same integer gives byte-identical arrays.
        spacing: voxel size in mm along (x, y, z); anisotropic spacing is fine.
        shape_mm: field of view in mm along (x, y, z), centred on world (0, 0, 0). The anatomy
            has absolute size (body about 285 x 200 mm, liver within z = -100 to +90 mm), so
            a smaller field of view crops it and a larger one shows more air, chest or pelvis.
        scan: contrast phase, noise std and scanner blur (see ``synthtumor.phantom_scan``);
            None: the nominal portal venous scan. The anatomy does not depend on it.

    Returns:
        A :class:`Phantom`; ``ct`` has shape ``round(shape_mm / spacing)`` in (x, y, z) order,
        +x = patient right (RAS+), liver in the high-x half.

    Examples
    --------
    >>> import numpy as np
    >>> ph = make_phantom(0, spacing=(4.0, 4.0, 4.0))
    >>> ph.ct.shape, ph.ct.dtype, ph.liver.dtype
    ((75, 55, 50), dtype('float32'), dtype('uint8'))
    >>> np.diag(ph.affine).tolist()
    [4.0, 4.0, 4.0, 1.0]
    >>> bool(50 < np.median(ph.ct[ph.liver == 1]) < 150)  # liver in HU, portal-venous phase
    True
    >>> bool(1000 < ph.liver.sum() * 4.0**3 / 1000 < 2500)  # liver volume in ml
    True
    """
    sp = _check3("spacing", spacing)
    fov = _check3("shape_mm", shape_mm)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # separate streams: anatomy draws never depend on the grid, noise draws do
    anat_rng, noise_rng = rng.spawn(2)
    anat = _draw_anatomy(anat_rng)
    psf, noise_std, grain = _PSF_SIGMA_MM, anat.noise_std, _NOISE_CORR_VOX
    if scan is not None:  # a third stream: the nominal scan's draws stay as they were
        anat.hu = phase_hu(anat.hu, scan.phase, rng.spawn(1)[0])
        psf = scan.psf_mm
        noise_std = anat.noise_std if scan.noise_std_hu is None else scan.noise_std_hu
        grain = _NOISE_CORR_VOX * psf / _PSF_SIGMA_MM  # sharper kernel, finer noise grain
    grid = _Grid(sp, fov)
    ct, labels = _render(anat, grid)

    # partial volume: scanner PSF plus the box average over each voxel's extent (var s^2/12)
    sigma = np.sqrt(psf**2 + sp**2 / 12.0) / sp
    ct = ndimage.gaussian_filter(ct, sigma, output=np.float32, truncate=3.0)
    noise = noise_rng.standard_normal(grid.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, grain, output=np.float32, truncate=3.0)
    noise *= np.float32(noise_std / max(float(noise.std()), 1e-6))
    ct += noise
    np.clip(ct, -1024.0, 3071.0, out=ct)

    liver = ((labels == 1) | (labels == 2)).astype(np.uint8)
    vessels = (labels == 2).astype(np.uint8)
    return Phantom(ct=ct, liver=liver, vessels=vessels, affine=grid.affine, labels=labels)
