"""Indexing of the product network's head: all ordered pairwise logit differences z_a - z_b
(a != b) of one network, row a*(K-1) + (b if b < a else b-1); the product stacks the
teacher's P = K(K-1) rows, then the student's."""

from __future__ import annotations

import numpy as np


def pair_matrix(k: int) -> np.ndarray:
    """Rows e_a - e_b for all ordered pairs a != b, in order (a, b) = row a*(k-1) + ..."""
    rows = []
    for a in range(k):
        for b_ in range(k):
            if a != b_:
                r = np.zeros(k)
                r[a], r[b_] = 1.0, -1.0
                rows.append(r)
    return np.array(rows)


def pair_index(k: int, a: int, b: int) -> int:
    return a * (k - 1) + (b if b < a else b - 1)
