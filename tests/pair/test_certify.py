"""Known answers and soundness of the certify pipeline on tiny pairs (exact truth by grid)."""

import itertools
from dataclasses import replace

import numpy as np
import pytest

from fkdverify import defaults as D
from fkdverify.errors import InputError
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from fkdverify.pair import CertifyOptions, PairContext, certify_point
from fkdverify.pair.softmax import confidence
from tests.builders import random_mlp


def ctx_of(t, s):
    return PairContext(import_onnx(t), import_onnx(s), t, s)


def test_robust_agreement_and_gap_known_answer(xor_pair):
    ctx = ctx_of(*xor_pair)
    f, cex = certify_point(ctx, np.array([0.9, 0.1]), 0, CertifyOptions(eps=0.1))
    assert f.agreement == "agree" and cex is None
    assert f.faithful == "faithful"  # the decoupled bound is <= delta = 0.1 already; the
    assert f.gap_method == "differential"  # differential one (a bias apart) is tighter
    # p_T^0 = sigmoid(x0 - x1) < p_S^0 = sigmoid(x0 - x1 + 0.2) everywhere, so g < 0; the
    # worst gap is where x0 - x1 is largest (1.0): g = s(1.0) - s(1.2). The decoupled bound
    # cannot see that (teacher's best and student's worst are at different corners); the
    # joint MILP closes the interval.
    want = confidence(np.array([1.0])) - confidence(np.array([1.2]))
    f, _ = certify_point(ctx, np.array([0.9, 0.1]), 0, CertifyOptions(eps=0.1, prop="gap"))
    assert f.gap_method == "differential"  # the pair differs by a bias only
    assert f.gap_lower == pytest.approx(want, abs=1e-9)
    assert want <= f.gap_upper <= want + 1e-3 + 2e-5


def test_disagreement_known_answer(xor_pair):
    ctx = ctx_of(*xor_pair)
    f, cex = certify_point(ctx, np.array([0.7, 0.3]), 0, CertifyOptions(eps=0.45))
    assert f.agreement == "disagree" and f.faithful == "unfaithful"
    lo, hi = np.clip([0.25, -0.15], 0, 1), np.clip([1.15, 0.75], 0, 1)
    assert np.all(cex >= lo - 1e-12) and np.all(cex <= hi + 1e-12)
    assert cex[0] < cex[1] < cex[0] + 0.2  # the disagreement region, exactly


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="eps"):
        CertifyOptions(eps=-0.1)
    with pytest.raises(InputError, match="method"):
        CertifyOptions(eps=0.1, method="magic")


def grid_truth(t, s, lo, hi, c, n=401):
    g = np.linspace(0, 1, n)
    xs = np.array(list(itertools.product(g, g))) * (hi - lo) + lo
    zt, zs = evaluate(t, xs), evaluate(s, xs)
    st = np.sort(zt, 1)
    ss = np.sort(zs, 1)
    clear = (st[:, -1] - st[:, -2] > 1e-3) & (ss[:, -1] - ss[:, -2] > 1e-3)
    dis = bool(np.any(clear & (zt.argmax(1) != zs.argmax(1))))

    def sm(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    gap = (sm(zt)[:, c] - sm(zs)[:, c]).max()
    return dis, gap


@pytest.mark.parametrize(
    ("method", "attack", "milp_share", "prop"),
    [("milp", True, 0.25, "faithful"), ("milp", True, 0.25, "gap"), ("bab", True, 0.25, "faithful"),
     ("bab", False, 0.25, "faithful"), ("milp+bab", True, 0.25, "faithful"),
     ("milp+bab", False, 0.0, "faithful")],  # share 0: the agreement MILPs get no time
)  # fmt: skip
def test_complete_verdicts_match_grid_truth(tmp_path, monkeypatch, method, attack, milp_share,
                                            prop):  # fmt: skip
    """Never 'agree' where the grid shows a clear disagreement; gap bounds sandwich the grid
    maximum (attack <= MILP or bab <= bound; ``gap``: the joint MILP refined to tol on the
    margins that the margin MILPs tightened first); and the complete method decides (a
    certifier that always says unknown fails here). Without the attack, bab must find the
    disagreements itself; with the MILP share 0, bab decides agreement."""
    monkeypatch.setattr(D, "MILP_BAB_MILP_SHARE", milp_share)
    decided = {"agreement": 0, "gap": 0, "points": 0, "bab": 0}
    opts = CertifyOptions(eps=0.1, prop=prop, tol=1e-4, method=method, use_attack=attack)
    for seed in range(6):
        _grid_truth_case(tmp_path, seed, decided, opts)
    assert decided["points"] == 12
    if prop != "gap":  # --property gap asks only the gap
        assert decided["agreement"] >= MIN_AGREEMENT_DECIDED, decided
    assert decided["gap"] >= MIN_GAP_DECIDED, decided
    if method == "milp+bab" and milp_share == 0:  # the hand-over to bab did happen
        assert decided["bab"] > 0, decided


GRID_CELL_TOL = 1e-3  # the gap's change over one cell of the 401 x 401 grid, with room
MIN_AGREEMENT_DECIDED = 11  # of 12 (12 measured on 2026-12-01)
MIN_GAP_DECIDED = 11  # Delta_hi - Delta_lo <= tol, or Delta on one side of delta (12 measured)


def _grid_truth_case(tmp_path, seed, decided, opts):
    t = random_mlp(tmp_path / f"t{seed}.onnx", [2, 12, 12, 3], seed=seed, scale=3.0)
    s = random_mlp(tmp_path / f"s{seed}.onnx", [2, 10, 3], seed=100 + seed, scale=3.0)
    ctx = ctx_of(t, s)
    rng = np.random.default_rng(seed)
    for eps in (0.05, 0.2):
        x0 = rng.random(2)
        c = int(evaluate(ctx.teacher, x0)[0].argmax())
        f, cex = certify_point(ctx, x0, c, replace(opts, eps=eps))
        lo, hi = np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1)
        dis, gap = grid_truth(ctx.teacher, ctx.student, lo, hi, c)
        if f.agreement == "agree":
            assert not dis
        if f.agreement == "disagree":
            zt, zs = evaluate(ctx.teacher, cex)[0], evaluate(ctx.student, cex)[0]
            assert zt.argmax() != zs.argmax()
        # the grid's maximum is a sample: a refined re-checked point may lie between grid
        # points and beat it by up to the gap's change over one cell (measured 2e-5)
        assert f.gap_lower <= gap + GRID_CELL_TOL
        if not np.isnan(f.gap_upper):
            assert gap <= f.gap_upper + 1e-9
            assert f.gap_lower <= f.gap_upper
        decided["points"] += 1
        decided["agreement"] += f.agreement in ("agree", "disagree")
        decided["bab"] += "agreement bab" in f.note or "robustness bab" in f.note
        decided["gap"] += (f.gap_upper - f.gap_lower <= 1e-4 + 1e-9 or f.gap_upper <= 0.1
                           or f.gap_lower > 0.1)  # fmt: skip


def _random_pair_point(tmp_path, seed):
    """A random 2-D pair of different shapes, a random point and the teacher's class there."""
    t = random_mlp(tmp_path / f"t{seed}.onnx", [2, 12, 12, 3], seed=seed, scale=3.0)
    s = random_mlp(tmp_path / f"s{seed}.onnx", [2, 10, 3], seed=100 + seed, scale=3.0)
    ctx = ctx_of(t, s)
    x0 = np.random.default_rng(seed).random(2)
    return ctx, x0, int(evaluate(ctx.teacher, x0)[0].argmax())


@pytest.mark.parametrize("method", ["milp+bab", "milp"])  # bab's gap lines are the root's
def test_gap_refine_narrows_the_interval_and_keeps_the_verdict(tmp_path, method):
    """``--gap-refine``: a point decided faithful keeps its verdict; its interval still holds
    the grid maximum and is never wider than without refinement; and on points where the
    faithful question stopped Delta_hi at or under delta with room left, it does narrow
    (a refinement that did nothing fails here)."""
    base = CertifyOptions(eps=0.2, tol=1e-4, method=method, delta=0.6)
    narrowed = refined = 0
    for seed in range(6):
        ctx, x0, c = _random_pair_point(tmp_path, seed)
        plain, _ = certify_point(ctx, x0, c, base)
        more, _ = certify_point(ctx, x0, c, replace(base, gap_refine=5.0))
        assert more.faithful == plain.faithful and more.agreement == plain.agreement
        lo, hi = np.clip(x0 - 0.2, 0, 1), np.clip(x0 + 0.2, 0, 1)
        _, gap = grid_truth(ctx.teacher, ctx.student, lo, hi, c)
        assert more.gap_lower <= gap + GRID_CELL_TOL and gap <= more.gap_upper + 1e-9
        assert more.gap_upper <= plain.gap_upper + 1e-9
        if "gap refined" in more.note:
            refined += 1
            assert plain.agreement == "agree"
            narrowed += (more.gap_upper - more.gap_lower) < (
                plain.gap_upper - plain.gap_lower
            ) - 1e-3
    assert refined >= 1 and narrowed >= 1, (refined, narrowed)


def test_solver_refusal_falls_back_to_highs(xor_pair, tmp_path, monkeypatch):
    from fkdverify.errors import SolverRefused
    from fkdverify.milp.backends import gurobi
    from tests.builders import mlp_onnx

    def refuse(*a, **k):
        raise SolverRefused("Gurobi's licence refuses this model (test)")

    monkeypatch.setattr(gurobi, "solve", refuse)
    # the xor student with a third, dead hidden neuron: another shape, so no differential
    # bounds, and the gap needs the joint MILP
    w1 = np.array([[1.0, -1.0], [-1.0, 1.0], [0.0, 0.0]])
    w2 = np.array([[1.0, -1.0, 0.0], [0, 0, 0]])
    s = mlp_onnx(tmp_path / "s3.onnx", [(w1, np.zeros(3)), (w2, np.array([0.2, 0]))])
    ctx = ctx_of(xor_pair[0], s)
    assert not ctx.kappas
    opts = CertifyOptions(eps=0.1, prop="gap", solver="gurobi")
    f, _ = certify_point(ctx, np.array([0.9, 0.1]), 0, opts)
    assert "fell back to HiGHS" in f.note and f.solver == "highs"
    assert f.gap_method == "joint-milp"


def _layers(sizes, seed, scale):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(b, a)) * scale / np.sqrt(a), rng.normal(size=b) * 0.3)
            for a, b in zip(sizes[:-1], sizes[1:], strict=False)]  # fmt: skip


def _boundary_point(net, c_ball=0.25, tries=200, seed=0):
    """A point whose ball of radius c_ball holds two classes of ``net`` (so the network is not
    robust there: agreement can only be 'no strict disagreement')."""
    rng = np.random.default_rng(seed)
    g = np.linspace(0, 1, 21)
    for _ in range(tries):
        x0 = rng.random(2)
        lo, hi = np.clip(x0 - c_ball, 0, 1), np.clip(x0 + c_ball, 0, 1)
        xs = lo + np.array(list(itertools.product(g, g))) * (hi - lo)
        if len(set(evaluate(net, xs).argmax(1))) > 1:
            return x0
    raise AssertionError("no boundary point found")


def _padded(layers):
    """The same function with one dead neuron added to the first hidden layer (another
    shape: no differential bounds)."""
    (w0, b0), (w1, b1), *rest = layers
    w0 = np.vstack([w0, np.zeros((1, w0.shape[1]))])
    w1 = np.hstack([w1, np.zeros((w1.shape[0], 1))])
    return [(w0, np.append(b0, -1.0)), (w1, b1), *rest]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scale_student", [1.0, 0.5])
@pytest.mark.parametrize("shape", ["same", "padded"])
def test_identical_or_scaled_student_agrees_where_the_teacher_is_not_robust(
    tmp_path, seed, scale_student, shape
):
    """S = T, and S = T with its logits halved (same argmax everywhere): 'agree' even where
    both networks change class inside the ball (DESIGN.md section 1), never 'unknown' -- by
    differential bounds for the same shape, by the joint MILP for another shape."""
    from tests.builders import mlp_onnx

    layers = _layers([2, 10, 10, 3], seed, 3.0)
    t = mlp_onnx(tmp_path / "t.onnx", layers)
    w, b = layers[-1]
    student = [*layers[:-1], (w * scale_student, b * scale_student)]
    s = mlp_onnx(tmp_path / "s.onnx", student if shape == "same" else _padded(student))
    ctx = ctx_of(t, s)
    assert bool(ctx.kappas) == (shape == "same")
    x0 = _boundary_point(ctx.teacher, seed=seed)
    c = int(evaluate(ctx.teacher, x0)[0].argmax())
    f, cex = certify_point(ctx, x0, c, CertifyOptions(eps=0.25, prop="agreement"))
    assert f.agreement == "agree" and cex is None, f.note
    # decided by the differential bounds or the joint MILP, not by robustness
    assert ("differential" if shape == "same" else "never apart") in f.note
    if shape == "same":  # and the gap: exactly 0 for S = T
        f, _ = certify_point(ctx, x0, c, CertifyOptions(eps=0.25, prop="gap"))
        if scale_student == 1.0:
            assert 0.0 <= f.gap_lower <= f.gap_upper <= 1e-6, f.note


@pytest.mark.parametrize("seed", range(3))
def test_shifted_bias_student_disagrees_and_is_rechecked(tmp_path, seed):
    """S = T with a shifted output bias: the argmaxes differ near the boundary; the
    counterexample is confirmed on the ONNX files by onnxruntime."""
    import onnxruntime as ort

    from tests.builders import mlp_onnx

    layers = _layers([2, 10, 10, 3], seed, 3.0)
    t = mlp_onnx(tmp_path / "t.onnx", layers)
    w, b = layers[-1]
    s = mlp_onnx(tmp_path / "s.onnx", [*layers[:-1], (w, b + np.array([1.0, 0.0, 0.0]))])
    ctx = ctx_of(t, s)
    x0 = _boundary_point(ctx.teacher, seed=seed)
    c = int(evaluate(ctx.teacher, x0)[0].argmax())
    f, cex = certify_point(ctx, x0, c, CertifyOptions(eps=0.25, prop="agreement"))
    lo, hi = np.clip(x0 - 0.25, 0, 1), np.clip(x0 + 0.25, 0, 1)
    dis, _ = grid_truth(ctx.teacher, ctx.student, lo, hi, c)
    assert f.agreement == ("disagree" if dis else "agree"), f.note
    if dis:
        picks = [int(ort.InferenceSession(p).run(None, {"x": cex[None].astype(np.float32)})[0]
                     .argmax()) for p in (t, s)]  # fmt: skip
        assert picks[0] != picks[1]


def test_attack_finds_disagreements_where_neither_network_keeps_c(tmp_path):
    """Teacher z = (-10, x0, 0.5), student z = (-10, 0.5, x0): they disagree wherever
    x0 != 0.5 and neither ever picks class 0. Aiming at "one network keeps c" finds nothing;
    the margin loss on the pairs (a, b) does."""
    from tests.builders import mlp_onnx

    eye = (np.eye(2), np.zeros(2))
    wt = np.array([[0.0, 0], [1, 0], [0, 0]])
    t = mlp_onnx(tmp_path / "t.onnx", [eye, (wt, np.array([-10.0, 0, 0.5]))])
    s = mlp_onnx(tmp_path / "s.onnx", [eye, (wt[[0, 2, 1]], np.array([-10.0, 0.5, 0]))])
    ctx = ctx_of(t, s)
    x0 = np.array([0.7, 0.5])
    f, cex = certify_point(ctx, x0, 0, CertifyOptions(eps=0.05, method="attack",
                                                      prop="agreement"))  # fmt: skip
    assert f.agreement == "disagree" and cex is not None
    zt, zs = evaluate(ctx.teacher, cex)[0], evaluate(ctx.student, cex)[0]
    assert zt.argmax() != zs.argmax() and 0 not in (zt.argmax(), zs.argmax())


def test_complete_methods_narrow_settled_gap_intervals_with_alpha_crown(tmp_path):
    """With a complete method, a point settled by the CROWN bounds (faithful at a loose
    delta) still gets its gap interval narrowed by batched alpha-CROWN: never wider than
    CROWN's alone, still holding the grid maximum, and narrower somewhere (a narrowing that
    did nothing fails here)."""
    crown = CertifyOptions(eps=0.2, tol=1e-4, method="crown", delta=0.9)
    narrowed = settled = 0
    for seed in range(6):
        ctx, x0, c = _random_pair_point(tmp_path, seed)
        plain, _ = certify_point(ctx, x0, c, crown)
        full, _ = certify_point(ctx, x0, c, replace(crown, method="milp+bab", gap_refine=0.0))
        _, gap = grid_truth(ctx.teacher, ctx.student, np.clip(x0 - 0.2, 0, 1),
                            np.clip(x0 + 0.2, 0, 1), c)  # fmt: skip
        assert full.gap_lower <= gap + GRID_CELL_TOL and gap <= full.gap_upper + 1e-9
        assert full.gap_upper <= plain.gap_upper + 1e-9
        if plain.agreement == "agree" and plain.faithful == "faithful":
            settled += 1
            narrowed += full.gap_upper < plain.gap_upper - 1e-4 and "alpha" in full.gap_method
    assert settled >= 1 and narrowed >= 1, (settled, narrowed)


def test_a_batch_of_points_decides_each_as_alone(tmp_path):
    """The MILP methods batch a few points (the bounds stage together, then each point's
    MILPs under its own deadline): every point's verdicts equal those of the point alone, and
    its gap interval holds the grid maximum."""
    from fkdverify.pair import certify_batch

    ctx, _, _ = _random_pair_point(tmp_path, 3)
    xs = np.random.default_rng(7).random((6, 2))
    cs = [int(evaluate(ctx.teacher, x)[0].argmax()) for x in xs]
    opts = CertifyOptions(eps=0.2, method="milp+bab", delta=0.3)
    batch = certify_batch(ctx, xs, cs, opts, list(range(6)))
    for x, c, (f, _) in zip(xs, cs, batch, strict=True):
        alone, _ = certify_point(ctx, x, c, opts)
        assert (f.agreement, f.faithful) == (alone.agreement, alone.faithful)
        assert f.agreement != "unknown"
        _, gap = grid_truth(ctx.teacher, ctx.student, np.clip(x - 0.2, 0, 1),
                            np.clip(x + 0.2, 0, 1), c)  # fmt: skip
        assert f.gap_lower <= gap + GRID_CELL_TOL and gap <= f.gap_upper + 1e-9
