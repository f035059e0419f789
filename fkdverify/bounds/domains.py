"""The domains of branch and bound (``bab.py``): its options, a batch of domains (split
signs, pre-activation bounds, alpha and beta per atom), and the problem every batch shares
(the network in both dtypes, root bounds, atoms, and the bound refresh after a split)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..net.graph import Network
from ..net.torch_net import TorchNet
from .alpha import alpha_lower
from .crown import crown_lower, crown_unstable
from .rules import Prop, Relaxation, relu_relaxation
from .types import PRECISIONS


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
    # atoms bounded per open disjunct on a split domain: those of largest margin at the
    # parent (one atom above its bound closes the disjunct; the others keep the parent's
    # bounds). 0: every atom of every disjunct.
    atoms_per_disjunct: int = 1

    def __post_init__(self):
        iters = (self.iters, self.root_iters, self.interm_iters)
        if self.batch < 1 or min(*iters, self.atoms_per_disjunct) < 0 or self.fsb < 1:
            raise InputError("BaB batch and fsb must be >= 1, iterations >= 0")
        if {self.opt_precision, self.refresh_precision} - set(PRECISIONS):
            raise InputError(f"BaB precisions must be one of {', '.join(PRECISIONS)}")


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
        self.reaches = _reaches_matrix(net, self.vs)
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
        owner = np.asarray(owner)
        if owner.ndim == 2:  # a membership matrix: an atom may serve several disjuncts
            self.member = torch.as_tensor(owner, dtype=torch.bool)
        else:
            own = torch.as_tensor(owner)
            self.member = torch.stack([own == k for k in range(int(own.max()) + 1)])
        self.K = self.member.shape[0]  # member: (K, S)
        self.f32 = TorchNet(net, self.p32.dtype)
        self.deadline = float("inf")
        self.slopes: dict = {}  # root_slopes(), once the deadline is known
        self.groups: list | None = None  # set_groups()

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
                alpha_lower(p, v, A, lo, hi, pre, self.opts.interm_iters, 0.25, slopes,
                            self.deadline)  # fmt: skip
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

    def refresh(self, split, l, u, changed):
        """CROWN bounds of the unstable neurons of the layers that the ReLU layer ``changed``
        (D,) of each domain's new split reaches, given the split sides, intersected with
        (l, u); split neurons keep their own (unsided) bounds, and a layer only another
        network's split reaches (a product) is left as it is. Layers with root slopes
        (``root_slopes``) are bounded on their root-unstable neurons with those slopes; others
        by plain CROWN on each domain's unstable neurons. In float32 (``refresh_precision``)
        the box and the earlier layers' bounds are rounded outward before the pass, whose
        results carry the float32 rounding allowance."""
        p = self.pref
        l, u = l.clone(), u.clone()
        changed = torch.as_tensor(changed).expand(len(split))
        with torch.no_grad():
            for i in range(len(self.vs)):
                v, o, n = self.vs[i], self.offsets[i], self.sizes[i]
                dom = torch.nonzero(self.reaches[changed, i]).flatten()
                if v not in self.deep or not len(dom):
                    continue
                if time.perf_counter() > self.deadline:
                    break  # (bounds left unrefreshed are the parent's: still valid)
                D = len(dom)
                lo, hi = _outward(self.lo.expand(D, -1), self.hi.expand(D, -1), p.dtype)
                sp, ol, ou = split[dom], l[dom, o : o + n], u[dom, o : o + n]
                pre = self._pre(i, sp, l[dom], u[dom])
                if i in self.slopes:
                    nl, nu = self._with_slopes(i, lo, hi, pre, D)
                else:
                    cur_l, cur_u = _outward(*self.sided(sp[:, o : o + n], ol, ou), p.dtype)
                    nl, nu = crown_unstable(p, v, lo, hi, pre, cur_l, cur_u, self.opts.memory_mb,
                                            group=D)  # fmt: skip
                free = sp[:, o : o + n] == 0
                l[dom, o : o + n] = torch.where(free, torch.maximum(ol, nl.double()), ol)
                u[dom, o : o + n] = torch.where(free, torch.minimum(ou, nu.double()), ou)
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
        """What ``relaxations`` needs besides alpha, computed once per batch, all (D, 1, N):
        each relaxation line is ``base + scale * alpha`` (one fused multiply-add per line)."""
        up0, icpt0, lo0 = (t.to(dt)[:, None, :] for t in relu_relaxation(l, u))
        act, ina = (split > 0)[:, None, :].to(dt), (split < 0)[:, None, :].to(dt)
        free = ((l < 0) & (u > 0) & (split == 0))[:, None, :].to(dt)
        keep = 1 - ina
        return (up0 * keep, act * (1 - up0),  # upper slope
                icpt0 * keep, -act * icpt0,  # upper intercept
                act + (1 - act - ina - free) * lo0, free,  # lower slope
                split.to(dt)[:, None, :])  # fmt: skip

    def relaxations(self, parts: tuple, alpha) -> dict:
        """Per ReLU input, the ``Relaxation`` of each domain and atom (D, S, n). Free neurons:
        the triangle upper line and lower slope alpha. Split active (z >= 0): lower line
        y >= z; upper line t * z + (1 - t) * (the unsided triangle line), t = that neuron's
        alpha slot - both lines are valid there, and t = 0 keeps the parent's line, which the
        identity alone can lose to (the upper bound u of z enters the triangle's intercept;
        backward substitution of z does not know it). Split inactive: y = 0. Stable neurons:
        CROWN's lines."""
        up_s, up_b, lo_s = (torch.addcmul(parts[j], parts[j + 1], alpha) for j in (0, 2, 4))
        per = [self.per_layer(t) for t in (up_s, up_b, lo_s)]
        return {v: Relaxation(per[0][v], per[1][v], per[2][v]) for v in self.vs}

    def all_rows(self, D: int) -> list:
        """Every atom, as ``lower``'s ``sel``: one (D, k) block per group."""
        groups = self.groups if self.groups is not None else [torch.arange(self.C.shape[0])]
        return [g.expand(D, -1) for g in groups]

    def select(self, lb, per_disjunct: int) -> list:
        """The atoms worth bounding on each domain, as ``lower``'s ``sel``: for every disjunct
        still open, its ``per_disjunct`` atoms of largest margin ``lb - b`` (one of them must
        exceed its bound to close the disjunct), padded per group to the batch's largest count
        with the next largest. A group no open disjunct needs is left out."""
        D, S = lb.shape
        margin = (lb - self.b).clamp(min=-1e30)  # (-inf before any bound)
        score = torch.where(self.member[None], margin[:, None, :], -torch.inf)  # (D, K, S)
        m = min(per_disjunct, S)
        top = score.topk(m, 2)
        ok = torch.isfinite(top.values) & ~self.ruled(lb)[..., None]  # members of open ones
        chosen = torch.zeros(D, S, dtype=torch.bool)
        rows = torch.arange(D)[:, None, None].expand_as(top.indices)
        chosen[rows[ok], top.indices[ok]] = True
        out = []
        for g in self.all_rows(1):
            g = g[0]
            k = int(chosen[:, g].sum(1).max())
            if k:
                pick = torch.where(chosen[:, g], 1e300, margin[:, g]).topk(k, 1).indices
                out.append(g[pick])
        return out

    def lower(self, p: Prop, split, l, u, alpha, beta, relu_out=None, input_coef=None,
              parts: tuple | None = None, sel: list | None = None):  # fmt: skip
        """Lower bounds of the atoms' c . y on the domains; ``parts``: ``relax_parts`` of
        (split, l, u) in p's dtype, if already computed. ``sel`` (``select``): per group, the
        atoms (D, k) to bound on each domain; alpha and beta are then (D, sum k, N), gathered
        in that order, and so are the results (D, sum k) and the coefficients. Without it every
        atom is bounded and the results are in row order (D, S). The groups (e.g. the rows of
        each network of a product) are bounded in separate passes, each through only the
        part of the network its rows reach."""
        dt, D = p.dtype, split.shape[0]
        parts = parts if parts is not None else self.relax_parts(split, l, u, dt)
        whole = sel is None
        if whole:
            sel = self.all_rows(D)
            idx = torch.cat(sel, 1)
            alpha, beta = gather_rows(alpha, idx), gather_rows(beta, idx)
        alpha, beta = alpha.to(dt), beta.to(dt)
        C = self.C.to(dt)
        lbs, outs, coefs, o = [], [], [], 0
        for rows in sel:
            k = rows.shape[1]
            ro: dict | None = {} if relu_out is not None else None
            ic: list | None = [] if input_coef is not None else None
            a, bt = alpha[:, o : o + k], beta[:, o : o + k]
            lbs.append(self._lower_rows(p, C[rows], parts, a, bt, ro, ic))
            outs.append(ro)
            coefs.append(ic)
            o += k
        lb = torch.cat(lbs, 1)
        order = torch.argsort(idx[0]) if whole else None
        if relu_out is not None:  # each group's coefficients, zero where its rows do not reach
            for v, n in zip(self.vs, self.sizes, strict=True):
                if any(v in ro for ro in outs):
                    full = torch.cat([ro[v] if v in ro else lb.new_zeros(D, r.shape[1], n)
                                      for ro, r in zip(outs, sel, strict=True)], 1)  # fmt: skip
                    relu_out[v] = full if order is None else full[:, order]
        if input_coef is not None:
            got = [ic[0] for ic in coefs if ic[0] is not None]
            full = None
            if got:
                full = torch.cat([ic[0] if ic[0] is not None
                                  else lb.new_zeros(D, r.shape[1], got[0].shape[-1])
                                  for ic, r in zip(coefs, sel, strict=True)], 1)  # fmt: skip
                full = full if order is None else full[:, order]
            input_coef.append(full)
        return lb if order is None else lb[:, order]

    def _lower_rows(self, p: Prop, A, parts, alpha, beta, relu_out, input_coef):
        D = A.shape[0]
        pre = self.relaxations(parts, alpha)
        extra = self.per_layer(-beta * parts[-1])
        lo, hi = self.lo.to(p.dtype).expand(D, -1), self.hi.to(p.dtype).expand(D, -1)
        return crown_lower(p, self.net.output, A, lo, hi, pre, None, input_coef, extra, relu_out)

    def set_groups(self, alpha, beta) -> None:
        """Group the atoms by the ReLU layers their rows reach (one root pass): rows of a
        product's two networks are then bounded apart (``lower``)."""
        self.groups = None
        ro: dict = {}
        split = torch.zeros(1, self.N, dtype=torch.int8)
        with torch.no_grad():
            self.lower(self.p64, split, self.l, self.u, alpha, beta, relu_out=ro)
        sig: dict = {}
        for r in range(self.C.shape[0]):
            key = tuple(bool(ro[v][0, r].any()) if v in ro else False for v in self.vs)
            sig.setdefault(key, []).append(r)
        if len(sig) > 1:
            self.groups = [torch.tensor(rows) for rows in sig.values()]

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


def _reaches_matrix(net: Network, vs: list) -> torch.Tensor:
    """(L, L) bool: [i, j] when ReLU layer i (input value vs[i]) lies upstream of layer j."""
    up: list[set] = [set()]  # per value: the ReLU layers upstream of it (value 0: the input)
    pos = {v: i for i, v in enumerate(vs)}
    for node in net.nodes:
        seen = set().union(*(up[v] | ({pos[v]} if v in pos else set()) for v in node.inputs))
        up.append(seen)
    L = len(vs)
    out = torch.zeros(L, L, dtype=torch.bool)
    for j, v in enumerate(vs):
        for i in up[v]:
            out[i, j] = True
    return out


def gather_rows(t, idx):
    """t (D, S, N) at the atoms idx (D, k): (D, k, N)."""
    return t.gather(1, idx[..., None].expand(-1, -1, t.shape[2]))


def scatter_rows(t, idx, vals):
    """A copy of t (D, S, N) with the atoms idx (D, k, distinct per domain) set to vals."""
    return t.scatter(1, idx[..., None].expand(-1, -1, t.shape[2]), vals)


def _outward(lo, hi, dt):
    """(lo, hi) float64 in dtype dt, rounded outward (the box can only grow)."""
    if dt == lo.dtype:
        return lo, hi
    a, b = lo.to(dt), hi.to(dt)
    a = torch.where(a.double() > lo, torch.nextafter(a, a.new_tensor(-torch.inf)), a)
    b = torch.where(b.double() < hi, torch.nextafter(b, b.new_tensor(torch.inf)), b)
    return a, b
