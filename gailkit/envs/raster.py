"""Numba kernels that fill convex polygons into a small RGB canvas (the fast renderers' core).

Polygons arrive already in canvas pixel coordinates (x right, y down; pixel ``(r, c)`` covers
``[c, c+1) x [r, r+1)``). A pixel is painted when its centre lies inside the polygon, row by
row (scanline spans), in the order the polygons are given, so later ones cover earlier ones.
Anti-aliasing comes from drawing at ``k`` times the size and averaging ``k x k`` blocks, the
area filter of a smooth downscale.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["downsample", "fill_convex_polygons"]


@njit(cache=True)
def fill_convex_polygons(canvas: np.ndarray, local: np.ndarray, counts: np.ndarray, colors: np.ndarray,
                         poses: np.ndarray, view: np.ndarray) -> None:
    """Paint convex polygons into ``canvas`` in order, each placed by a pose, then by the view.

    A vertex ``v`` lands at ``view @ (R(theta) v + (x, y), 1)`` for its polygon's pose
    ``(theta, x, y)``: a rigid body's fixtures in body coordinates, or (zero poses) anything
    already in world coordinates.

    Args:
        canvas: ``(H, W, 3)`` uint8, painted in place.
        local: ``(P, K, 2)`` float64 vertices ``(x, y)``; polygon ``p`` uses its first
            ``counts[p]`` rows, in either winding.
        counts: ``(P,)`` int64 vertex counts (fewer than 3 draws nothing).
        colors: ``(P, 3)`` uint8.
        poses: ``(P, 3)`` float64 ``(theta, x, y)``.
        view: ``(2, 3)`` float64 affine map from world to canvas pixels.
    """
    height, width = canvas.shape[0], canvas.shape[1]
    k = local.shape[1]
    verts = np.empty((k, 2))
    for p in range(local.shape[0]):
        n = counts[p]
        if n < 3:
            continue
        ct, st = math.cos(poses[p, 0]), math.sin(poses[p, 0])
        y_lo, y_hi = np.inf, -np.inf
        x_lo, x_hi = np.inf, -np.inf
        for i in range(n):
            wx = ct * local[p, i, 0] - st * local[p, i, 1] + poses[p, 1]
            wy = st * local[p, i, 0] + ct * local[p, i, 1] + poses[p, 2]
            x = view[0, 0] * wx + view[0, 1] * wy + view[0, 2]
            y = view[1, 0] * wx + view[1, 1] * wy + view[1, 2]
            verts[i, 0], verts[i, 1] = x, y
            y_lo, y_hi = min(y_lo, y), max(y_hi, y)
            x_lo, x_hi = min(x_lo, x), max(x_hi, x)
        if x_hi <= 0.0 or y_hi <= 0.0 or x_lo >= width or y_lo >= height:
            continue  # off the canvas
        r0 = max(0, int(math.ceil(y_lo - 0.5)))
        r1 = min(height, int(math.ceil(y_hi - 0.5)))
        cr, cg, cb = colors[p, 0], colors[p, 1], colors[p, 2]
        for r in range(r0, r1):
            yc = r + 0.5
            left, right = np.inf, -np.inf
            for i in range(n):  # where the row's centre line crosses each edge
                x0, y0 = verts[i, 0], verts[i, 1]
                j = i + 1 if i + 1 < n else 0
                x1, y1 = verts[j, 0], verts[j, 1]
                if (y0 <= yc < y1) or (y1 <= yc < y0):
                    x = x0 + (yc - y0) * (x1 - x0) / (y1 - y0)
                    left, right = min(left, x), max(right, x)
            if left > right:
                continue
            c0 = max(0, int(math.ceil(left - 0.5)))
            c1 = min(width, int(math.ceil(right - 0.5)))
            for c in range(c0, c1):
                canvas[r, c, 0] = cr
                canvas[r, c, 1] = cg
                canvas[r, c, 2] = cb


def downsample(canvas: np.ndarray, k: int, out: np.ndarray) -> None:
    """Average ``k x k`` blocks of ``canvas`` ``(k*H, k*W, 3)`` into ``out`` ``(H, W, 3)`` uint8 (rounded)."""
    if k == 2:
        _halve(canvas, out)  # the default supersampling, ~6x faster than the general loop
    else:
        _box_mean(canvas, k, out)


@njit(cache=True)
def _halve(canvas: np.ndarray, out: np.ndarray) -> None:
    for r in range(out.shape[0]):
        a, b = canvas[2 * r], canvas[2 * r + 1]
        for c in range(out.shape[1]):
            for ch in range(3):
                out[r, c, ch] = (np.uint16(a[2 * c, ch]) + a[2 * c + 1, ch] + b[2 * c, ch] + b[2 * c + 1, ch] + 2) >> 2


@njit(cache=True)
def _box_mean(canvas: np.ndarray, k: int, out: np.ndarray) -> None:
    height, width = out.shape[0], out.shape[1]
    half, area = k * k // 2, k * k
    row = np.empty((width, 3), np.int32)
    for r in range(height):
        row[:] = half
        for i in range(k):
            for c in range(width):
                for j in range(k):
                    for ch in range(3):
                        row[c, ch] += canvas[r * k + i, c * k + j, ch]
        for c in range(width):
            for ch in range(3):
                out[r, c, ch] = row[c, ch] // area
