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

from ..errors import InputError
from ..net.graph import Network
from ..net.torch_net import TorchNet
from ..words import SpecResult
from .alpha import alpha_lower
from .crown import crown_lower, crown_unstable
from .rules import Prop, Relaxation, relu_relaxation
from .types import PRECISIONS

UNSAT, SAT = SpecResult.UNSAT, SpecResult.SAT
TIMEOUT, UNKNOWN = SpecResult.TIMEOUT, SpecResult.UNKNOWN


@dataclass(frozen=True)
class BabOptions:
    batch: int = 64  # domains split per step (2 x batch children bounded together)
    iters: int = 20  # Adam steps on alpha and beta per batch of children
    root_iters: int = 100  # Adam steps at the root (children inherit what it finds)
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    fsb: int = 4  # neurons tried per branching decision (1: the intercept score alone)
    refresh: bool = True  # recompute the later layers' bounds after each split
    # Branching scores are scaled by exp(-layer_decay * layer): a split near the input
    # tightens every later layer's bounds (``refresh``), which the intercept score does not
    # see. On mnist_fc 256x4 prop_8 eps 0.03 (one disjunct, 30 s): 0 -> timeout (3,000 of
    # 3,400 splits in the last layer), 1 -> timeout, 3 -> 245 domains, 10 -> 321, 30 -> 377.
    layer_decay: float = 3.0
    memory_mb: int = 2048  # cap on the stored domains, and the bound passes' chunks
    opt_precision: str = "float32"  # the optimiser's dtype; the deciding bound is float64
    # dtype of the bound refresh (float32: inputs rounded outward, results widened by
    # ``propagate.ROUNDING``'s allowance; about twice as fast as float64)
    refresh_precision: str = "float32"
    # Adam steps on the lower slopes of each intermediate neuron's bound at the root; the
    # refresh reuses them (as alpha-beta-CROWN does) rather than CROWN's own slopes, which
    # on mnist_fc 256x4 leave 230 neurons of the last layer unstable where alpha-CROWN's
    # slopes leave 67. 0: plain CROWN in the refresh.
    interm_iters: int = 20

    def __post_init__(self):
        iters = (self.iters, self.root_iters, self.interm_iters)
        if self.batch < 1 or min(iters) < 0 or self.fsb < 1:
            raise InputError("BaB batch and fsb must be >= 1, iterations >= 0")
        if {self.opt_precision, self.refresh_precision} - set(PRECISIONS):
            raise InputError(f"BaB precisions must be one of {', '.join(PRECISIONS)}")


@dataclass(frozen=True)
class BabResult:
    status: str  # unsat | sat | timeout | unknown
    domains: int  # domains bounded
    depth: int  # deepest split reached
    found: object = None  # what ``confirm`` returned for the counterexample
    note: str = ""


@dataclass(frozen=True, eq=False)
class _Batch:
    """D domains. ReLUs of all layers are flattened (N in all)."""

    split: torch.Tensor  # (D, N) int8: +1 active, -1 inactive, 0 free
    l: torch.Tensor  # (D, N) float64: pre-activation bounds, split sides not applied
    u: torch.Tensor
    alpha: torch.Tensor  # (D, S, N) opt dtype: lower slopes (split active: the t of the upper line)
    beta: torch.Tensor  # (D, S, N) opt dtype
    lb: torch.Tensor  # (D, S) float64: the atoms' lower bounds (-inf before bounding)
    depth: torch.Tensor  # (D,) long

    def take(self, idx) -> _Batch:
        return _Batch(*(t[idx] for t in self.fields()))

    def fields(self):
        return (self.split, self.l, self.u, self.alpha, self.beta, self.lb, self.depth)

    @staticmethod
    def stack(items: list) -> _Batch:
        return _Batch(*(torch.stack(ts) for ts in zip(*items, strict=True)))


class _Problem:
    """What every batch shares: the network in both dtypes, the root bounds, the atoms."""

    def __init__(self, net: Network, lo, hi, pre: dict, C, b, owner, opts: BabOptions):
        f64 = torch.float64
        self.net, self.opts = net, opts
        self.vs = [v for v in net.relu_inputs() if v in pre]
        self.sizes = [net.size_of(v) for v in self.vs]
        self.offsets = np.cumsum([0, *self.sizes]).tolist()
        self.N = self.offsets[-1]
        self.layer = torch.repeat_interleave(torch.arange(len(self.vs)), torch.tensor(self.sizes))
        self.deep = net.deep_values()
        self.decay = torch.exp(-opts.layer_decay * self.layer.to(f64))
        self.p64 = Prop(net, f64)
        self.p32 = Prop(net, PRECISIONS[opts.opt_precision])
        self.pref = Prop(net, PRECISIONS[opts.refresh_precision])
        self.lo = torch.as_tensor(np.asarray(lo), dtype=f64).reshape(1, -1)
        self.hi = torch.as_tensor(np.asarray(hi), dtype=f64).reshape(1, -1)
        flat = [torch.as_tensor(np.asarray(pre[v]), dtype=f64).reshape(2, -1) for v in self.vs]
        self.l = torch.cat([f[0] for f in flat])[None]
        self.u = torch.cat([f[1] for f in flat])[None]
        self.C = torch.as_tensor(np.asarray(C), dtype=f64)
        self.b = torch.as_tensor(np.asarray(b), dtype=f64)
        self.owner = torch.as_tensor(np.asarray(owner))
        self.K = int(self.owner.max()) + 1
        self.member = torch.stack([self.owner == k for k in range(self.K)])  # (K, S)
        self.f32 = TorchNet(net, self.p32.dtype)
        self.deadline = float("inf")
        self.slopes: dict = {}  # root_slopes(), once the deadline is known

    def per_layer(self, t) -> dict:
        spans = zip(self.vs, self.offsets[:-1], self.sizes, strict=True)
        return {v: t[..., o : o + n] for v, o, n in spans}

    @staticmethod
    def sided(split, l, u):
        """(l, u) with each split neuron's side applied (active: l >= 0, inactive: u <= 0)."""
        return (torch.where(split > 0, l.clamp(min=0), l),
                torch.where(split < 0, u.clamp(max=0), u))  # fmt: skip

    def root_slopes(self):
        """Per deep ReLU input layer i: the neurons unstable at the root (R,) and the lower
        slopes (1, 2R, n) at each earlier ReLU input of their lower and upper bounds' best
        alpha-CROWN iterate over the whole box (``interm_iters`` Adam steps)."""
        p, out = self.pref, {}
        lo, hi = _outward(self.lo, self.hi, p.dtype)
        with torch.enable_grad():
            for i, v in enumerate(self.vs):
                o, n = self.offsets[i], self.sizes[i]
                rows = torch.nonzero((self.l[0, o : o + n] < 0) & (self.u[0, o : o + n] > 0))
                if v not in self.deep or not len(rows) or self.opts.interm_iters == 0:
                    continue
                if time.perf_counter() > self.deadline:
                    break  # (layers without slopes are refreshed by plain CROWN)
                rows = rows.flatten()
                pre = self._pre(i, torch.zeros(1, self.N, dtype=torch.int8), self.l, self.u)
                A = self._eye(rows, n, p.dtype)[None]
                slopes: dict = {}
                alpha_lower(p, v, A, lo, hi, pre, self.opts.interm_iters, 0.25, slopes)
                out[i] = (rows, {w: a.detach() for w, a in slopes.items()})
        return out

    @staticmethod
    def _eye(rows, n: int, dt):
        """(2R, n): the rows +e_r (lower bounds) then -e_r (upper bounds)."""
        E = torch.zeros(len(rows), n, dtype=dt)
        E[torch.arange(len(rows)), rows] = 1.0
        return torch.cat([E, -E])

    def _pre(self, i: int, split, l, u) -> dict:
        """The sided bounds of the layers before i, rounded outward to the refresh dtype."""
        o = self.offsets[i]
        sl, su = _outward(*self.sided(split[:, :o], l[:, :o], u[:, :o]), self.pref.dtype)
        spans = zip(self.vs[:i], self.offsets[:i], self.sizes[:i], strict=True)
        return {w: (sl[:, a : a + m], su[:, a : a + m]) for w, a, m in spans}

    def refresh(self, split, l, u, first: int):
        """CROWN bounds of the unstable neurons of layers ``first``.. given the split sides,
        intersected with (l, u); split neurons keep their own (unsided) bounds. Layers with
        root slopes (``root_slopes``) are bounded on their root-unstable neurons with those
        slopes; others by plain CROWN on each domain's unstable neurons. In float32
        (``refresh_precision``) the box and the earlier layers' bounds are rounded outward
        before the pass, whose results carry the float32 rounding allowance."""
        p, D = self.pref, len(split)
        lo, hi = _outward(self.lo.expand(D, -1), self.hi.expand(D, -1), p.dtype)
        l, u = l.clone(), u.clone()
        with torch.no_grad():
            for i in range(first, len(self.vs)):
                v, o, n = self.vs[i], self.offsets[i], self.sizes[i]
                if v not in self.deep:
                    continue
                if time.perf_counter() > self.deadline:
                    break  # (bounds left unrefreshed are the parent's: still valid)
                pre = self._pre(i, split, l, u)
                ol, ou = l[:, o : o + n], u[:, o : o + n]
                if i in self.slopes:
                    nl, nu = self._with_slopes(i, lo, hi, pre, D)
                else:
                    cur_l, cur_u = _outward(*self.sided(split[:, o : o + n], ol, ou), p.dtype)
                    nl, nu = crown_unstable(p, v, lo, hi, pre, cur_l, cur_u, self.opts.memory_mb,
                                            group=D)  # fmt: skip
                free = split[:, o : o + n] == 0
                l[:, o : o + n] = torch.where(free, torch.maximum(ol, nl.double()), ol)
                u[:, o : o + n] = torch.where(free, torch.minimum(ou, nu.double()), ou)
        return l, u

    def _with_slopes(self, i: int, lo, hi, pre: dict, D: int):
        """(l, u) (D, n) of layer i's root-unstable neurons (others: -inf, +inf) by CROWN
        with the root slopes, in chunks of domains within the memory budget."""
        p, v, n = self.pref, self.vs[i], self.sizes[i]
        rows, slopes = self.slopes[i]
        R = len(rows)
        A = self._eye(rows, n, p.dtype)[None]
        width = max(self.net.size_of(w) for w in range(v + 1))
        per = 2 * R * width * (torch.finfo(p.dtype).bits // 8) * 8
        step = max(1, self.opts.memory_mb * 2**20 // per)
        nl = torch.full((D, n), -torch.inf, dtype=p.dtype)
        nu = torch.full((D, n), torch.inf, dtype=p.dtype)
        for a in range(0, D, step):
            b = min(D, a + step)
            sub = {w: (x[a:b], y[a:b]) for w, (x, y) in pre.items()}
            low = crown_lower(p, v, A.expand(b - a, -1, -1), lo[a:b], hi[a:b], sub, slopes)
            nl[a:b, rows], nu[a:b, rows] = low[:, :R], -low[:, R:]
        return nl, nu

    @staticmethod
    def relax_parts(split, l, u, dt) -> tuple:
        """What ``relaxations`` needs besides alpha, computed once per batch: the unsided
        triangle (upper slope, intercept, CROWN's lower slope) and the active, inactive and
        free masks, all (D, 1, N)."""
        up0, icpt0, lo0 = (t.to(dt)[:, None, :] for t in relu_relaxation(l, u))
        act, ina = (split > 0)[:, None, :], (split < 0)[:, None, :]
        free = ((l < 0) & (u > 0) & (split == 0))[:, None, :]
        return up0, icpt0, lo0, act, ina, free, split.to(dt)[:, None, :]

    def relaxations(self, parts: tuple, alpha) -> dict:
        """Per ReLU input, the ``Relaxation`` of each domain and atom (D, S, n). Free neurons:
        the triangle upper line and lower slope alpha. Split active (z >= 0): lower line
        y >= z; upper line t * z + (1 - t) * (the unsided triangle line), t = that neuron's
        alpha slot - both lines are valid there, and t = 0 keeps the parent's line, which the
        identity alone can lose to (the upper bound u of z enters the triangle's intercept;
        backward substitution of z does not know it). Split inactive: y = 0."""
        up0, icpt0, lo0, act, ina, free, _ = parts
        dt = alpha.dtype
        zero, one = torch.zeros((), dtype=dt), torch.ones((), dtype=dt)
        up_s = torch.where(act, alpha + (1 - alpha) * up0, torch.where(ina, zero, up0))
        up_b = torch.where(act, (1 - alpha) * icpt0, torch.where(ina, zero, icpt0))
        lo_s = torch.where(act, one, torch.where(ina, zero, torch.where(free, alpha, lo0)))
        parts = [self.per_layer(t) for t in (up_s, up_b, lo_s)]
        return {v: Relaxation(parts[0][v], parts[1][v], parts[2][v]) for v in self.vs}

    def lower(self, p: Prop, split, l, u, alpha, beta, relu_out=None, input_coef=None,
              parts: tuple | None = None):  # fmt: skip
        """Lower bounds (D, S) of the atoms' c . y on the domains; ``parts``: ``relax_parts``
        of (split, l, u) in p's dtype, if already computed."""
        dt = p.dtype
        D, S = split.shape[0], self.C.shape[0]
        alpha, beta = alpha.to(dt), beta.to(dt)
        parts = parts if parts is not None else self.relax_parts(split, l, u, dt)
        pre = self.relaxations(parts, alpha)
        extra = self.per_layer(-beta * parts[-1])
        A = self.C.to(dt).expand(D, S, -1)
        lo, hi = self.lo.to(dt).expand(D, -1), self.hi.to(dt).expand(D, -1)
        return crown_lower(p, self.net.output, A, lo, hi, pre, None, input_coef, extra, relu_out)

    def ruled(self, lb):
        """(D, K) disjuncts ruled out: some atom of each has lb > b."""
        hit = lb > self.b  # (D, S)
        return (hit[:, None, :] & self.member[None]).any(2)

    def open_rows(self, lb):
        """(D, S) atoms whose disjunct is still open."""
        return (~self.ruled(lb)).to(lb.dtype) @ self.member.to(lb.dtype) > 0

    def key(self, lb):
        """Priority (D,): the worst open disjunct's best atom margin (lower = worse; +inf =
        closed)."""
        margin = lb - self.b
        per_k = torch.where(self.member[None], margin[:, None, :], -torch.inf).max(2).values
        per_k = torch.where(self.ruled(lb), torch.inf, per_k)
        return per_k.min(1).values


def _outward(lo, hi, dt):
    """(lo, hi) float64 in dtype dt, rounded outward (the box can only grow)."""
    if dt == lo.dtype:
        return lo, hi
    a, b = lo.to(dt), hi.to(dt)
    a = torch.where(a.double() > lo, torch.nextafter(a, a.new_tensor(-torch.inf)), a)
    b = torch.where(b.double() < hi, torch.nextafter(b, b.new_tensor(torch.inf)), b)
    return a, b


def _optimise(P: _Problem, B: _Batch, iters: int):
    """Adam on alpha and beta (opt dtype); returns the best (alpha, beta) per atom. Domains
    closed by their best iterate so far (or their parent's bound) leave the computation once
    a quarter of those still optimised have closed."""
    dt, opts = P.p32.dtype, P.opts
    alpha = B.alpha.clone().requires_grad_(True)
    beta = B.beta.clone().requires_grad_(True)
    best_a, best_b = B.alpha.clone(), B.beta.clone()
    best = B.lb.to(dt).clone()  # (the parent's bound: a floor for what closes a domain)
    opt = torch.optim.Adam([{"params": [alpha], "lr": opts.lr_alpha},
                            {"params": [beta], "lr": opts.lr_beta}], fused=True)  # fmt: skip
    idx = torch.arange(len(B.split))
    split = B.split
    parts = P.relax_parts(B.split, B.l, B.u, dt)
    for _ in range(iters):
        if time.perf_counter() > P.deadline:  # any iterate's bound is valid: stop on time
            break
        lb = P.lower(P.p32, split, None, None, alpha, beta, parts=parts)
        with torch.no_grad():
            better = lb > best[idx]
            best[idx] = torch.where(better, lb, best[idx])
            best_a[idx] = torch.where(better[..., None], alpha, best_a[idx])
            best_b[idx] = torch.where(better[..., None], beta, best_b[idx])
            open_ = P.open_rows(best[idx])
            alive = open_.any(1)
        if not alive.any() or not lb.requires_grad:
            break
        opt.zero_grad()
        (-(lb * open_).sum()).backward()
        opt.step()
        with torch.no_grad():
            alpha.clamp_(0.0, 1.0)
            beta.clamp_(min=0.0)
        if int(alive.sum()) < 0.75 * len(idx):
            idx, split = idx[alive], split[alive]
            parts = tuple(t[alive] for t in parts)
            alpha, beta = _narrow(opt, alive, (alpha, beta))
    return best_a.detach(), best_b.detach()


def _narrow(opt, keep, params) -> list:
    """New leaves holding the rows ``keep`` of the parameters, swapped into the optimiser
    (one parameter per group) with their Adam state narrowed alike."""
    new = []
    for group, p in zip(opt.param_groups, params, strict=True):
        q = p.detach()[keep].clone().requires_grad_(True)
        st = opt.state.pop(p, {})
        opt.state[q] = {k: (v[keep] if v.dim() and v.shape[0] == len(keep) else v)
                        for k, v in st.items()}  # fmt: skip
        group["params"] = [q]
        new.append(q)
    return new


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


def _branch(P: _Problem, B: _Batch, relu_out, open_):
    """(D,) the neuron to split next per domain (-1 where no unstable neuron is left) and
    (D, S) the atoms' coefficients on its ReLU output. The ``fsb`` best neurons by intercept
    score are each tried - both plain children bounded once, no optimisation - and the one
    whose worse child comes out best is taken."""
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
        kids = _children(B.take(rep), None, cols, keep=False)
        with torch.no_grad():
            lb = P.lower(P.p32, kids.split, kids.l, kids.u, kids.alpha, kids.beta)
        key = P.key(lb.double())
        worse = torch.minimum(key[: D * k], key[D * k :]).reshape(D, k)
        worse = torch.where(top_s > 0, worse, -torch.inf)
        pick = top[torch.arange(D), worse.argmax(1)]
    else:
        pick = top[:, 0]
    at = a[torch.arange(D), :, pick]
    return torch.where(none, torch.full_like(pick, -1), pick), at


def _bound(P: _Problem, B: _Batch, iters: int):
    """Optimise, then the deciding float64 bounds. Returns the batch with alpha, beta and lb
    (never below the parent's: a parent's bound holds on its children; +inf where the split
    sides are infeasible), the neurons to split next (D,), their coefficients (D, S) and
    candidate inputs (D, n_in): the box vertex minimising each domain's worst open atom's
    linear lower bound."""
    alpha, beta = _optimise(P, B, iters)
    relu_out: dict = {}
    coef: list = []
    with torch.no_grad():
        lb = P.lower(P.p64, B.split, B.l, B.u, alpha, beta, relu_out, coef)
        lb = torch.maximum(lb, B.lb)
        empty = ((B.split > 0) & (B.u < 0)) | ((B.split < 0) & (B.l > 0)) | (B.l > B.u)
        lb = torch.where(empty.any(1, keepdim=True), torch.inf, lb)
        B = _Batch(B.split, B.l, B.u, alpha, beta, lb, B.depth)
        open_ = P.open_rows(lb)
        # only the domains still open get a branching decision (FSB bounds extra children)
        live = torch.nonzero(open_.any(1)).flatten()
        branch = torch.full((len(lb),), -1, dtype=torch.long)
        at = lb.new_zeros(lb.shape)
        if len(live):
            sub = {v: c[live] for v, c in relu_out.items()}
            branch[live], at[live] = _branch(P, B.take(live), sub, open_[live].to(lb.dtype))
        worst = torch.where(open_, lb - P.b, torch.inf).argmin(1)
        if coef[0] is None:
            x = ((P.lo + P.hi) / 2).expand(len(lb), -1)
        else:
            c = coef[0][torch.arange(len(lb)), worst]
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


def bab(net: Network, lo, hi, pre: dict, C, b, owner, deadline: float,
        confirm: Callable[[np.ndarray], object],
        opts: BabOptions = BabOptions()) -> BabResult:  # fmt: skip
    """Decide whether any x in [lo, hi] has, for some disjunct k, C[r] . y <= b[r] for every
    atom r with owner[r] == k. ``pre[v] = (l, u)``: sound root bounds (flat) of every ReLU
    input (e.g. alpha-CROWN's); ``confirm(x)`` re-checks a candidate input (flat float64) and
    returns something true for a real counterexample, None otherwise."""
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

    def visit(B: _Batch, iters: int):
        nonlocal count, stuck
        B, branch, at, x = _bound(P, B, iters)
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

    found = visit(_root(P), opts.root_iters)
    while found is None and heap:
        if time.perf_counter() > deadline:
            return BabResult(TIMEOUT, count, depth, note=f"{len(heap)} domains open")
        if len(heap) > cap:
            return BabResult(UNKNOWN, count, depth, note=f"over {cap} open domains (memory cap)")
        items = [heapq.heappop(heap)[2] for _ in range(min(opts.batch, len(heap)))]
        parents = _Batch.stack([it[:7] for it in items])
        cols = torch.tensor([it[7] for it in items])
        kids = _children(parents, torch.stack([it[8] for it in items]), cols)
        if opts.refresh:
            first = int(P.layer[cols].min()) + 1
            l, u = P.refresh(kids.split, kids.l, kids.u, first)
            kids = _Batch(kids.split, l, u, *kids.fields()[3:])
        depth = max(depth, int(kids.depth.max()))
        found = visit(kids, opts.iters)
    if found is not None:
        return BabResult(SAT, count, depth, found)
    if stuck:
        return BabResult(UNKNOWN, count, depth, note=f"{stuck} fully split domains stayed open")
    return BabResult(UNSAT, count, depth)
