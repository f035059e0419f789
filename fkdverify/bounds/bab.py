"""Branch and bound over ReLU splits with beta-CROWN bounds (Wang et al., "Beta-CROWN:
Efficient bound propagation with per-neuron split constraints", NeurIPS 2021).

The question: over the box [lo, hi], can some input reach the unsafe region, a union of
disjuncts each a conjunction of atoms ``c_r . y <= b_r``? A *domain* is the box with some
unstable ReLUs fixed active (z >= 0) or inactive (z <= 0). A disjunct is ruled out on a domain
when one of its atoms has a sound lower bound of ``c_r . y`` above ``b_r``; a domain with every
disjunct ruled out is closed. Open domains are split on one more neuron (the two children
cover the parent), worst first, a batch at a time, until none is left (``unsat``), a
candidate input reaches the region (handed to ``confirm``: ``sat`` once confirmed), or time
runs out.

Bounds of a domain: the pre-activation bounds of the layers after a new split are recomputed
by CROWN with the split neurons' bounds clamped to their side (and intersected with the
parent's; a split side that the bounds rule out closes the domain). The atoms are then
bounded by CROWN backward with optimised lower slopes alpha in [0, 1] and the split
constraints in the objective with multipliers beta >= 0 (``f(x) >= f(x) - sum_j beta_j s_j
z_j(x)`` wherever ``s_j z_j >= 0``). Every alpha and beta gives a valid bound, so the
optimiser only has to be good, not exact; it runs in float32 for speed and the bound that
decides is then recomputed once in float64 with the same alpha and beta (``crown_lower``'s
rounding allowance, DESIGN.md section 2 rule 1), and never below the parent's. Children
inherit their parent's alpha and beta (warm start). Branching: BaBSR's intercept score (Bunel
et al. 2020) scaled down by layer depth (splits near the input tighten every later layer),
the ``fsb`` best neurons then tried on both sides (filtered smart branching, De Palma et al.
2021).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..net.graph import Network
from ..threads import take_granted
from ..words import SpecResult
from .adam import Adam
from .domains import BabOptions, _Batch, _Problem, gather_rows, scatter_rows
from .rules import relu_relaxation

UNSAT, SAT = SpecResult.UNSAT, SpecResult.SAT
TIMEOUT, UNKNOWN = SpecResult.TIMEOUT, SpecResult.UNKNOWN
DEFAULT = BabOptions()


@dataclass(frozen=True)
class BabResult:
    status: str  # unsat | sat | timeout | unknown
    domains: int  # domains bounded
    depth: int  # deepest split reached
    found: object = None  # what ``confirm`` returned for the counterexample
    note: str = ""


def _optimise(P: _Problem, B: _Batch, iters: int, sel: list):
    """Adam on alpha and beta (opt dtype) of the atoms ``sel`` (``_Problem.select``);
    returns the best (alpha, beta) per atom, (D, S, N) (the atoms not selected keep their
    parent's), and the same at the selected atoms alone, (D, k, N). Domains closed by their
    best iterate so far (or their parent's bound) leave the computation once a quarter of
    those still optimised have closed."""
    dt, opts = P.p32.dtype, P.opts
    idx = torch.cat(sel, 1)  # (D, k)
    alpha = gather_rows(B.alpha, idx).requires_grad_(True)
    beta = gather_rows(B.beta, idx).requires_grad_(True)
    best_a, best_b = alpha.detach().clone(), beta.detach().clone()
    full = B.lb.to(dt).clone()  # the parent's bounds: a floor for what closes a domain
    best = full.gather(1, idx)
    opt = Adam([alpha, beta], [opts.lr_alpha, opts.lr_beta])
    live = torch.arange(len(B.split))
    split, cols = B.split, idx
    parts = P.relax_parts(B.split, B.l, B.u, dt)
    for _ in range(iters):
        if time.perf_counter() > P.deadline:  # any iterate's bound is valid: stop on time
            break
        lb = P.lower(P.p32, split, None, None, alpha, beta, parts=parts, sel=_cut(sel, cols))
        with torch.no_grad():
            better = lb > best[live]
            best[live] = torch.where(better, lb, best[live])
            best_a[live] = torch.where(better[..., None], alpha, best_a[live])
            best_b[live] = torch.where(better[..., None], beta, best_b[live])
            full[live] = full[live].scatter(1, cols, best[live])
            open_ = P.open_rows(full[live]).gather(1, cols)
            alive = open_.any(1)
        if not alive.any() or not lb.requires_grad:
            break
        opt.zero_grad()
        (-(lb * open_).sum()).backward()
        opt.step()
        with torch.no_grad():
            alpha.clamp_(0.0, 1.0)
            beta.clamp_(min=0.0)
        if int(alive.sum()) < 0.75 * len(live):
            live, split, cols = live[alive], split[alive], cols[alive]
            parts = tuple(t[alive] for t in parts)
            alpha, beta = opt.narrow(alive)
    return scatter_rows(B.alpha, idx, best_a), scatter_rows(B.beta, idx, best_b), best_a, best_b


def _cut(sel: list, cols) -> list:
    """``sel`` with its domains replaced by the rows of ``cols`` (the concatenated atoms)."""
    out, o = [], 0
    for g in sel:
        out.append(cols[:, o : o + g.shape[1]])
        o += g.shape[1]
    return out


def _scores(P: _Problem, B: _Batch, a, open_):
    """BaBSR intercept scores (D, N) scaled by the layer decay, 0 on neurons that are stable
    or split; ``a`` (D, S, N) the atoms' coefficients on each ReLU output, ``open_`` (D, S)
    the atoms that count."""
    _, icpt, _ = relu_relaxation(B.l, B.u)
    cost = (a.clamp(max=0).neg() * open_[..., None]).sum(1) * icpt
    unstable = (B.l < 0) & (B.u > 0) & (B.split == 0)
    width = (B.u - B.l) * a.abs().sum(1)
    score = torch.where(unstable, cost + 1e-6 * width + 1e-12, torch.zeros_like(cost))
    return score * P.decay[None]


def _children(B: _Batch, at, cols, keep: bool = True) -> _Batch:
    """The two children (active first, then inactive: 2M) of M domains split on neurons
    ``cols`` (M,); bounds not yet refreshed, lb the parent's. Beta on the new split gives each
    child its parent's coefficient on that neuron's input where one exists (with beta = 0 a
    split can lose the parent's bound: the split ReLU becomes the identity or zero, and
    z >= 0 / z <= 0 enters only through beta). Parent coefficient a on the ReLU output, lower
    slope alpha: a > 0 used alpha * z, so active: a - beta = a * alpha, inactive:
    beta = a * alpha; a < 0: the active child keeps the parent's upper line (t = 0 in
    ``relaxations``), the inactive one's y = 0 is no worse. ``keep=False``: plain children
    (beta 0, identity line on the new split), as filtered smart branching scores them."""
    M = len(B.split)
    rows = torch.arange(M)
    split, alpha, beta = B.split.repeat(2, 1), B.alpha.repeat(2, 1, 1), B.beta.repeat(2, 1, 1)
    split[rows, cols], split[rows + M, cols] = 1, -1
    if keep:
        a = at.to(beta.dtype).clamp(min=0)  # (M, S)
        slope = alpha[rows, :, cols]
        beta[rows, :, cols], beta[rows + M, :, cols] = a * (1 - slope), a * slope
        alpha[rows, :, cols], alpha[rows + M, :, cols] = 0.0, 0.0
    else:
        beta[rows, :, cols], beta[rows + M, :, cols] = 0.0, 0.0
        alpha[rows, :, cols], alpha[rows + M, :, cols] = 1.0, 1.0
    return _Batch(split, B.l.repeat(2, 1), B.u.repeat(2, 1), alpha, beta, B.lb.repeat(2, 1),
                  B.depth.repeat(2) + 1)  # fmt: skip


def _branch(P: _Problem, B: _Batch, relu_out, open_, sel: list, sel_ab: tuple):
    """(D,) the neuron to split next per domain (-1 where no unstable neuron is left) and
    (D, k) the coefficients of the atoms ``sel`` on its ReLU output (``open_`` (D, k): those
    of them that count; ``sel_ab``: B's alpha and beta at those atoms, (D, k, N)). The
    ``fsb`` best neurons by intercept score are each tried - both plain children bounded
    once, no optimisation - and the one whose worse child comes out best is taken."""
    D, S = open_.shape
    a = torch.cat([relu_out.get(v, B.l.new_zeros(D, S, n))
                   for v, n in zip(P.vs, P.sizes, strict=True)], 2)  # fmt: skip
    score = _scores(P, B, a, open_)
    none = (score > 0).sum(1) == 0
    k = min(P.opts.fsb, P.N)
    top_s, top = score.topk(k, 1)  # (D, k)
    if k > 1:
        rep = torch.arange(D).repeat_interleave(k)
        cols = top.reshape(-1)
        # only the selected atoms' alpha and beta are copied
        light = _Batch(B.split, B.l, B.u, *sel_ab, B.lb.gather(1, torch.cat(sel, 1)), B.depth)
        kids = _children(light.take(rep), None, cols, keep=False)
        ks = [g[rep].repeat(2, 1) for g in sel]
        with torch.no_grad():
            lb = P.lower(P.p32, kids.split, kids.l, kids.u, kids.alpha, kids.beta, sel=ks)
        key = P.key(B.lb[rep].repeat(2, 1).scatter(1, torch.cat(ks, 1), lb.double()))
        worse = torch.minimum(key[: D * k], key[D * k :]).reshape(D, k)
        worse = torch.where(top_s > 0, worse, -torch.inf)
        pick = top[torch.arange(D), worse.argmax(1)]
    else:
        pick = top[:, 0]
    at = a[torch.arange(D), :, pick]
    return torch.where(none, torch.full_like(pick, -1), pick), at


def _bound(P: _Problem, B: _Batch, iters: int, sel: list | None = None):
    """Optimise, then the deciding float64 bounds of the atoms ``sel`` (``_Problem.select``;
    default all). Returns the batch with alpha, beta and lb (never below the parent's: a
    parent's bound holds on its children, and the atoms not selected keep it; +inf where the
    split sides are infeasible), the neurons to split next (D,), their coefficients (D, S)
    and candidate inputs (D, n_in): the box vertex minimising each domain's worst open
    selected atom's linear lower bound."""
    D = len(B.split)
    sel = sel if sel is not None else P.all_rows(D)
    idx = torch.cat(sel, 1)
    alpha, beta, sel_a, sel_b = _optimise(P, B, iters, sel)
    relu_out: dict = {}
    coef: list = []
    with torch.no_grad():
        got = P.lower(P.p64, B.split, B.l, B.u, sel_a, sel_b, relu_out, coef, sel=sel)
        lb = B.lb.scatter(1, idx, torch.maximum(got, B.lb.gather(1, idx)))
        empty = ((B.split > 0) & (B.u < 0)) | ((B.split < 0) & (B.l > 0)) | (B.l > B.u)
        lb = torch.where(empty.any(1, keepdim=True), torch.inf, lb)
        B = _Batch(B.split, B.l, B.u, alpha, beta, lb, B.depth)
        open_ = P.open_rows(lb).gather(1, idx)
        # only the domains still open get a branching decision (FSB bounds extra children)
        live = torch.nonzero(open_.any(1)).flatten()
        branch = torch.full((D,), -1, dtype=torch.long)
        at = lb.new_zeros(lb.shape)
        if len(live):
            sub = {v: c[live] for v, c in relu_out.items()}
            sel_live, ab_live = [g[live] for g in sel], (sel_a[live], sel_b[live])
            branch[live], at_sel = _branch(P, B.take(live), sub, open_[live].to(lb.dtype),
                                           sel_live, ab_live)  # fmt: skip
            at[live] = at[live].scatter(1, idx[live], at_sel)
        worst = torch.where(open_, got - P.b[idx], torch.inf).argmin(1)
        if coef[0] is None:
            x = ((P.lo + P.hi) / 2).expand(D, -1)
        else:
            c = coef[0][torch.arange(D), worst]
            x = torch.where(c > 0, P.lo, P.hi)
    return B, branch, at, x


def _root(P: _Problem) -> _Batch:
    """The whole box: nothing split, CROWN's own lower slopes, beta 0."""
    S, dt = P.C.shape[0], P.p32.dtype
    alpha0 = relu_relaxation(P.l, P.u)[2].to(dt)[:, None, :].expand(1, S, -1).clone()
    return _Batch(torch.zeros(1, P.N, dtype=torch.int8), P.l, P.u, alpha0,
                  torch.zeros(1, S, P.N, dtype=dt), torch.full((1, S), -torch.inf,
                  dtype=torch.float64), torch.zeros(1, dtype=torch.long))  # fmt: skip


def _reaches(P: _Problem, x) -> torch.Tensor:
    """(D,) whether the float32 network puts x in the unsafe region (a cheap pre-check)."""
    with torch.no_grad():
        y = P.f32(x.to(P.p32.dtype)).double()
    sat = y @ P.C.T <= P.b  # (D, S)
    return ((~sat[:, None, :]) & P.member[None]).any(2).logical_not().any(1)


def dedup(C, b, owner):
    """Atoms that appear in several disjuncts (same row, same bound) once, with a (K, S)
    membership matrix; ``owner`` may already be one."""
    C, b, owner = np.asarray(C, np.float64), np.asarray(b, np.float64), np.asarray(owner)
    if owner.ndim == 2:
        return C, b, owner
    _, first, inverse = np.unique(np.column_stack([C, b]), axis=0, return_index=True,
                                  return_inverse=True)  # fmt: skip
    inverse = inverse.reshape(-1)
    if len(first) == len(b):
        return C, b, owner
    member = np.zeros((int(owner.max()) + 1, len(first)), dtype=bool)
    member[owner, inverse] = True
    return C[first], b[first], member


def bab(net: Network, lo, hi, pre: dict, C, b, owner, deadline: float,
        confirm: Callable[[np.ndarray], object],
        opts: BabOptions = DEFAULT) -> BabResult:  # fmt: skip
    """Decide whether any x in [lo, hi] has, for some disjunct k, C[r] . y <= b[r] for every
    atom r with owner[r] == k (or, for ``owner`` a (K, S) boolean matrix, every atom r with
    owner[k, r]: atoms shared by several disjuncts are bounded once). ``pre[v] = (l, u)``:
    sound root bounds (flat) of every ReLU input (e.g. alpha-CROWN's); ``confirm(x)``
    re-checks a candidate input (flat float64) and returns something true for a real
    counterexample, None otherwise."""
    C, b, owner = dedup(C, b, owner)
    P = _Problem(net, lo, hi, pre, C, b, owner, opts)
    P.deadline = deadline
    if opts.refresh:
        P.slopes = P.root_slopes()
    S, dt = P.C.shape[0], P.p32.dtype
    per_domain = 2 * S * P.N * torch.finfo(dt).bits // 8 + P.N * 17 + S * 8
    cap = max(2 * opts.batch, opts.memory_mb * 2**20 // per_domain)
    rank = itertools.count()
    heap: list = []
    count, depth, stuck = 0, 0, 0

    def visit(B: _Batch, iters: int, sel: list | None = None):
        nonlocal count, stuck
        B, branch, at, x = _bound(P, B, iters, sel)
        count += len(B.lb)
        key = P.key(B.lb)
        for d in torch.nonzero(_reaches(P, x) & (key <= 0)).flatten().tolist():
            found = confirm(x[d].numpy())
            if found is not None:
                return found
        for d in torch.nonzero(torch.isfinite(key)).flatten().tolist():
            if int(branch[d]) < 0:  # every unstable neuron split and still open: give up on it
                stuck += 1
                continue
            item = (*(t[d] for t in B.fields()), int(branch[d]), at[d])
            heapq.heappush(heap, (float(key[d]), next(rank), item))
        return None

    root = _root(P)
    P.set_groups(root.alpha, root.beta)
    found = visit(root, opts.root_iters)
    per_domain = 0.0  # seconds per child bounded, measured: batches shrink near the deadline
    while found is None and heap:
        take_granted()  # a pool worker may get the cores others left idle
        left = deadline - time.perf_counter()
        # a batch of n parents bounds 2n children; do not start one that cannot finish
        afford = int(left / (2 * per_domain)) if per_domain > 0 else opts.batch
        if left <= 0 or afford < 1:
            return BabResult(TIMEOUT, count, depth, note=f"{len(heap)} domains open")
        if len(heap) > cap:
            return BabResult(UNKNOWN, count, depth, note=f"over {cap} open domains (memory cap)")
        t_step = time.perf_counter()
        take = min(opts.batch, len(heap), afford)
        if len(heap) > cap // 2:  # near the memory cap: the domains closest to closing first
            best = heapq.nlargest(take, heap)
            chosen = {id(e) for e in best}
            heap[:] = [e for e in heap if id(e) not in chosen]
            heapq.heapify(heap)
            items = [e[2] for e in best]
        else:
            items = [heapq.heappop(heap)[2] for _ in range(take)]
        parents = _Batch.stack([it[:7] for it in items])
        cols = torch.tensor([it[7] for it in items])
        kids = _children(parents, torch.stack([it[8] for it in items]), cols)
        if opts.refresh:
            l, u = P.refresh(kids.split, kids.l, kids.u, P.layer[cols].repeat(2))
            kids = _Batch(kids.split, l, u, *kids.fields()[3:])
        depth = max(depth, int(kids.depth.max()))
        sel = P.select(kids.lb, opts.atoms_per_disjunct) if opts.atoms_per_disjunct else None
        found = visit(kids, opts.iters, sel)
        per_domain = max(per_domain * 0.5, (time.perf_counter() - t_step) / (2 * len(items)))
    if found is not None:
        return BabResult(SAT, count, depth, found)
    if stuck:
        return BabResult(UNKNOWN, count, depth, note=f"{stuck} fully split domains stayed open")
    return BabResult(UNSAT, count, depth)
