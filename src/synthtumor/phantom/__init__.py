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

Modules: ``tissues`` (label ids, nominal HU), ``geometry`` (grid, ellipsoids), ``noise``
(smooth random fields), ``tubes``, ``vessels`` (vessel trees), ``body``, ``anatomy`` (the drawn
anatomy and the liver sdf), ``draw`` (all random draws), ``render`` (voxels) and ``make``
(``make_phantom``: blur and noise).
"""

from synthtumor.phantom.make import Phantom, make_phantom
from synthtumor.phantom.tissues import HU, ORGANS

__all__ = ["ORGANS", "HU", "Phantom", "make_phantom"]
