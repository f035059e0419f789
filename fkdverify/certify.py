"""One point through the stages of DESIGN.md section 3: attack -> bounds -> exact MILP.

Agreement with MILP: first each network's robustness at class c, one feasibility MILP per
class j that the bounds leave open (small models, no variables for stable neurons); if
both are robust the pair agrees; if exactly one is robust, the other's counterexample is a
disagreement; otherwise the one-hot joint MILP over the product network (Appendix A) looks
for a strict disagreement. Every proof MILP asks with a margin tau: ``z_j - z_c >= -tau``
infeasible proves ``z_j < z_c`` beyond the solver's tolerances; a feasible point is only a
candidate until the referee confirms it on the original ONNX files.

Why agreement is proven only as robust agreement: if both networks leave c inside the ball and
still agreed everywhere, their decision boundaries would coincide there, and at those points
both tie; a proof that tolerates the solver's tolerance cannot exclude such near-ties."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .attack import GAP_SIGNS, AttackOptions, attack_disagreement, attack_gap
from .bounds import Bounds, network_bounds, spec_bounds
from .errors import InputError, SolverRefused, SoundnessError
from .milp.backends import solve
from .milp.gap import initial_terms, joint_gap_model, refine, usable
from .milp.model import Solution, Status
from .milp.properties import disagreement, margin_extreme, margin_violation, pair_index, pair_matrix
from .milp.tighten import lp_tighten
from .net.graph import Network
from .net.product import product
from .net.torch_net import TorchNet
from .recheck import Referee
from .results import AGREE, DISAGREE, FAITHFUL, UNFAITHFUL, UNKNOWN, Result
from .softmax import confidence_bounds

PROPERTIES = ("faithful", "agreement", "gap")
METHODS = ("attack", "ibp", "crown", "milp")


@dataclass(frozen=True)
class CertifyOptions:
    eps: float
    delta: float = 0.1
    prop: str = "faithful"
    method: str = "milp"
    solver: str = "highs"
    timeout: float = 60.0
    gap_sign: str = "teacher-minus-student"
    tol: float = 1e-3
    tau: float = 1e-4  # proof margin on logit differences (>> solver feasibility tolerance)
    strict: float = 1e-3  # margin asked of a candidate counterexample
    milp_bounds: str = "crown"  # bounds that feed the MILP (big-M, stable neurons, classes)
    use_attack: bool = True
    lp_tighten: float = 0.0  # seconds of LP bound tightening before the MILP (0: off)
    lo: float = 0.0  # input domain D
    hi: float = 1.0
    attack: AttackOptions = field(default_factory=AttackOptions)

    def __post_init__(self):
        if not self.eps >= 0:
            raise InputError(f"--eps must be >= 0, got {self.eps}")
        if not self.delta >= 0:
            raise InputError(f"--delta must be >= 0, got {self.delta}")
        if not self.timeout > 0:
            raise InputError(f"--timeout must be > 0 seconds, got {self.timeout}")
        if self.prop not in PROPERTIES:
            raise InputError(f"--property must be one of {', '.join(PROPERTIES)}")
        if self.method not in METHODS:
            raise InputError(f"--method must be one of {', '.join(METHODS)}")
        if self.milp_bounds not in ("ibp", "crown"):
            raise InputError("--milp-bounds must be ibp or crown")
        if self.gap_sign not in GAP_SIGNS:
            raise InputError(f"--gap-sign must be one of {', '.join(GAP_SIGNS)}")


@dataclass
class _State:
    """What one point has established so far (mutable only inside ``certify_point``)."""

    agreement: str = UNKNOWN
    gap_lo: float = float("nan")
    gap_hi: float = float("nan")
    gap_method: str = ""
    cex: np.ndarray | None = None
    t_attack: float = 0.0
    t_bounds: float = 0.0
    t_milp: float = 0.0
    n_unstable: int = -1
    pair_ub: tuple = ()  # (teacher, student) upper bounds of all logit differences
    notes: list = field(default_factory=list)
    solver_used: str = ""


class PairContext:
    """The pair's networks, product, torch modules and referee: built once per worker."""

    def __init__(self, teacher: Network, student: Network, t_path: str, s_path: str):
        self.teacher, self.student = teacher, student
        self.k = teacher.n_classes
        pm = pair_matrix(self.k)
        z = np.zeros_like(pm)
        head = np.block([[pm, z], [z, pm]])  # all pairwise logit differences of both nets
        self.product, self.t_out, self.s_out = product(teacher, student, head)
        self.off = len(teacher.nodes)
        self.tnet, self.snet = TorchNet(teacher), TorchNet(student)
        self.referee = Referee(t_path, s_path, teacher, student)


def _split(bounds: Bounds, off: int) -> tuple[Bounds, Bounds]:
    bt = {v: b for v, b in bounds.pre.items() if v <= off}
    bs = {v - off: b for v, b in bounds.pre.items() if v > off}
    return Bounds(bt, bounds.method), Bounds(bs, bounds.method)


def _candidates(pair_ub: np.ndarray, k: int, t: float) -> list[int]:
    """Classes that could be the strict-by-t argmax somewhere in the box."""
    return [
        a for a in range(k) if all(pair_ub[pair_index(k, a, b)] >= t for b in range(k) if b != a)
    ]


class _Solver:
    """Runs MILPs for one point under its deadline; Gurobi refusals fall back to HiGHS."""

    def __init__(self, name: str, deadline: float, st: _State):
        self.name, self.deadline, self.st = name, deadline, st

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def __call__(self, model, share: float = 1.0, abs_gap: float = 0.0) -> Solution | None:
        """Solve with ``share`` of the time left (all of it by default)."""
        if self.left() <= 0.05:
            return None
        t0 = time.perf_counter()
        limit = self.left() * share
        try:
            sol = solve(self.name, model, limit, abs_gap=abs_gap)
        except SolverRefused as e:
            self.st.notes.append(f"{e}; fell back to HiGHS")
            self.name = "highs"
            sol = solve("highs", model, limit, abs_gap=abs_gap)
        self.st.t_milp += time.perf_counter() - t0
        self.st.solver_used = self.name
        return sol


def certify_point(
    ctx: PairContext, x0: np.ndarray, cls: int, opts: CertifyOptions, index=0, box=None
):
    """Decide one point. x0: flat input (n,); cls: class c; ``box`` = (lo, hi) replaces the
    ball B(x0, eps) when given (x0 must lie in it). Returns (Result fields, cex)."""
    t_start = time.perf_counter()
    deadline = t_start + opts.timeout
    st = _State()
    if box is None:
        lo = np.clip(x0 - opts.eps, opts.lo, opts.hi)
        hi = np.clip(x0 + opts.eps, opts.lo, opts.hi)
    else:
        lo, hi = (np.asarray(b, np.float64).reshape(-1) for b in box)
        if not (np.all(lo <= x0) and np.all(x0 <= hi)):
            raise InputError("the point does not lie in the given box")
    want_agree = opts.prop in ("faithful", "agreement")
    want_gap = opts.prop in ("faithful", "gap")
    ref = ctx.referee

    # 1. attack --------------------------------------------------------------------------
    t0 = time.perf_counter()
    if opts.use_attack:
        _attack(ctx, st, x0, lo, hi, cls, opts, want_agree, want_gap)
    if want_gap:  # the clean point is a witness too
        g = ref.gap(x0, lo, hi, cls, opts.gap_sign)
        if g is not None and not g <= st.gap_lo:
            st.gap_lo = g
    st.t_attack = time.perf_counter() - t0

    # 2. bounds --------------------------------------------------------------------------
    if opts.method != "attack":
        t0 = time.perf_counter()
        bmethod = {"ibp": "ibp", "crown": "crown"}.get(opts.method, opts.milp_bounds)
        pb = network_bounds(ctx.product, lo, hi, bmethod)
        open_ = want_agree and st.agreement == UNKNOWN
        if opts.method == "milp" and opts.lp_tighten > 0 and open_:
            pb, _ = lp_tighten(ctx.product, pb, lo, hi, min(opts.lp_tighten, opts.timeout / 2))
        npair = len(pair_matrix(ctx.k))
        _, ub = spec_bounds(ctx.product, lo, hi, pb, np.eye(2 * npair))
        ub_t, ub_s = ub[:npair], ub[npair:]
        bt, bs = _split(pb, ctx.off)
        st.pair_ub = (ub_t, ub_s)
        st.n_unstable = pb.n_unstable()
        st.t_bounds = time.perf_counter() - t0
        cand_t = _candidates(ub_t, ctx.k, -opts.tau)
        cand_s = _candidates(ub_s, ctx.k, -opts.tau)
        if want_agree and len(cand_t) == 1 and cand_t == cand_s:
            if st.agreement == DISAGREE:
                raise SoundnessError(f"point {index}: bounds prove agreement, attack disagrees")
            st.agreement = AGREE
        if want_gap:
            st.gap_hi = _decoupled_gap(ub_t, ub_s, cls, ctx.k, opts.gap_sign)
            st.gap_method = f"decoupled-{bmethod}"

        # 3. MILP ------------------------------------------------------------------------
        if opts.method == "milp":
            run = _Solver(opts.solver, deadline, st)
            if want_agree and st.agreement == UNKNOWN:
                _milp_agreement(ctx, run, st, bt, bs, lo, hi, cls, ub_t, ub_s, cand_t, opts)
            if want_gap and _gap_open(st, opts):
                _milp_gap(ctx, run, st, bt, bs, lo, hi, cls, ub_t, ub_s, opts)
            if run.left() <= 0.05:
                st.notes.append("time limit")

    if st.gap_lo > st.gap_hi:
        raise SoundnessError(f"point {index}: gap lower {st.gap_lo} > upper {st.gap_hi}")
    return _finish(ctx, st, x0, cls, opts, index, t_start)


def _attack(ctx, st: _State, x0, lo, hi, c, opts, want_agree: bool, want_gap: bool):
    """PGD for a disagreement and for the worst gap; only re-checked points are kept."""
    if want_agree:
        cands = attack_disagreement(ctx.tnet, ctx.snet, x0, lo, hi, c, ctx.k, opts.attack)
        for cand in cands[:5]:
            if ctx.referee.disagreement(cand, lo, hi):
                st.agreement, st.cex = DISAGREE, np.clip(cand, lo, hi)
                break
    if want_gap:
        xg, _ = attack_gap(ctx.tnet, ctx.snet, x0, lo, hi, c, opts.gap_sign, opts.attack)
        g = ctx.referee.gap(xg, lo, hi, c, opts.gap_sign)
        if g is not None and not g <= st.gap_lo:
            st.gap_lo = g


def _gap_open(st: _State, opts: CertifyOptions) -> bool:
    if opts.prop == "gap":
        return not st.gap_hi - st.gap_lo <= opts.tol
    # faithful: open unless already decided by the gap or by a disagreement
    return st.agreement != DISAGREE and not (st.gap_hi <= opts.delta or st.gap_lo > opts.delta)


def _margins(ub_pairs: np.ndarray, c: int, k: int):
    """(lower, upper) of m_j = z_c - z_j for j != c from the pairwise upper bounds."""
    others = [j for j in range(k) if j != c]
    up = np.array([ub_pairs[pair_index(k, c, j)] for j in others])
    low = np.array([-ub_pairs[pair_index(k, j, c)] for j in others])
    return low, up


def _decoupled_gap(ub_t, ub_s, c, k, sign) -> float:
    tl, tu = _margins(ub_t, c, k)
    sl, su = _margins(ub_s, c, k)
    return _gap_from_margins(tl, tu, sl, su, sign)


def _gap_from_margins(tl, tu, sl, su, sign) -> float:
    pt_lo, pt_hi = confidence_bounds(tl, tu)
    ps_lo, ps_hi = confidence_bounds(sl, su)
    up = pt_hi - ps_lo
    if sign == "student-minus-teacher":
        up = ps_hi - pt_lo
    elif sign == "abs":
        up = max(pt_hi - ps_lo, ps_hi - pt_lo)
    return float(min(up, 1.0))


def _robust(ctx, run, st, net, b, lo, hi, c, cand, opts):
    """(status, witness): 'robust' | 'not' (with a point where net's strict argmax != c) |
    'unknown'. One feasibility MILP per class j the bounds leave open, likeliest first."""
    status = "robust"
    ub = st.pair_ub[net is ctx.student]
    for j in sorted((j for j in cand if j != c), key=lambda j: -ub[pair_index(ctx.k, j, c)]):
        sol = None
        for t in (-opts.tau, opts.strict):  # a proof attempt, then a strict witness
            model, xid = margin_violation(net, b, lo, hi, c, j, t)
            sol = run(model)
            if sol is None:
                return "unknown", None
            if sol.status != Status.OPTIMAL:
                break
            x = np.clip(sol.x[xid], lo, hi)
            pick = ctx.referee.strict_pick(x, teacher=net is ctx.teacher)
            if pick is not None and pick != c:
                return "not", x
        if sol.status != Status.INFEASIBLE or t > 0:
            status = "unknown"
    return status, None


def network_robustness(ctx: PairContext, teacher: bool, lo, hi, c: int, opts: CertifyOptions):
    """Is one network of the pair robust at class c on the box? ('robust' | 'not' | 'unknown',
    witness re-checked on the ONNX file or None): CROWN, then one MILP per open class."""
    st = _State()
    net = ctx.teacher if teacher else ctx.student
    b = network_bounds(net, lo, hi, opts.milp_bounds)
    _, ub = spec_bounds(net, lo, hi, b, pair_matrix(ctx.k))
    st.pair_ub = (ub, ub)
    cand = _candidates(ub, ctx.k, -opts.tau)
    if cand == [c]:
        return "robust", None
    run = _Solver(opts.solver, time.perf_counter() + opts.timeout, st)
    return _robust(ctx, run, st, net, b, lo, hi, c, cand, opts)


def _milp_agreement(ctx, run, st, bt, bs, lo, hi, c, ub_t, ub_s, cand_t, opts):
    ref = ctx.referee
    cand_s = _candidates(ub_s, ctx.k, -opts.tau)
    # The network with fewer undecided ReLUs first: its witness is often a disagreement
    # already (the other keeps c there), which spares the other's harder proof.
    nets = sorted([(ctx.teacher, bt, cand_t), (ctx.student, bs, cand_s)],
                  key=lambda n: n[1].n_unstable())  # fmt: skip
    verdicts = []
    for net, b, cand in nets:
        r, x = _robust(ctx, run, st, net, b, lo, hi, c, cand, opts)
        if r == "not" and ref.disagreement(x, lo, hi):
            st.agreement, st.cex = DISAGREE, x
            return
        if r == "unknown":
            return
        verdicts.append(r)
    if verdicts == ["robust", "robust"]:
        st.agreement = AGREE
        return
    if run.left() <= 0.05:
        return
    # Both networks leave class c. If they agreed everywhere their decision boundaries would
    # coincide inside the ball, where both tie: agreement then holds only up to near-ties and
    # no tolerance-safe proof exists. The joint one-hot MILP looks for a strict disagreement.
    ct, cs = _candidates(ub_t, ctx.k, opts.strict), _candidates(ub_s, ctx.k, opts.strict)
    model, xid = disagreement(
        ctx.teacher, ctx.student, bt, bs, lo, hi, ct, cs, ub_t, ub_s, opts.strict
    )
    sol = run(model)
    if sol is None or sol.status not in (Status.OPTIMAL, Status.INFEASIBLE):
        return
    if sol.status == Status.INFEASIBLE:
        st.notes.append("both networks change class inside the ball; no strict disagreement")
        return
    x = np.clip(sol.x[xid], lo, hi)
    if ref.disagreement(x, lo, hi):
        st.agreement, st.cex = DISAGREE, x


GAP_PAD = 1e-5  # solver tolerances on the gap MILP's objective (probabilities)


def _milp_gap(ctx, run, st, bt, bs, lo, hi, c, ub_t, ub_s, opts):
    """Tighten Delta_hi: the joint relaxation (Appendix A) over the product, refined around
    incumbents; then the decoupled bound with MILP-tightened margins; the smaller wins."""
    tl, tu = _margins(ub_t, c, ctx.k)
    sl, su = _margins(ub_s, c, ctx.k)
    if opts.prop == "faithful":  # only "Delta <= delta?" matters: a feasibility question
        _joint_gap(ctx, run, st, bt, bs, lo, hi, c, (tl, tu, sl, su), opts, 8, opts.delta)
    if _gap_open(st, opts):
        _joint_gap(ctx, run, st, bt, bs, lo, hi, c, (tl, tu, sl, su), opts, rounds=5)
    if _gap_open(st, opts):
        _decoupled_milp_gap(ctx, run, st, bt, bs, lo, hi, c, (tl, tu, sl, su), opts)


def _joint_gap(ctx, run, st, bt, bs, lo, hi, c, margins, opts, rounds, threshold=None):
    """Optimise the joint relaxation; with ``threshold``, only ask whether g can reach it
    (infeasible proves Delta_hi <= threshold)."""
    tl, tu, sl, su = margins
    sides = []
    if opts.gap_sign in ("teacher-minus-student", "abs"):
        sides.append((ctx.teacher, ctx.student, bt, bs, tl, tu, sl, su))
    if opts.gap_sign in ("student-minus-teacher", "abs"):
        sides.append((ctx.student, ctx.teacher, bs, bt, sl, su, tl, tu))
    uppers = []
    for up, low, bu, bl, ul, uu, ll, lu in sides:
        terms = initial_terms(ul, uu, ll, lu)
        if not usable(terms):
            st.notes.append("joint gap skipped: a margin range is too wide")
            return
        best = np.inf
        ask = None if threshold is None else threshold - GAP_PAD
        for _ in range(rounds):
            model, xid, _ = joint_gap_model(up, low, bu, bl, lo, hi, c, terms, ask)
            sol = run(model, share=0.5 / len(sides), abs_gap=opts.tol / 4)
            if sol is None:
                break
            if ask is not None and sol.status == Status.INFEASIBLE:
                best = threshold
                break
            if ask is None and sol.bound is not None:
                best = min(best, sol.bound + GAP_PAD)
            if sol.x is None:
                break
            x = np.clip(sol.x[xid], lo, hi)
            g = ctx.referee.gap(x, lo, hi, c, opts.gap_sign)
            if g is not None and not g <= st.gap_lo:
                st.gap_lo = g
            if not best - st.gap_lo > opts.tol or (ask is not None and st.gap_lo > threshold):
                break
            zu = ctx.tnet if up is ctx.teacher else ctx.snet
            zl = ctx.snet if up is ctx.teacher else ctx.tnet
            with torch.no_grad():
                xu = torch.as_tensor(x)[None]
                mu = _margin_vec(zu(xu)[0].numpy(), c)
                ml = _margin_vec(zl(xu)[0].numpy(), c)
            terms = refine(terms, mu, float(np.exp(-ml).sum()), ml, float(np.exp(-mu).sum()))
        uppers.append(best)
    if uppers and np.isfinite(max(uppers)):
        joint = min(max(uppers), 1.0)
        if joint < st.gap_hi:
            st.gap_hi, st.gap_method = joint, "joint-milp"


def _margin_vec(z: np.ndarray, c: int) -> np.ndarray:
    return np.array([z[c] - z[j] for j in range(len(z)) if j != c])


def _decoupled_milp_gap(ctx, run, st, bt, bs, lo, hi, c, margins, opts):
    """Decoupled gap with MILP-tightened margins: the teacher's margins maximised and the
    student's minimised (default sign); the solver's dual bound is used on a time limit."""
    tl, tu, sl, su = (m.copy() for m in margins)
    others = [j for j in range(ctx.k) if j != c]
    # the terms exp(-m) that matter most first: smallest margins
    jobs = []
    if opts.gap_sign in ("teacher-minus-student", "abs"):
        jobs += [(tu[i], "t", True, i) for i in range(len(others))]
        jobs += [(sl[i], "s", False, i) for i in range(len(others))]
    if opts.gap_sign in ("student-minus-teacher", "abs"):
        jobs += [(su[i], "s", True, i) for i in range(len(others))]
        jobs += [(tl[i], "t", False, i) for i in range(len(others))]
    for _, who, mx, i in sorted(jobs, key=lambda j: j[0]):
        net, b = (ctx.teacher, bt) if who == "t" else (ctx.student, bs)
        model, xid = margin_extreme(net, b, lo, hi, c, others[i], maximize=mx)
        sol = run(model)
        if sol is None:
            break
        if sol.bound is None:
            continue
        bound = sol.bound + (1 if mx else -1) * opts.tau  # solver tolerances
        arr = {("t", True): tu, ("t", False): tl, ("s", True): su, ("s", False): sl}[(who, mx)]
        arr[i] = min(arr[i], bound) if mx else max(arr[i], bound)
        if sol.x is not None:
            g = ctx.referee.gap(sol.x[xid], lo, hi, c, opts.gap_sign)
            if g is not None and not g <= st.gap_lo:
                st.gap_lo = g
        new_hi = _gap_from_margins(tl, tu, sl, su, opts.gap_sign)
        if new_hi < st.gap_hi:
            st.gap_hi, st.gap_method = new_hi, "decoupled-milp"
        if not _gap_open(st, opts):
            break


def _finish(ctx, st: _State, x0, cls, opts, index, t_start) -> tuple[dict, np.ndarray | None]:
    if opts.prop == "gap":
        faithful = UNKNOWN
        st.notes.append("agreement not checked (--property gap)")
    elif st.agreement == DISAGREE or st.gap_lo > opts.delta:
        faithful = UNFAITHFUL
    elif st.agreement == AGREE and st.gap_hi <= opts.delta:
        faithful = FAITHFUL
    else:
        faithful = UNKNOWN
    tp, sp_ = ctx.referee.predictions(x0)
    fields_ = dict(
        index=index,
        cls=cls,
        teacher_pred=tp,
        student_pred=sp_,
        agreement=st.agreement,
        gap_lower=st.gap_lo,
        gap_upper=st.gap_hi,
        faithful=faithful,
        eps=opts.eps,
        delta=opts.delta,
        property=opts.prop,
        method=opts.method,
        solver=st.solver_used or (opts.solver if opts.method == "milp" else ""),
        gap_method=st.gap_method,
        time_attack_s=st.t_attack,
        time_bounds_s=st.t_bounds,
        time_milp_s=st.t_milp,
        time_total_s=time.perf_counter() - t_start,
        n_unstable=st.n_unstable,
        note="; ".join(dict.fromkeys(st.notes)),
    )
    return fields_, st.cex


def make_result(fields_: dict, label: int, cex_path: str = "") -> Result:
    return Result(label=label, counterexample=cex_path, **fields_)


__all__ = ["CertifyOptions", "PairContext", "certify_point", "make_result", "GAP_SIGNS"]
