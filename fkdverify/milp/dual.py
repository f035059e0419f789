"""Rigorous LP bounds from any dual vector (Neumaier and Shcherbina, "Safe bounds in linear
and mixed-integer linear programming", Math. Programming 2004).

For min c x s.t. r_lo <= A x <= r_hi, l <= x <= u and any y (of the right signs),
    c x >= sum_i min(d_i l_i, d_i u_i) + sum_r min(y_r r_lo_r, y_r r_hi_r),  d = c - A^T y,
so a dual vector from a solver becomes a bound that does not trust the solver's tolerances."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

_REL = 1e-12  # float64 rounding of the sums below, relative to their magnitude


def _min_lin(d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """min of d @ v over lo <= v <= hi (-inf where an infinite side meets a coefficient)."""
    a = np.where(d > 0, d * lo, np.where(d < 0, d * hi, 0.0))
    if np.isnan(a).any():
        return -np.inf
    return float(a.sum())


def safe_min(A: sp.csr_matrix, r_lo, r_hi, lb, ub, c: np.ndarray, y: np.ndarray) -> float:
    """A valid lower bound on min c x over the LP, from the row duals y (any values)."""
    y = np.where(np.isinf(r_hi), np.maximum(y, 0.0), y)  # rows unbounded above: y >= 0
    y = np.where(np.isinf(r_lo), np.minimum(y, 0.0), y)  # rows unbounded below: y <= 0
    d = c - A.T @ y
    with np.errstate(invalid="ignore"):
        terms = (_min_lin(d, lb, ub), _min_lin(y, r_lo, r_hi))
    total = terms[0] + terms[1]
    if not np.isfinite(total):
        return -np.inf
    scale = np.abs(d) @ np.maximum(np.abs(lb), np.abs(ub)) + np.abs(y) @ np.maximum(
        np.where(np.isfinite(r_lo), np.abs(r_lo), 0), np.where(np.isfinite(r_hi), np.abs(r_hi), 0)
    )
    return total - _REL * (1.0 + scale)
