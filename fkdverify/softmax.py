"""Sound bounds on a softmax probability from bounds on logit margins (DESIGN.md section 3a).

p^c = 1 / (1 + sum_{j != c} exp(-m_j)) with m_j = z_c - z_j is increasing in every m_j, so
margin intervals [l_j, u_j] give p^c in [p(l), p(u)]."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

_OUT = 1e-12  # outward rounding allowance on a probability


def confidence(margins: np.ndarray) -> float:
    """p^c from the margins m_j (j != c), computed stably as sigmoid(-logsumexp(-m))."""
    m = np.asarray(margins, np.float64)
    return float(expit(-logsumexp(-m))) if len(m) else 1.0


def confidence_bounds(m_lo: np.ndarray, m_hi: np.ndarray) -> tuple[float, float]:
    """(lower, upper) bounds of p^c over the margin box, widened outward for rounding."""
    return max(confidence(m_lo) - _OUT, 0.0), min(confidence(m_hi) + _OUT, 1.0)
