"""Random draws of the anatomy: every draw happens here, in mm, before any voxel is touched."""

from __future__ import annotations

import numpy as np

from synthtumor.phantom.anatomy import _Anatomy
from synthtumor.phantom.body import _Body
from synthtumor.phantom.geometry import _Ellipsoid
from synthtumor.phantom.noise import _Noise
from synthtumor.phantom.tissues import HU
from synthtumor.phantom.tubes import _Tubes
from synthtumor.phantom.vessels import _vessel_tree

_NOISE_STD_HU = (10.0, 14.0)  # per-seed range of the image noise std


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _random_walk(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int, step: float
) -> np.ndarray:
    """Smoothly turning random walk (n points, mm) that bounces inside the box [lo, hi]."""
    p = rng.uniform(lo, hi)
    d = _unit(rng.normal(size=3))
    pts = [p]
    for _ in range(n - 1):
        d = _unit(d + rng.normal(0.0, 0.45, 3))
        q = p + d * step
        out = (q < lo) | (q > hi)
        d[out] = -d[out]
        p = np.clip(p + d * step, lo, hi)
        pts.append(p)
    return np.array(pts)


def _jit(rng: np.random.Generator, v, s) -> np.ndarray:
    return np.asarray(v, float) + rng.uniform(-1.0, 1.0, np.shape(v)) * np.asarray(s, float)


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    """Every random draw of one phantom's anatomy (mm, HU), in a fixed order, so one
    generator state gives one anatomy whatever the voxel grid."""
    body = _Body(rng)
    yvb = body.y_vb
    hu, noise_std = _draw_hu(rng)

    aorta = (-15.0 + rng.uniform(-4, 4), yvb + 27.0 + rng.uniform(-3, 3), rng.uniform(9.5, 12.0))
    ivc = (21.0 + rng.uniform(-4, 4), yvb + 24.0 + rng.uniform(-3, 3), 12.0, 9.0)
    parts, liver_warp, liver_texture, gb = _draw_liver(rng)
    kidneys, sinuses = _draw_kidneys(rng, yvb)
    spleen, spleen_hilum = _draw_spleen(rng)
    stomach, stomach_gas_y = _draw_stomach(rng)
    pancreas = _draw_pancreas(rng, yvb)
    colon, colon_texture = _draw_colon(rng)
    small_bowel, content = _draw_small_bowel(rng)
    ribs = _draw_ribs(rng, body)
    psoas = [(side * rng.uniform(30.0, 36.0), yvb - 2.0) for side in (1.0, -1.0)]
    zr = rng.uniform(86.0, 94.0)  # top of the right hemidiaphragm

    anat = _Anatomy(
        body=body,
        hu=hu,
        noise_std=noise_std,
        vertebra_period=rng.uniform(30.0, 36.0),
        vertebra_phase=rng.uniform(0.0, 36.0),
        aorta=aorta,
        ivc=ivc,
        liver_parts=parts,
        liver_blend=15.0,
        liver_warp=liver_warp,
        liver_texture=liver_texture,
        gallbladder=gb,
        kidneys=kidneys,
        sinuses=sinuses,
        spleen=spleen,
        spleen_hilum=spleen_hilum,
        stomach=stomach,
        stomach_gas_y=stomach_gas_y,
        pancreas=pancreas,
        colon=colon,
        colon_texture=colon_texture,
        small_bowel=small_bowel,
        bowel_content_hu=content,
        ribs=ribs,
        psoas=psoas,
        domes=(
            (55.0 + rng.uniform(-8, 8), -5.0 + rng.uniform(-8, 8), zr),
            (-60.0 + rng.uniform(-8, 8), -5.0 + rng.uniform(-8, 8), zr - rng.uniform(6.0, 14.0)),
        ),
        dome_radius=rng.uniform(110.0, 140.0),
        heart=_Ellipsoid.make(
            _jit(rng, (-20.0, 30.0, zr + 32.0), 6.0),
            _jit(rng, (58.0, 45.0, 50.0), 5.0),
            _jit(rng, (0.0, 20.0, 25.0), 8.0),
        ),
    )
    anat.fit_liver_volume(rng.uniform(1.2, 1.6))
    _draw_vessels(rng, anat)
    return anat


def _draw_hu(rng: np.random.Generator) -> tuple[dict[str, float], float]:
    """Tissue HU and the image noise std (HU) of one seed."""
    # intensities: modest per-seed variation around the nominal portal venous values
    hu = dict(HU)
    hu["liver"] = rng.uniform(97.0, 115.0)
    hu["portal_vein"] = hu["liver"] + rng.uniform(60.0, 85.0)
    hu["hepatic_vein"] = hu["portal_vein"] - rng.uniform(0.0, 15.0)
    hu["spleen"] = min(125.0, hu["liver"] + rng.uniform(0.0, 15.0))
    hu["aorta"] = rng.uniform(150.0, 185.0)
    hu["ivc"] = rng.uniform(125.0, 155.0)
    hu["kidney_cortex"] = rng.uniform(160.0, 190.0)
    hu["kidney_medulla"] = hu["kidney_cortex"] - rng.uniform(25.0, 50.0)
    hu["muscle"] = rng.uniform(45.0, 58.0)
    hu["fat_subcutaneous"] = rng.uniform(-112.0, -95.0)
    hu["fat_visceral"] = rng.uniform(-100.0, -85.0)
    hu["bone_marrow"] = rng.uniform(200.0, 290.0)
    noise_std = rng.uniform(*_NOISE_STD_HU)
    return hu, noise_std


def _draw_liver(
    rng: np.random.Generator,
) -> tuple[list[_Ellipsoid], _Noise, _Noise, _Ellipsoid]:
    """Liver ellipsoids, its shape warp and texture fields, and the gallbladder beneath it."""
    # liver: right lobe, inferior right tip, medial segment, tapering left lobe
    g = _jit(rng, (0.0, 0.0, -8.0), (6.0, 5.0, 5.0))  # whole-liver shift; dome below the top
    nominal = [
        ((70.0, 0.0, 30.0), (72.0, 78.0, 64.0), (0.0, 8.0, 0.0)),
        ((82.0, 6.0, -22.0), (44.0, 50.0, 42.0), (0.0, -12.0, 0.0)),
        ((30.0, 14.0, 38.0), (50.0, 52.0, 46.0), (0.0, 0.0, 0.0)),
        ((-6.0, 38.0, 52.0), (72.0, 34.0, 30.0), (0.0, 12.0, -22.0)),
    ]
    parts = []
    for c0, s0, ang0 in nominal:
        c = g + _jit(rng, c0, 5.0)
        s = _jit(rng, s0, np.asarray(s0) * 0.07)  # overall size is set by fit_liver_volume
        ang = _jit(rng, ang0, 8.0)
        parts.append(_Ellipsoid.make(c, s, ang))
    lo = np.array([-80.0, -110.0, -110.0])
    hi = np.array([160.0, 110.0, 130.0])
    liver_warp = _Noise(rng, lo, hi, step=30.0, amp=rng.uniform(3.5, 6.0))
    liver_texture = _Noise(rng, lo, hi, step=16.0, amp=2.5)

    gb = _Ellipsoid.make(
        _jit(rng, (42.0, 30.0, -8.0), (5.0, 5.0, 8.0)) + g,
        _jit(rng, (14.0, 14.0, 32.0), (3.0, 3.0, 6.0)),
        _jit(rng, (-35.0, 15.0, 0.0), 10.0),
    )
    return parts, liver_warp, liver_texture, gb


def _draw_kidneys(
    rng: np.random.Generator, yvb: float
) -> tuple[list[_Ellipsoid], list[_Ellipsoid]]:
    """Right and left kidneys and their renal sinuses; ``yvb``: vertebral body centre, mm."""
    # kidneys (right lower than left), long axis tilted so upper poles lean medial/posterior
    kidneys, sinuses = [], []
    for side, zc in ((1.0, -52.0), (-1.0, -34.0)):
        c = _jit(rng, (side * 62.0, yvb - 8.0, zc), (5.0, 4.0, 7.0))
        s = _jit(rng, (25.0, 20.0, 50.0), (3.0, 2.0, 5.0))
        ang = _jit(rng, (-12.0, side * 14.0, side * 30.0), 6.0)
        k = _Ellipsoid.make(c, s, ang)
        kidneys.append(k)
        # renal sinus: towards the medial, slightly anterior hilum
        # (opens through the medial surface, so hilar slices show the kidney as a "C")
        cs = k.shifted((-side * 0.75 * s[0], 0.0, 0.0)) + np.array([0.0, 0.15 * s[1], 0.0])
        sinuses.append(_Ellipsoid.make(cs, (0.5 * s[0], 0.4 * s[1], 0.5 * s[2]), ang))
    return kidneys, sinuses


def _draw_spleen(rng: np.random.Generator) -> tuple[_Ellipsoid, _Ellipsoid]:
    """Spleen and the hilar concavity cut out of it."""
    spleen = _Ellipsoid.make(
        _jit(rng, (-82.0, -28.0, 42.0), (5.0, 6.0, 8.0)),
        _jit(rng, (24.0, 52.0, 46.0), (3.0, 6.0, 6.0)),
        _jit(rng, (0.0, 0.0, -38.0), (6.0, 6.0, 8.0)),
    )
    spleen_hilum = _Ellipsoid.make(
        spleen.shifted((30.0, 0.0, 0.0)), (22.0, 30.0, 28.0), _jit(rng, (0.0, 0.0, -38.0), 5.0)
    )
    return spleen, spleen_hilum


def _draw_stomach(rng: np.random.Generator) -> tuple[_Ellipsoid, float]:
    """Stomach and the height (world y, mm) of its gas-fluid level."""
    stomach = _Ellipsoid.make(
        _jit(rng, (-42.0, 35.0, 50.0), (6.0, 5.0, 8.0)),
        _jit(rng, (36.0, 30.0, 44.0), (4.0, 4.0, 6.0)),
        _jit(rng, (0.0, 20.0, 25.0), 8.0),
    )
    stomach_gas_y = stomach.c[1] + rng.uniform(0.2, 0.55) * stomach.semi[1]
    return stomach, stomach_gas_y


def _draw_pancreas(rng: np.random.Generator, yvb: float) -> _Tubes:
    # pancreas: head near the duodenum (right) to tail at the splenic hilum (left)
    pts = np.array(
        [
            (30.0, yvb + 40.0, -15.0),
            (8.0, yvb + 45.0, -5.0),
            (-20.0, yvb + 42.0, 2.0),
            (-45.0, yvb + 30.0, 10.0),
            (-65.0, yvb + 12.0, 18.0),
        ]
    )
    pts = pts + rng.uniform(-4.0, 4.0, pts.shape)
    pancreas = _Tubes.from_polyline(
        pts, np.array([14.0, 11.0, 10.0, 9.0, 8.0]) * rng.uniform(0.9, 1.1)
    )
    return pancreas


def _draw_colon(rng: np.random.Generator) -> tuple[_Tubes, _Noise]:
    """Colon frame and the texture field that mottles its content with gas."""
    # colon frame: caecum (right low) -> ascending -> transverse (anterior) -> descending
    cp = np.array(
        [
            (72.0, 5.0, -95.0),
            (78.0, -10.0, -60.0),
            (76.0, -5.0, -32.0),
            (58.0, 30.0, -22.0),
            (25.0, 52.0, -35.0),
            (-10.0, 55.0, -40.0),
            (-45.0, 45.0, -25.0),
            (-78.0, 10.0, 0.0),
            (-85.0, -15.0, -30.0),
            (-82.0, -20.0, -65.0),
            (-78.0, -15.0, -100.0),
        ]
    )
    cp = cp + rng.uniform(-5.0, 5.0, cp.shape)
    colon = _Tubes.from_polyline(cp, rng.uniform(16.0, 22.0, len(cp)))
    colon_texture = _Noise(rng, (-130.0, -110.0, -110.0), (130.0, 110.0, 110.0), 10.0, 1.0)
    return colon, colon_texture


def _draw_small_bowel(rng: np.random.Generator) -> tuple[list[_Tubes], list[float]]:
    """Small bowel loops and the HU of each loop's content."""
    # small bowel loops in the lower central abdomen
    small_bowel, content = [], []
    for _ in range(int(rng.integers(4, 7))):
        walk = _random_walk(
            rng, np.array([-55.0, -15.0, -95.0]), np.array([50.0, 60.0, -10.0]), 28, 8.0
        )
        small_bowel.append(_Tubes.from_polyline(walk, np.full(len(walk), rng.uniform(10.0, 13.0))))
        content.append(HU["bowel_content"] + float(rng.uniform(-15.0, 15.0)))
    return small_bowel, content


def _draw_ribs(rng: np.random.Generator, body: _Body) -> _Tubes:
    yvb = body.y_vb
    # lower ribs: from the transverse processes around the body wall, descending anteriorly
    ribs = []
    z0 = rng.uniform(85.0, 105.0)
    period = rng.uniform(24.0, 30.0)
    for k in range(6):
        zk = z0 - k * period
        if zk < -45.0:
            break
        reach = 70.0 - 15.0 * k + rng.uniform(-10.0, 10.0)  # anterior end angle, degrees
        for side in (1.0, -1.0):
            th = np.radians(np.linspace(-70.0, reach, 14))
            th = np.where(side > 0, th, np.pi - th)
            drop = np.linspace(0.0, 1.0, 14) ** 1.3 * rng.uniform(45.0, 65.0)
            path = [np.array([side * 38.0, yvb - 28.0, zk + 8.0])]
            for t, dz in zip(th, drop, strict=True):
                path.append(body.layer_point(float(t), zk - dz, "ribs"))
            ribs.append(_Tubes.from_polyline(np.array(path), np.full(len(path), 3.8)))
    return _Tubes.concat(ribs)


def _inside_point(anat: _Anatomy, p: np.ndarray, towards: np.ndarray, depth: float) -> np.ndarray:
    """Move p along the line to ``towards`` until it is ``depth`` mm inside the liver."""
    for t in np.linspace(0.0, 1.0, 41):
        q = p + t * (towards - p)
        if float(anat.liver_sdf_coarse(*q[:, None])[0]) < -depth:
            return q
    return towards


def _draw_vessels(rng: np.random.Generator, anat: _Anatomy) -> None:
    """Portal tree from the hilum and hepatic tree from a confluence next to the IVC, each
    filling the whole liver (they interleave like the real ones)."""
    lo, hi = anat.liver_box()
    centre = np.mean([np.asarray(e.c) for e in anat.liver_parts[:3]], axis=0)
    # portal vein enters at the hilum on the inferomedial surface
    hilum = _inside_point(anat, _jit(rng, (38.0, 8.0, 8.0), (5.0, 5.0, 6.0)), centre, 8.0)
    yvb = anat.body.y_vb
    outside = np.array([6.0, yvb + 38.0, -12.0]) + rng.uniform(-3.0, 3.0, 3)
    r_pv = rng.uniform(6.5, 7.5)
    anat.portal_trunk = _Tubes.from_polyline(np.array([outside, hilum]), np.array([r_pv, r_pv]))
    r_t = rng.uniform(1.4, 1.7)
    anat.portal = _vessel_tree(
        rng, anat.liver_sdf_coarse, lo, hi, hilum, int(rng.integers(70, 110)), r_t, r_pv
    )
    # hepatic veins: a confluence just anterior to the IVC near the dome
    ix, iy, _, isy = anat.ivc
    zc = float(hi[2]) - 20.0
    for z in np.arange(float(hi[2]), float(lo[2]), -2.0):  # highest level with room
        q = np.array([ix, iy + isy + 8.0, z])
        if float(anat.liver_sdf_coarse(*q[:, None])[0]) < -7.0:
            zc = float(z) - 6.0
            break
    conf = _inside_point(anat, np.array([ix, iy + isy + 8.0, zc]), centre, 6.0)
    anat.hepatic = _vessel_tree(
        rng,
        anat.liver_sdf_coarse,
        lo,
        hi,
        conf,
        int(rng.integers(45, 75)),
        r_t,
        rng.uniform(5.5, 6.5),
    )
