"""A spec's atoms as rows over the outputs, and which disjuncts sound bounds leave open."""

from __future__ import annotations

import math

import numpy as np

from ..bounds.alpha import alpha_spec_bounds
from ..bounds.propagate import spec_bounds
from ..net.vnnlib import Spec


def spec_bounds_open(net, spec, bounds, rows, owner, open_k: list, alpha: bool,
                     deadline: float = math.inf):  # fmt: skip
    """The atoms' lower bounds (alpha-CROWN on the open disjuncts' atoms if ``alpha``, its
    iterations stopping at ``deadline``) and the disjuncts they leave open."""
    lb, _ = spec_bounds(net, spec.lo, spec.hi, bounds, rows[:, :-1])
    open_k = still_open(open_k, lb, rows, owner)
    if open_k and alpha:  # optimised slopes on the open disjuncts' atoms
        sel = np.isin(owner, open_k)
        start = (lb[sel], np.full(int(sel.sum()), np.inf))
        lb[sel], _ = alpha_spec_bounds(net, spec.lo, spec.hi, bounds, rows[sel, :-1], start=start,
                                       deadline=deadline)  # fmt: skip
        open_k = still_open(open_k, lb, rows, owner)
    return lb, open_k


def still_open(open_k: list, lb: np.ndarray, rows: np.ndarray, owner: np.ndarray) -> list:
    """Disjuncts none of whose atoms a . y <= b is ruled out by a sound lower bound > b."""
    ruled = lb - rows[:, -1] > 0
    return [k for k in open_k if not ruled[owner == k].any()]


def rows_of(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """All atoms as rows [a | b] (a . y <= b) and the disjunct each belongs to."""
    rows = np.vstack([np.hstack([A, b[:, None]]) for A, b in spec.disjuncts])
    owner = np.concatenate([np.full(len(b), k) for k, (_, b) in enumerate(spec.disjuncts)])
    return rows, owner
