"""Seeded procedural abdominal CT phantom: the project's embedded default data.

``make_phantom`` draws an upper abdomen in the portal venous phase of a contrast CT: body
outline in air, subcutaneous fat, abdominal wall muscle, spine and lower ribs, aorta and IVC,
a lobulated liver (1.2-1.6 l) with space-filling enhanced portal and hepatic vein trees,
gallbladder, kidneys, spleen, stomach, pancreas, colon and small bowel in mesenteric fat, and
the diaphragm with lung bases and the bottom of the heart in the top slices.

Conventions
-----------
* Arrays are indexed ``(x, y, z)`` = ``(axis 0, axis 1, axis 2)``.
* World coordinates are RAS+ millimetres: +x points to the patient's **right**, +y anterior,
  +z superior. The affine is ``diag(sx, sy, sz, 1)`` with an origin that puts the volume
  centre at world (0, 0, 0), so increasing index 0 moves towards the patient's right
  (the liver sits at positive x / high index 0), index 1 moves posterior -> anterior and
  index 2 inferior -> superior.
* Intensities are Hounsfield units (HU), float32.
* All anatomy is drawn in millimetres from random draws that do not depend on the voxel grid,
  so one seed gives the same anatomy at any spacing and field of view; only the image noise
  depends on the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from synthtumor.errors import InputError
from synthtumor.phantom_scan import Scan, phase_hu

__all__ = ["ORGANS", "HU", "Phantom", "make_phantom"]

#: Label ids of ``Phantom.labels``.
ORGANS: dict[int, str] = {
    0: "background",  # air outside the body and lung bases (bowel gas is 8)
    1: "liver",  # parenchyma, vessels excluded
    2: "vessels",  # enhanced portal / hepatic veins inside the liver
    3: "kidneys",  # cortex and medulla (renal sinus fat is 7)
    4: "spleen",
    5: "bone",  # spine (vertebral bodies, posterior arches) and ribs
    6: "muscle",  # abdominal wall, paraspinal muscles, psoas, diaphragm
    7: "fat",  # subcutaneous, visceral, renal sinus
    8: "soft_tissue",  # the rest: bowel, stomach, pancreas, gallbladder, aorta, IVC, heart, discs
}

#: Nominal HU of each tissue before per-seed variation, blur and noise (portal venous phase).
HU: dict[str, float] = {
    "air": -1000.0,
    "fat_subcutaneous": -105.0,
    "fat_visceral": -95.0,
    "fat_renal_sinus": -70.0,
    "muscle": 50.0,
    "liver": 105.0,
    "portal_vein": 180.0,
    "hepatic_vein": 170.0,
    "aorta": 165.0,
    "ivc": 140.0,
    "kidney_cortex": 175.0,
    "kidney_medulla": 135.0,
    "spleen": 115.0,
    "pancreas": 95.0,
    "gallbladder": 10.0,
    "bowel_wall": 45.0,
    "bowel_content": 25.0,
    "stomach_fluid": 15.0,
    "colon_content": 0.0,
    "bone_cortex": 800.0,
    "bone_marrow": 250.0,
    "rib": 600.0,
    "disc": 90.0,
    "spinal_canal": 20.0,
    "lung": -850.0,
    "heart": 130.0,
}

_NOISE_STD_HU = (10.0, 14.0)  # per-seed range of the image noise std
_NOISE_CORR_VOX = 0.6  # Gaussian sigma (voxels) that correlates the white noise
_PSF_SIGMA_MM = 0.75  # scanner blur; voxel averaging is added per axis (partial volume)
_LATTICE_MM = 4.0  # grid-independent lattice for the liver volume fit and fast sdf look-ups


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


# ----------------------------------------------------------------------------------------------
# Geometry helpers (all in world mm). Functions take broadcastable x, y, z arrays so the same
# code serves voxel boxes ((n,1,1), (1,n,1), (1,1,n)) and point lists ((m,), (m,), (m,)).
# ----------------------------------------------------------------------------------------------


class _Grid:
    """Voxel grid: shape, spacing (mm) and world coordinates of voxel centres per axis."""

    def __init__(self, spacing: np.ndarray, fov_mm: np.ndarray) -> None:
        self.spacing = spacing
        self.shape = tuple(max(1, int(round(f / s))) for f, s in zip(fov_mm, spacing, strict=True))
        n = np.asarray(self.shape, dtype=np.float64)
        self.origin = -(n - 1.0) / 2.0 * spacing  # volume centred on world 0
        self.axes = [
            (self.origin[k] + np.arange(self.shape[k]) * spacing[k]).astype(np.float32)
            for k in range(3)
        ]

    @property
    def affine(self) -> np.ndarray:
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def full(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable world coordinates of the whole grid."""
        ax = self.axes
        return ax[0][:, None, None], ax[1][None, :, None], ax[2][None, None, :]

    def box(
        self, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
        """Index slices and broadcastable world coordinates of voxels inside [lo, hi] mm."""
        i0 = np.floor((np.asarray(lo) - self.origin) / self.spacing).astype(int)
        i1 = np.ceil((np.asarray(hi) - self.origin) / self.spacing).astype(int) + 1
        i0 = np.clip(i0, 0, self.shape)
        i1 = np.clip(i1, 0, self.shape)
        if np.any(i1 <= i0):
            return None
        sl = (slice(i0[0], i1[0]), slice(i0[1], i1[1]), slice(i0[2], i1[2]))
        ax = self.axes
        return (
            sl,
            ax[0][sl[0], None, None],
            ax[1][None, sl[1], None],
            ax[2][None, None, sl[2]],
        )

    def index_of(self, pts: np.ndarray) -> np.ndarray:
        """Nearest voxel index (int) of world points (m, 3)."""
        return np.rint((pts - self.origin) / self.spacing).astype(np.int64)


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix (local -> world) from angles in degrees about x, then y, then z."""
    a, b, c = np.radians([rx, ry, rz])
    rot_x = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rot_y = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rot_z = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


@dataclass(frozen=True)
class _Ellipsoid:
    """Rotated ellipsoid: centre (mm), semi-axes (mm) and local -> world rotation."""

    c: tuple[float, float, float]
    semi: tuple[float, float, float]
    rot: tuple[tuple[float, float, float], ...]

    @staticmethod
    def make(c, semi, angles=(0.0, 0.0, 0.0)) -> _Ellipsoid:
        r = _rotation(*angles)
        return _Ellipsoid(
            tuple(float(v) for v in c),
            tuple(float(v) for v in semi),
            tuple(tuple(float(v) for v in row) for row in r),
        )

    def sdf(self, x, y, z) -> np.ndarray:
        """Approximate signed distance (mm, negative inside); exact to first order at the
        surface, which is all that thresholds and blending need."""
        d = (x - self.c[0], y - self.c[1], z - self.c[2])
        r = self.rot
        k2 = 0.0
        g2 = 0.0
        for i in range(3):
            # local coordinate q_i = column i of R dotted with d (R^T d); skip zero terms
            q = 0.0
            for j in range(3):
                if abs(r[j][i]) > 1e-9:
                    q = q + r[j][i] * d[j]
            a = self.semi[i]
            k2 = k2 + (q / a) ** 2
            g2 = g2 + (q / (a * a)) ** 2
        k = np.sqrt(k2)
        # f/|grad f| for f = |q/a| - 1; the epsilons give the limit -min(semi) at the centre
        eps = 1e-3
        return (k - 1.0) * (k + eps) / (np.sqrt(g2) + eps / min(self.semi))

    def bounds(self, pad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        r = max(self.semi) + pad
        c = np.asarray(self.c)
        return c - r, c + r

    def shifted(self, local_offset) -> np.ndarray:
        """World point at ``local_offset`` (mm, in the ellipsoid frame) from the centre."""
        return np.asarray(self.c) + np.asarray(self.rot) @ np.asarray(local_offset, dtype=float)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth minimum (polynomial) of two distance fields, blend width k mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _ellipse_sdf(dx, dy, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipse (infinite along z)."""
    k = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
    g = np.sqrt((dx / ax**2) ** 2 + (dy / ay**2) ** 2)
    eps = 1e-3
    return (k - 1.0) * (k + eps) / (g + eps / min(ax, ay))


def _linear_matrix(coords: np.ndarray, lo: float, step: float, n: int) -> np.ndarray:
    """(len(coords), n) float32 weights of linear interpolation on the lattice lo + i*step."""
    u = np.clip((coords.astype(np.float64) - lo) / step, 0.0, n - 1.0)
    i = np.minimum(np.floor(u).astype(np.int64), max(n - 2, 0))
    t = u - i
    m = np.zeros((coords.size, n), dtype=np.float32)
    rows = np.arange(coords.size)
    m[rows, i] = 1.0 - t
    m[rows, np.minimum(i + 1, n - 1)] += t
    return m


class _Noise:
    """Smooth random field: cubic B-spline through random coefficients on a fixed mm lattice.

    The lattice is anchored in world mm (not on the voxel grid), so the field is identical at
    any spacing. ``amp`` is the approximate standard deviation of the field.
    """

    # integral of the squared cubic B-spline: variance factor per dimension
    _VAR1D = 151.0 / 315.0

    def __init__(self, rng: np.random.Generator, lo, hi, step: float, amp: float) -> None:
        self.step = float(step)
        self.lo = np.asarray(lo, dtype=float) - 2.0 * step
        n = np.ceil((np.asarray(hi, dtype=float) - self.lo) / step).astype(int) + 3
        scale = amp / math.sqrt(self._VAR1D**3)
        self.coef = (rng.standard_normal(tuple(n)) * scale).astype(np.float32)

    @staticmethod
    def _weights(u: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (m, 4) and cubic B-spline weights (m, 4) at lattice coordinates u."""
        u = np.clip(u, 1.0, n - 3.0)  # outside the lattice: hold the edge value
        i = np.floor(u).astype(np.int64)
        t = (u - i)[:, None]
        w = (
            np.concatenate(
                [
                    (1 - t) ** 3,
                    3 * t**3 - 6 * t**2 + 4,
                    -3 * t**3 + 3 * t**2 + 3 * t + 1,
                    t**3,
                ],
                axis=1,
            )
            / 6.0
        )
        idx = i[:, None] + np.arange(-1, 3)[None, :]
        return np.clip(idx, 0, n - 1), w

    def _matrix(self, coords: np.ndarray, axis: int) -> np.ndarray:
        n = self.coef.shape[axis]
        idx, w = self._weights((coords.astype(np.float64) - self.lo[axis]) / self.step, n)
        m = np.zeros((coords.size, n), dtype=np.float32)
        rows = np.repeat(np.arange(coords.size), 4)
        np.add.at(m, (rows, idx.ravel()), w.ravel().astype(np.float32))
        return m

    def on_grid(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Field on the tensor grid of 1-D world coordinates -> float32 (len x, len y, len z)."""
        wx = self._matrix(np.ravel(xs), 0)
        wy = self._matrix(np.ravel(ys), 1)
        wz = self._matrix(np.ravel(zs), 2)
        t = np.tensordot(self.coef, wz, axes=([2], [1]))  # (gx, gy, nz)
        t = np.tensordot(t, wy, axes=([1], [1]))  # (gx, nz, ny)
        t = np.tensordot(wx, t, axes=([1], [0]))  # (nx, nz, ny)
        return np.ascontiguousarray(t.transpose(0, 2, 1))

    def at(self, x, y, z) -> np.ndarray:
        """Field at points given as broadcastable arrays (uses the grid path for boxes)."""
        x, y, z = np.asarray(x), np.asarray(y), np.asarray(z)
        if x.ndim == 3 and x.shape[1:] == (1, 1) and y.shape[::2] == (1, 1):
            return self.on_grid(x, y, z)
        p = np.broadcast_arrays(x, y, z)
        shape = p[0].shape
        ix, wx = self._weights((p[0].ravel() - self.lo[0]) / self.step, self.coef.shape[0])
        iy, wy = self._weights((p[1].ravel() - self.lo[1]) / self.step, self.coef.shape[1])
        iz, wz = self._weights((p[2].ravel() - self.lo[2]) / self.step, self.coef.shape[2])
        c = self.coef[ix[:, :, None, None], iy[:, None, :, None], iz[:, None, None, :]]
        w = wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]
        return (c * w).sum(axis=(1, 2, 3)).reshape(shape)


# ----------------------------------------------------------------------------------------------
# Tubes: polylines with a radius per vertex (vessels, bowel, ribs), rasterised by the distance
# of voxel centres to each segment.
# ----------------------------------------------------------------------------------------------


@dataclass
class _Tubes:
    """Segments a->b with radii ra->rb, all mm. Arrays of shape (m, 3) and (m,)."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray

    @staticmethod
    def from_polyline(points: np.ndarray, radii: np.ndarray) -> _Tubes:
        p = np.asarray(points, dtype=float)
        r = np.asarray(radii, dtype=float)
        return _Tubes(p[:-1], p[1:], r[:-1], r[1:])

    @staticmethod
    def concat(parts: list[_Tubes]) -> _Tubes:
        if not parts:
            z3, z1 = np.zeros((0, 3)), np.zeros(0)
            return _Tubes(z3, z3, z1, z1)
        return _Tubes(
            np.concatenate([t.a for t in parts]),
            np.concatenate([t.b for t in parts]),
            np.concatenate([t.ra for t in parts]),
            np.concatenate([t.rb for t in parts]),
        )

    def rasterise(self, grid: _Grid, out: np.ndarray, inset: float = 0.0) -> None:
        """OR into bool ``out`` every voxel whose centre is within (radius - inset) mm."""
        for a, b, ra, rb in zip(self.a, self.b, self.ra - inset, self.rb - inset, strict=True):
            if max(ra, rb) <= 0:
                continue
            rmax = max(ra, rb)
            box = grid.box(np.minimum(a, b) - rmax, np.maximum(a, b) + rmax)
            if box is None:
                continue
            sl, x, y, z = box
            # python floats keep the float32 box arithmetic in float32
            dx, dy, dz = (float(v) for v in b - a)
            ra, rb = float(ra), float(rb)
            dd = dx * dx + dy * dy + dz * dz
            px, py, pz = x - float(a[0]), y - float(a[1]), z - float(a[2])
            if dd > 1e-9:
                t = np.clip((px * dx + py * dy + pz * dz) / dd, 0.0, 1.0)
            else:
                t = np.zeros(np.broadcast_shapes(px.shape, py.shape, pz.shape), np.float32)
            ex, ey, ez = px - t * dx, py - t * dy, pz - t * dz
            r = np.maximum(ra + t * (rb - ra), 0.0)
            out[sl] |= ex * ex + ey * ey + ez * ez <= r * r

    def centreline(self, grid: _Grid, out: np.ndarray) -> None:
        """Mark a face-connected (6-connected) chain of voxels along every segment, so a
        tube thinner than a voxel still rasterises as one connected piece."""
        step = 0.3 * float(grid.spacing.min())
        for a, b in zip(self.a, self.b, strict=True):
            n = max(2, int(math.ceil(float(np.linalg.norm(b - a)) / step)) + 1)
            pts = a[None, :] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None, :]
            idx = grid.index_of(pts)
            # staircase between consecutive voxels: change one axis at a time
            s1 = idx[:-1].copy()
            s1[:, 0] = idx[1:, 0]
            s2 = s1.copy()
            s2[:, 1] = idx[1:, 1]
            allidx = np.concatenate([idx, s1, s2])
            ok = np.all((allidx >= 0) & (allidx < np.asarray(grid.shape)), axis=1)
            allidx = allidx[ok]
            out[allidx[:, 0], allidx[:, 1], allidx[:, 2]] = True


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


# the 13 "forward" neighbours of a lattice node (the other 13 are their negatives)
_HALF_OFFSETS = [
    (i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) > (0, 0, 0)
]


def _vessel_tree(
    rng: np.random.Generator,
    sdf: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    root: np.ndarray,
    n_terminals: int,
    r_terminal: float,
    r_root: float,
    step: float = 5.0,
) -> _Tubes:
    """Random branching vessel tree filling the region sdf < 0 (all lengths in mm).

    A jittered lattice of nodes (``step`` mm apart, at least 3.5 mm inside) is joined to its
    26 neighbours (edges whose midpoint is at least 3 mm inside) with edge costs = length x
    a random smooth factor (tortuosity) x a penalty near the surface (vessels run inside).
    The tree is the union of the cheapest paths from ``root`` to ``n_terminals`` terminals
    spread by farthest-point sampling, so it is connected, stays inside and fills the organ.
    A node's radius follows Murray's law with flow = number of terminals it drains,
    r = r_terminal * flow^(1/3) (capped at ``r_root``), and the paths are smoothed to hide
    the lattice directions.
    """
    axes = [np.arange(lo[k], hi[k] + step, step) for k in range(3)]
    shape = tuple(len(a) for a in axes)
    pos = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    pos = pos + rng.uniform(-0.3 * step, 0.3 * step, pos.shape)
    depth = -sdf(pos[..., 0], pos[..., 1], pos[..., 2])
    inside = depth > 3.5
    ids = np.full(shape, -1, dtype=np.int64)
    ids[inside] = np.arange(int(inside.sum()))
    nodes = pos[inside]
    n = len(nodes)
    if n < 2:
        z3, z1 = np.zeros((0, 3)), np.zeros(0)
        return _Tubes(z3, z3, z1, z1)
    tort = _Noise(rng, lo, hi, step=18.0, amp=0.45)
    cost = np.exp(tort.at(nodes[:, 0], nodes[:, 1], nodes[:, 2])) * (
        1.0 + 3.0 * np.exp(-(depth[inside] - 3.5) / 4.0)
    )
    rows, cols = [], []
    for off in _HALF_OFFSETS:
        src = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(off, shape, strict=True))
        dst = tuple(slice(max(0, o), s - max(0, -o)) for o, s in zip(off, shape, strict=True))
        a, b = ids[src].ravel(), ids[dst].ravel()
        ok = (a >= 0) & (b >= 0)
        rows.append(a[ok])
        cols.append(b[ok])
    ra, cb = np.concatenate(rows), np.concatenate(cols)
    # drop edges that cut through a notch of the surface: the midpoint must be inside too
    mid = 0.5 * (nodes[ra] + nodes[cb])
    ok = sdf(mid[:, 0], mid[:, 1], mid[:, 2]) < -3.0
    ra, cb = ra[ok], cb[ok]
    w = np.linalg.norm(nodes[ra] - nodes[cb], axis=1) * 0.5 * (cost[ra] + cost[cb])
    graph = sparse.coo_matrix((w, (ra, cb)), shape=(n, n)).tocsr()
    r0 = int(np.argmin(np.sum((nodes - root) ** 2, axis=1)))
    dist, pred = csgraph.dijkstra(graph, directed=False, indices=r0, return_predecessors=True)

    # terminals: farthest-point sampling among reachable nodes a little deeper inside
    cand = np.nonzero(np.isfinite(dist) & (depth[inside] > 5.0))[0]
    if len(cand) == 0:
        cand = np.nonzero(np.isfinite(dist))[0]
    terms = [int(cand[rng.integers(len(cand))])]
    d2 = np.sum((nodes[cand] - nodes[terms[0]]) ** 2, axis=1)
    for _ in range(min(n_terminals, len(cand)) - 1):
        # pick among the few farthest, not the single farthest: less regular spacing
        top = np.argpartition(d2, -3)[-3:] if len(d2) > 3 else np.arange(len(d2))
        k = int(top[rng.integers(len(top))])
        terms.append(int(cand[k]))
        d2 = np.minimum(d2, np.sum((nodes[cand] - nodes[cand[k]]) ** 2, axis=1))

    flow = np.zeros(n, dtype=np.int64)
    for t in terms:
        v = t
        while v != r0 and v >= 0:
            flow[v] += 1
            v = int(pred[v])
    flow[r0] = len(terms)
    used = np.nonzero(flow > 0)[0]
    child = used[used != r0]
    parent = pred[child]

    # smooth the polylines (root and terminals fixed) to hide the lattice
    p = nodes.copy()
    fixed = np.zeros(n, bool)
    fixed[r0] = True
    fixed[terms] = True
    for _ in range(3):
        acc = np.zeros_like(p)
        deg = np.zeros(n)
        np.add.at(acc, child, p[parent])
        np.add.at(acc, parent, p[child])
        np.add.at(deg, child, 1.0)
        np.add.at(deg, parent, 1.0)
        move = np.nonzero((deg > 0) & ~fixed)[0]
        new = 0.5 * p[move] + 0.5 * acc[move] / deg[move, None]
        # keep a node where it was if smoothing would pull it near the surface
        ok = sdf(new[:, 0], new[:, 1], new[:, 2]) < -3.5
        p[move[ok]] = new[ok]

    r = np.minimum(r_root, r_terminal * np.cbrt(flow.astype(float)))
    a_pts = np.concatenate([[np.asarray(root, float)], p[parent]])
    b_pts = np.concatenate([[p[r0]], p[child]])
    radii = np.concatenate([[r[r0]], r[child]])
    return _Tubes(a_pts, b_pts, radii, radii.copy())


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


# ----------------------------------------------------------------------------------------------
# Anatomy: every random draw happens here, in mm, before any voxel is touched.
# ----------------------------------------------------------------------------------------------


class _Body:
    """Body outline and its fat / muscle layers: elliptical cross-sections (flatter at the
    back), slightly wider cranially, with a low-order random wobble of the outline."""

    def __init__(self, rng: np.random.Generator) -> None:
        # the default 300 x 220 mm field of view is tight around this body, like a clinical
        # reconstruction field; a larger body would not fit, a smaller one cramps the liver
        self.a = rng.uniform(138.0, 145.0)  # lateral semi-axis, mm
        self.b_ant = rng.uniform(98.0, 104.0)
        self.b_post = self.b_ant * rng.uniform(0.86, 0.92)
        self.taper = rng.uniform(0.0, 0.04)  # relative widening per 100 mm cranially
        self.harm = rng.normal(0.0, 0.01, (3, 2))  # outline wobble (harmonics 2..4)
        self.fat = (rng.uniform(8.0, 16.0), rng.uniform(10.0, 20.0), rng.uniform(8.0, 14.0))
        self.muscle = (rng.uniform(8.0, 12.0), rng.uniform(9.0, 13.0), rng.uniform(8.0, 11.0))
        self.y_vb = -self.b_post + rng.uniform(72.0, 80.0)  # vertebral body centre, mm

    def _rho_xy(self, x, y, inset: tuple[float, float, float]) -> np.ndarray:
        """Normalised in-plane radius (1 on the layer surface at z = 0) of the outline inset
        by (lateral, anterior, posterior) mm."""
        a = self.a - inset[0]
        b = np.where(y >= 0, self.b_ant - inset[1], self.b_post - inset[2])
        u = (x / a) ** 2 + (y / b) ** 2
        th = np.arctan2(y, x)
        f = 1.0
        for k in range(3):
            f = f + self.harm[k, 0] * np.cos((k + 2) * th) + self.harm[k, 1] * np.sin((k + 2) * th)
        return np.sqrt(u) / f

    def _scale(self, z) -> np.ndarray:
        """Cranio-caudal widening factor of the outline."""
        return 1.0 + self.taper * z / 100.0

    def _inset(self, layer: str) -> tuple[float, float, float]:
        return {
            "skin": (0.0, 0.0, 0.0),
            "muscle": self.fat,
            "cavity": tuple(f + m for f, m in zip(self.fat, self.muscle, strict=True)),
            "ribs": tuple(f + 0.45 * m for f, m in zip(self.fat, self.muscle, strict=True)),
        }[layer]

    def layer_rho(self, x, y, z, layer: str) -> np.ndarray:
        """Normalised radius of a layer ("skin", "muscle", "cavity", "ribs"): < 1 inside."""
        return self._rho_xy(x, y, self._inset(layer)) / self._scale(z)

    def layer_mask(self, x, y, z, layer: str) -> np.ndarray:
        """Inside a layer, for grid-broadcast coordinates: one 3-D comparison of an (x, y)
        map against the z scale, cheaper than ``layer_rho(...) < 1``."""
        return self._rho_xy(x, y, self._inset(layer)) < self._scale(z)

    def cavity_sdf(self, x, y, z) -> np.ndarray:
        """Radial distance (mm, negative inside) to the inner surface of the abdominal wall."""
        rho = self.layer_rho(x, y, z, "cavity")
        r = np.sqrt(x * x + y * y)
        return r * (1.0 - 1.0 / np.maximum(rho, 1e-6))

    def layer_point(self, theta: float, z: float, layer: str) -> np.ndarray:
        """World point on a layer at in-plane angle theta (rad, from +x towards +y)."""
        c, s = math.cos(theta), math.sin(theta)
        rho = float(self.layer_rho(np.array(c), np.array(s), np.array(z), layer))
        return np.array([c / rho, s / rho, z])


@dataclass
class _Anatomy:
    body: _Body
    hu: dict[str, float]
    noise_std: float
    vertebra_period: float
    vertebra_phase: float
    aorta: tuple[float, float, float]  # x, y, radius
    ivc: tuple[float, float, float, float]  # x, y, semi x, semi y
    liver_parts: list[_Ellipsoid]
    liver_blend: float
    liver_warp: _Noise
    liver_texture: _Noise
    gallbladder: _Ellipsoid
    kidneys: list[_Ellipsoid]
    sinuses: list[_Ellipsoid]
    spleen: _Ellipsoid
    spleen_hilum: _Ellipsoid
    stomach: _Ellipsoid
    stomach_gas_y: float
    pancreas: _Tubes
    colon: _Tubes
    colon_texture: _Noise
    small_bowel: list[_Tubes]
    bowel_content_hu: list[float]
    ribs: _Tubes
    psoas: list[tuple[float, float]]  # (x, y) per side
    domes: tuple[tuple[float, float, float], tuple[float, float, float]]  # (x, y, z) R / L
    dome_radius: float  # radius of curvature of the hemidiaphragms, mm
    heart: _Ellipsoid
    liver_offset: float = 0.0  # mm added to the ellipsoid union to hit the drawn volume
    lattice_lo: np.ndarray = None  # type: ignore[assignment]  # world mm of lattice_sdf[0,0,0]
    lattice_sdf: np.ndarray = None  # type: ignore[assignment]  # liver_sdf on a 4 mm lattice
    portal_trunk: _Tubes = None  # type: ignore[assignment]
    portal: _Tubes = None  # type: ignore[assignment]
    hepatic: _Tubes = None  # type: ignore[assignment]

    def carve_sdf(self, x, y, z) -> np.ndarray:
        """Distance to structures the liver must leave room for (IVC, aorta, spine, right
        kidney, gallbladder), with margins; negative inside them."""
        ax, ay, ar = self.aorta
        d = np.sqrt((x - ax) ** 2 + (y - ay) ** 2) - (ar + 3.0)
        ix, iy, isx, isy = self.ivc
        d = np.minimum(d, np.sqrt(((x - ix) / isx) ** 2 + ((y - iy) / isy) ** 2) * isx - isx - 1.0)
        # spine with its processes and the paraspinal gutters: the right lobe wraps round
        # the back only lateral to them
        d = np.minimum(d, _ellipse_sdf(x - (-3.0), y - (self.body.y_vb - 25.0), 41.0, 46.0))
        d = np.minimum(d, self.kidneys[0].sdf(x, y, z) - 4.0)
        d = np.minimum(d, self.gallbladder.sdf(x, y, z))
        d = np.minimum(d, self.spleen.sdf(x, y, z) - 2.0)
        return d

    def liver_shape_sdf(self, x, y, z, warp: np.ndarray | None = None) -> np.ndarray:
        """Free liver shape: smooth union of ellipsoids warped by low-frequency noise (mm).
        ``warp`` may pass ``liver_warp`` already evaluated at the points."""
        parts = self.liver_parts
        d = parts[0].sdf(x, y, z)
        for e in parts[1:]:
            d = _smin(d, e.sdf(x, y, z), self.liver_blend)
        if warp is None:
            warp = self.liver_warp.at(x, y, z)
        return d + warp - self.liver_offset

    def dome_z(self, x, y) -> np.ndarray:
        """Height (mm) of the diaphragm: upper envelope of two paraboloid hemidomes."""
        k = 0.5 / self.dome_radius
        (xr, yr, zr), (xl, yl, zl) = self.domes
        return np.maximum(
            zr - k * ((x - xr) ** 2 + (y - yr) ** 2), zl - k * ((x - xl) ** 2 + (y - yl) ** 2)
        )

    def liver_clip_sdf(self, x, y, z) -> np.ndarray:
        """Room left to the liver by the abdominal wall, the diaphragm and neighbouring
        organs (mm, negative where the liver may be)."""
        d = np.maximum(self.body.cavity_sdf(x, y, z) + 1.0, -self.carve_sdf(x, y, z))
        return np.maximum(d, z - self.dome_z(x, y) + 4.0)

    def liver_sdf(self, x, y, z, warp: np.ndarray | None = None) -> np.ndarray:
        """Signed distance (mm, negative inside) of the liver: free shape cut by the
        abdominal wall and neighbouring organs."""
        return np.maximum(self.liver_shape_sdf(x, y, z, warp), self.liver_clip_sdf(x, y, z))

    def liver_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        pad = 14.0 + max(self.liver_offset, 0.0)
        lo = np.min([e.bounds(pad)[0] for e in self.liver_parts], axis=0)
        hi = np.max([e.bounds(pad)[1] for e in self.liver_parts], axis=0)
        return lo, hi

    def fit_liver_volume(self, litres: float) -> None:
        """Choose ``liver_offset`` so the liver holds ``litres``, counted on a fixed
        ``_LATTICE_MM`` lattice (independent of the output grid, so every spacing gets the
        same shape), and keep the liver sdf on that lattice for fast look-ups."""
        self.liver_offset = 0.0
        lo, hi = self.liver_bounds()
        lo, hi = lo - 12.0, hi + 12.0  # room for a positive offset
        h = _LATTICE_MM
        ax = [np.arange(lo[k], hi[k], h) for k in range(3)]
        x, y, z = ax[0][:, None, None], ax[1][None, :, None], ax[2][None, None, :]
        free = self.liver_shape_sdf(x, y, z)
        clip = self.liver_clip_sdf(x, y, z)
        target = litres * 1e6 / h**3  # lattice points
        t_lo, t_hi = -12.0, 12.0  # beyond this the shape would bloat or shrivel
        for _ in range(22):  # bisection: volume grows monotonically with the offset
            t = 0.5 * (t_lo + t_hi)
            n = np.count_nonzero(np.maximum(free - t, clip) < 0)
            t_lo, t_hi = (t, t_hi) if n < target else (t_lo, t)
        self.liver_offset = 0.5 * (t_lo + t_hi)
        self.lattice_lo = np.array([a[0] for a in ax])
        self.lattice_sdf = np.maximum(free - self.liver_offset, clip).astype(np.float32)

    def liver_sdf_coarse(self, x, y, z) -> np.ndarray:
        """``liver_sdf`` at points (same-shape arrays), trilinear from the lattice: fast,
        within about a millimetre except at creases."""
        x, y, z = np.broadcast_arrays(np.asarray(x), np.asarray(y), np.asarray(z))
        c = np.stack([x.ravel(), y.ravel(), z.ravel()]) - self.lattice_lo[:, None]
        v = ndimage.map_coordinates(self.lattice_sdf, c / _LATTICE_MM, order=1, mode="nearest")
        return v.reshape(x.shape)

    def liver_sdf_coarse_grid(self, xs, ys, zs) -> np.ndarray:
        """``liver_sdf_coarse`` on the tensor grid of 1-D world coordinates (float32)."""
        m = [
            _linear_matrix(np.ravel(c), self.lattice_lo[k], _LATTICE_MM, self.lattice_sdf.shape[k])
            for k, c in enumerate((xs, ys, zs))
        ]
        t = np.tensordot(self.lattice_sdf, m[2], axes=([2], [1]))  # (gx, gy, nz)
        t = np.tensordot(t, m[1], axes=([1], [1]))  # (gx, nz, ny)
        t = np.tensordot(m[0], t, axes=([1], [0]))  # (nx, nz, ny)
        return t.transpose(0, 2, 1)

    def liver_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Tight world bounds (mm) of the liver, from the lattice, with a safety margin."""
        idx = np.nonzero(self.lattice_sdf < _LATTICE_MM)
        lo = self.lattice_lo + np.array([i.min() for i in idx]) * _LATTICE_MM - _LATTICE_MM
        hi = self.lattice_lo + np.array([i.max() for i in idx]) * _LATTICE_MM + _LATTICE_MM
        return lo, hi


def _jit(rng: np.random.Generator, v, s) -> np.ndarray:
    return np.asarray(v, float) + rng.uniform(-1.0, 1.0, np.shape(v)) * np.asarray(s, float)


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    body = _Body(rng)
    yvb = body.y_vb

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

    aorta = (-15.0 + rng.uniform(-4, 4), yvb + 27.0 + rng.uniform(-3, 3), rng.uniform(9.5, 12.0))
    ivc = (21.0 + rng.uniform(-4, 4), yvb + 24.0 + rng.uniform(-3, 3), 12.0, 9.0)

    # liver: right lobe, inferior right tip, medial segment, tapering left lobe
    g = _jit(rng, (0.0, 0.0, -8.0), (6.0, 5.0, 5.0))  # whole-liver shift; dome below the top
    nominal = [
        ((70.0, 0.0, 30.0), (72.0, 78.0, 64.0), (0.0, 8.0, 0.0)),
        ((82.0, 6.0, -22.0), (44.0, 50.0, 42.0), (0.0, -12.0, 0.0)),
        ((30.0, 14.0, 38.0), (50.0, 52.0, 46.0), (0.0, 0.0, 0.0)),
        ((-6.0, 38.0, 52.0), (72.0, 34.0, 30.0), (0.0, 12.0, -22.0)),
    ]
    parts = []
    for c, s, ang in nominal:
        c = g + _jit(rng, c, 5.0)
        s = _jit(rng, s, np.asarray(s) * 0.07)  # overall size is set by fit_liver_volume
        ang = _jit(rng, ang, 8.0)
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

    spleen = _Ellipsoid.make(
        _jit(rng, (-82.0, -28.0, 42.0), (5.0, 6.0, 8.0)),
        _jit(rng, (24.0, 52.0, 46.0), (3.0, 6.0, 6.0)),
        _jit(rng, (0.0, 0.0, -38.0), (6.0, 6.0, 8.0)),
    )
    spleen_hilum = _Ellipsoid.make(
        spleen.shifted((30.0, 0.0, 0.0)), (22.0, 30.0, 28.0), _jit(rng, (0.0, 0.0, -38.0), 5.0)
    )

    stomach = _Ellipsoid.make(
        _jit(rng, (-42.0, 35.0, 50.0), (6.0, 5.0, 8.0)),
        _jit(rng, (36.0, 30.0, 44.0), (4.0, 4.0, 6.0)),
        _jit(rng, (0.0, 20.0, 25.0), 8.0),
    )
    stomach_gas_y = stomach.c[1] + rng.uniform(0.2, 0.55) * stomach.semi[1]

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

    # small bowel loops in the lower central abdomen
    small_bowel, content = [], []
    for _ in range(int(rng.integers(4, 7))):
        walk = _random_walk(
            rng, np.array([-55.0, -15.0, -95.0]), np.array([50.0, 60.0, -10.0]), 28, 8.0
        )
        small_bowel.append(_Tubes.from_polyline(walk, np.full(len(walk), rng.uniform(10.0, 13.0))))
        content.append(HU["bowel_content"] + float(rng.uniform(-15.0, 15.0)))

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
        ribs=_Tubes.concat(ribs),
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


# ----------------------------------------------------------------------------------------------
# Rendering on a voxel grid.
# ----------------------------------------------------------------------------------------------


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
    hu = anat.hu
    body = anat.body
    cv = _Canvas(grid)
    x, y, z = grid.full()

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

    # spine last (bone wins): vertebral bodies with cortex and endplates, discs, arches
    _paint_spine(cv, anat, x, y, z)
    return cv.ct, cv.labels


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
