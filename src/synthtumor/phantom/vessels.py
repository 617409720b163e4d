"""Space-filling branching vessel trees (portal and hepatic veins) inside an organ."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from synthtumor.phantom.noise import _Noise
from synthtumor.phantom.tubes import _Tubes

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
    ra, cb = _lattice_edges(ids)
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
    terms = _farthest_terminals(rng, nodes, cand, n_terminals)
    flow = _flow(pred, r0, terms, n)
    used = np.nonzero(flow > 0)[0]
    child = used[used != r0]
    parent = pred[child]

    # smooth the polylines (root and terminals fixed) to hide the lattice
    fixed = np.zeros(n, bool)
    fixed[r0] = True
    fixed[terms] = True
    p = _smooth_tree(sdf, nodes, child, parent, fixed)

    r = np.minimum(r_root, r_terminal * np.cbrt(flow.astype(float)))
    a_pts = np.concatenate([[np.asarray(root, float)], p[parent]])
    b_pts = np.concatenate([[p[r0]], p[child]])
    radii = np.concatenate([[r[r0]], r[child]])
    return _Tubes(a_pts, b_pts, radii, radii.copy())


def _lattice_edges(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node-id pairs (each undirected edge once) joining every node of the (nx, ny, nz) id
    lattice to its 26 neighbours; ids < 0 mark lattice points that are not nodes."""
    shape = ids.shape
    rows, cols = [], []
    for off in _HALF_OFFSETS:
        src = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(off, shape, strict=True))
        dst = tuple(slice(max(0, o), s - max(0, -o)) for o, s in zip(off, shape, strict=True))
        a, b = ids[src].ravel(), ids[dst].ravel()
        ok = (a >= 0) & (b >= 0)
        rows.append(a[ok])
        cols.append(b[ok])
    return np.concatenate(rows), np.concatenate(cols)


def _farthest_terminals(
    rng: np.random.Generator, nodes: np.ndarray, cand: np.ndarray, n_terminals: int
) -> list[int]:
    """Node ids of up to ``n_terminals`` terminals spread over the candidates ``cand`` by
    farthest-point sampling (``nodes``: (n, 3) mm)."""
    terms = [int(cand[rng.integers(len(cand))])]
    d2 = np.sum((nodes[cand] - nodes[terms[0]]) ** 2, axis=1)
    for _ in range(min(n_terminals, len(cand)) - 1):
        # pick among the few farthest, not the single farthest: less regular spacing
        top = np.argpartition(d2, -3)[-3:] if len(d2) > 3 else np.arange(len(d2))
        k = int(top[rng.integers(len(top))])
        terms.append(int(cand[k]))
        d2 = np.minimum(d2, np.sum((nodes[cand] - nodes[cand[k]]) ** 2, axis=1))
    return terms


def _flow(pred: np.ndarray, r0: int, terms: list[int], n: int) -> np.ndarray:
    """Number of terminals each of the n nodes drains along the predecessor tree to r0."""
    flow = np.zeros(n, dtype=np.int64)
    for t in terms:
        v = t
        while v != r0 and v >= 0:
            flow[v] += 1
            v = int(pred[v])
    flow[r0] = len(terms)
    return flow


def _smooth_tree(
    sdf: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    nodes: np.ndarray,
    child: np.ndarray,
    parent: np.ndarray,
    fixed: np.ndarray,
) -> np.ndarray:
    """Node positions (n, 3) mm after three passes of neighbour averaging along the tree's
    edges child -> parent; ``fixed`` nodes stay, and so does a node that would come within
    3.5 mm of the surface."""
    n = len(nodes)
    p = nodes.copy()
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
    return p
