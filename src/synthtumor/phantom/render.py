"""Rendering of the drawn anatomy on a voxel grid: ideal HU image and label map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from synthtumor.phantom.anatomy import _Anatomy
from synthtumor.phantom.geometry import _Grid
from synthtumor.phantom.tissues import HU
from synthtumor.phantom.tubes import _Tubes


class _Canvas:
    """Ideal (noise-free, unblurred) HU image and label map, painted in order."""

    def __init__(self, grid: _Grid) -> None:
        self.grid = grid
        self.ct = np.full(grid.shape, HU["air"], dtype=np.float32)
        self.labels = np.zeros(grid.shape, dtype=np.uint8)

    def paint(self, sl, mask: np.ndarray, label: int, hu) -> None:
        """Set label and HU (scalar or array broadcastable to the box) where mask."""
        lab = self.labels[sl]
        mask = np.broadcast_to(mask, lab.shape)
        np.copyto(lab, np.uint8(label), where=mask)
        np.copyto(self.ct[sl], np.asarray(hu, dtype=np.float32), where=mask)

    def paint_tubes(self, tubes: _Tubes, label: int, hu, where: np.ndarray | None = None) -> None:
        """Paint the rasterised tubes, optionally only where ``where``."""
        m = np.zeros(self.grid.shape, dtype=bool)
        tubes.rasterise(self.grid, m)
        if where is not None:
            m &= where
        self.paint(ALL, m, label, hu)


ALL = (slice(None), slice(None), slice(None))


def _render(anat: _Anatomy, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Ideal (noise-free, unblurred) float32 HU image and uint8 label map of ``anat`` on
    ``grid``, both of shape ``grid.shape``; tissues are painted in order, later ones win."""
    cv = _Canvas(grid)
    x, y, z = grid.full()
    cavity = _paint_wall(cv, anat, x, y, z)
    _paint_bowel(cv, anat, cavity)
    _paint_chest_and_great_vessels(cv, anat, x, y, z, cavity)
    _paint_kidneys_and_spleen(cv, anat)
    liver = _paint_liver(cv, anat, cavity)
    _paint_liver_vessels(cv, anat, liver, cavity)

    # spine last (bone wins): vertebral bodies with cortex and endplates, discs, arches
    _paint_spine(cv, anat, x, y, z)
    return cv.ct, cv.labels


def _paint_wall(
    cv: _Canvas, anat: _Anatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Body layers, ribs, paraspinal muscles and psoas; returns the visceral cavity mask."""
    hu, body, grid = anat.hu, anat.body, cv.grid
    # body layers: skin/fat, muscle wall, visceral cavity
    inside = body.layer_mask(x, y, z, "skin")
    cv.paint(ALL, inside, 7, hu["fat_subcutaneous"])
    cv.paint(ALL, body.layer_mask(x, y, z, "muscle"), 6, hu["muscle"])
    cavity = body.layer_mask(x, y, z, "cavity")
    cv.paint(ALL, cavity, 7, hu["fat_visceral"])

    # ribs sit in the wall; organs painted later take any part that pokes into the cavity
    rib = np.zeros(grid.shape, bool)
    anat.ribs.rasterise(grid, rib)
    cv.paint(ALL, rib & inside, 5, hu["rib"])
    rib[:] = False
    anat.ribs.rasterise(grid, rib, inset=1.5)
    cv.paint(ALL, rib & inside, 5, hu["bone_marrow"])

    yvb = body.y_vb
    # paraspinal muscles behind the spine and psoas growing caudally beside it
    for side in (1.0, -1.0):
        m = ((x - side * 32.0) / 27.0) ** 2 + ((y - (yvb - 50.0)) / 22.0) ** 2 < 1.0
        cv.paint(ALL, m & inside, 6, hu["muscle"])
    for px, py in anat.psoas:
        r = np.clip(6.0 + (-5.0 - z) * 0.2, 0.0, 22.0)
        m = (x - px) ** 2 + (y - py) ** 2 < r**2
        cv.paint(ALL, m, 6, hu["muscle"])
    return cavity


def _paint_bowel(cv: _Canvas, anat: _Anatomy, cavity: np.ndarray) -> None:
    hu, grid = anat.hu, cv.grid
    # bowel: colon with mottled gas/faeces, small bowel loops, stomach
    wall = np.zeros(grid.shape, bool)
    anat.colon.rasterise(grid, wall)
    lumen = np.zeros(grid.shape, bool)
    anat.colon.rasterise(grid, lumen, inset=3.0)
    wall &= cavity
    lumen &= cavity
    cv.paint(ALL, wall, 8, hu["bowel_wall"])
    tex = anat.colon_texture.on_grid(grid.axes[0], grid.axes[1], grid.axes[2])
    colon_hu = np.where(tex > 0.35, HU["air"], hu["colon_content"] + 40.0 * tex)
    cv.paint(ALL, lumen, 8, colon_hu)
    for loop, c_hu in zip(anat.small_bowel, anat.bowel_content_hu, strict=True):
        w = np.zeros(grid.shape, bool)
        loop.rasterise(grid, w)
        lum = np.zeros(grid.shape, bool)
        loop.rasterise(grid, lum, inset=2.5)
        cv.paint(ALL, w & cavity, 8, hu["bowel_wall"])
        cv.paint(ALL, lum & cavity, 8, c_hu)
    st = anat.stomach
    box = grid.box(*st.bounds())
    if box is not None:
        sl, bx, by, bz = box
        d = st.sdf(bx, by, bz)
        cav = cavity[sl]
        cv.paint(sl, (d < 0) & cav, 8, hu["bowel_wall"])
        lum = (d < -4.0) & cav
        cv.paint(sl, lum & (by <= anat.stomach_gas_y), 8, hu["stomach_fluid"])
        cv.paint(sl, lum & (by > anat.stomach_gas_y), 8, HU["air"])
    cv.paint_tubes(anat.pancreas, 8, hu["pancreas"], where=cavity)


def _paint_chest_and_great_vessels(
    cv: _Canvas, anat: _Anatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray, cavity: np.ndarray
) -> None:
    hu, grid = anat.hu, cv.grid
    # lung bases and heart above the diaphragm (4 mm of diaphragm muscle)
    dome = anat.dome_z(x, y)  # (nx, ny, 1)
    above = cavity & (z > dome)
    cv.paint(ALL, above, 6, hu["muscle"])
    cv.paint(ALL, cavity & (z > dome + 4.0), 0, hu["lung"])
    box = grid.box(*anat.heart.bounds())
    if box is not None:
        sl, bx, by, bz = box
        cv.paint(sl, (anat.heart.sdf(bx, by, bz) < 0) & above[sl], 8, hu["heart"])

    # great vessels along the whole length
    ax_, ay_, ar_ = anat.aorta
    cv.paint(ALL, (x - ax_) ** 2 + (y - ay_) ** 2 < ar_**2, 8, hu["aorta"])
    ix, iy, isx, isy = anat.ivc
    cv.paint(ALL, ((x - ix) / isx) ** 2 + ((y - iy) / isy) ** 2 < 1.0, 8, hu["ivc"])


def _paint_kidneys_and_spleen(cv: _Canvas, anat: _Anatomy) -> None:
    hu, body, grid = anat.hu, anat.body, cv.grid
    # kidneys: cortex shell, medulla, sinus fat at the hilum
    for k, sn in zip(anat.kidneys, anat.sinuses, strict=True):
        box = grid.box(*k.bounds())
        if box is None:
            continue
        sl, bx, by, bz = box
        d = k.sdf(bx, by, bz)
        kid = d < 0
        cv.paint(sl, kid, 3, hu["kidney_cortex"])
        cv.paint(sl, d < -6.0, 3, hu["kidney_medulla"])
        cv.paint(sl, kid & (sn.sdf(bx, by, bz) < 0), 7, hu["fat_renal_sinus"])

    # spleen, with the hilar concavity cut out
    sp = anat.spleen
    box = grid.box(*sp.bounds())
    if box is not None:
        sl, bx, by, bz = box
        m = (sp.sdf(bx, by, bz) < 0) & (anat.spleen_hilum.sdf(bx, by, bz) > 0)
        m &= (body.cavity_sdf(bx, by, bz) < -2.0) & (bz < anat.dome_z(bx, by) - 3.0)
        cv.paint(sl, m, 4, hu["spleen"])


def _paint_liver(cv: _Canvas, anat: _Anatomy, cavity: np.ndarray) -> np.ndarray:
    """Gallbladder, then the liver (its largest connected piece); returns the liver mask."""
    hu, grid = anat.hu, cv.grid
    # gallbladder, then liver (largest connected piece) and its vessels
    gb = anat.gallbladder
    box = grid.box(*gb.bounds())
    if box is not None:
        sl, bx, by, bz = box
        cv.paint(sl, (gb.sdf(bx, by, bz) < 0) & cavity[sl], 8, hu["gallbladder"])
    liver = np.zeros(grid.shape, bool)
    box = grid.box(*anat.liver_box())
    if box is not None:
        sl, bx, by, bz = box
        # exact sdf only in a band around the surface; the lattice decides elsewhere
        d0 = anat.liver_sdf_coarse_grid(bx, by, bz)
        m = d0 < 0
        bi = np.nonzero(np.abs(d0) < 6.0)
        warp = anat.liver_warp.on_grid(bx, by, bz)[bi]
        m[bi] = anat.liver_sdf(bx.ravel()[bi[0]], by.ravel()[bi[1]], bz.ravel()[bi[2]], warp) < 0
        lab, n = ndimage.label(m)
        if n > 1:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            m = lab == int(np.argmax(sizes))
        liver[sl] = m
        cv.paint(sl, m, 1, hu["liver"] + anat.liver_texture.on_grid(bx, by, bz))
    return liver


def _paint_liver_vessels(
    cv: _Canvas, anat: _Anatomy, liver: np.ndarray, cavity: np.ndarray
) -> None:
    """Portal trunk outside the liver, portal and hepatic trees inside it."""
    hu, grid = anat.hu, cv.grid
    trunk = np.zeros(grid.shape, bool)
    anat.portal_trunk.rasterise(grid, trunk)
    cv.paint(ALL, trunk & ~liver & cavity, 8, hu["portal_vein"])
    portal = trunk
    anat.portal.rasterise(grid, portal)
    hepatic = np.zeros(grid.shape, bool)
    anat.hepatic.rasterise(grid, hepatic)
    # thin twigs: the centreline keeps them connected at any spacing
    centre = np.zeros(grid.shape, bool)
    anat.portal.centreline(grid, centre)
    portal |= centre
    centre_h = np.zeros(grid.shape, bool)
    anat.hepatic.centreline(grid, centre_h)
    hepatic |= centre_h
    centre |= centre_h
    portal &= liver
    hepatic &= liver
    # a tube may clip a lip of the liver and leave a fleck apart from its tree: keep only
    # pieces that carry a tree's centreline
    lab, _ = ndimage.label(portal | hepatic)
    keep = np.isin(lab, np.unique(lab[centre & liver]))
    cv.paint(ALL, portal & keep, 2, hu["portal_vein"])
    cv.paint(ALL, hepatic & keep, 2, hu["hepatic_vein"])


def _paint_spine(cv: _Canvas, anat: _Anatomy, x, y, z) -> None:
    hu = anat.hu
    yvb = anat.body.y_vb
    # gentle lordosis: the column bows anteriorly in the lumbar region
    yz = yvb + 4.0 * np.cos(z / 120.0)
    sx, sy = 22.0, 17.0
    vb = ((x / sx) ** 2 + ((y - yz) / sy) ** 2) < 1.0
    vb_in = ((x / (sx - 2.5)) ** 2 + ((y - yz) / (sy - 2.5)) ** 2) < 1.0
    phase = np.mod(z - anat.vertebra_phase, anat.vertebra_period)  # (1,1,nz)
    disc = phase < 8.0
    endplate = (phase < 9.5) | (phase > anat.vertebra_period - 1.5)
    cv.paint(ALL, vb, 5, hu["bone_cortex"])
    cv.paint(ALL, vb_in & ~endplate, 5, hu["bone_marrow"])
    cv.paint(ALL, vb & disc, 8, hu["disc"])
    # posterior arch around the canal in every slice, processes once per level
    yc = yz - 30.0
    rc2 = x**2 + (y - yc) ** 2
    cv.paint(ALL, (rc2 < 16.0**2) & (y < yz - 8.0), 5, hu["bone_cortex"] * 0.75)
    # processes once per level: tall spinous process, short transverse processes
    ph = np.abs(phase - anat.vertebra_period * 0.6)
    spinous = (np.abs(x) < 3.5) & (y < yc - 10.0) & (y > yc - 34.0) & (ph < 9.0)
    transverse = (np.abs(x) < 30.0) & (np.abs(y - yc - 7.0 + 0.12 * np.abs(x)) < 3.0) & (ph < 5.0)
    cv.paint(ALL, spinous | transverse, 5, hu["bone_cortex"] * 0.75)
    cv.paint(ALL, rc2 < 9.0**2, 8, hu["spinal_canal"])
