"""Linear bounds of a softmax probability, joint agreement and joint gap rows: sound on
samples, and the joint gap bound is tighter than the decoupled one where the networks move
together."""

import itertools
from dataclasses import replace

import numpy as np
import pytest

from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from fkdverify.pair import CertifyOptions, PairContext
from fkdverify.pair.certify import decide, questions
from fkdverify.pair.rows import LAMBDAS, decoupled_gap, joint_agreement_rows, joint_gap
from fkdverify.pair.softmax import confidence, lower_line, upper_line
from tests.builders import random_mlp


@pytest.mark.parametrize("seed", range(20))
def test_linear_bounds_of_a_confidence_hold_on_the_whole_box(seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 6)
    lo = rng.normal(0, 3, k)
    hi = lo + rng.exponential(2, k) * (rng.random(k) > 0.2)  # some zero-width ranges
    t = lo + rng.random(k) * (hi - lo)
    wu, bu = upper_line(lo, hi, t)
    wl, bl = lower_line(lo, hi, t)
    assert (wu >= 0).all() and (wl >= 0).all()
    ms = lo + rng.random((3000, k)) * (hi - lo)
    ms = np.concatenate([ms, lo + np.array(list(itertools.product([0, 1], repeat=k))) * (hi - lo)])
    p = np.array([confidence(m) for m in ms])
    assert (p <= ms @ wu + bu).all()
    assert (p >= ms @ wl + bl).all()
    # tight at the tangent point when the box is small
    assert ms[:1] @ wu + bu >= p[:1]


def test_lines_survive_huge_margin_ranges():
    wu, bu = upper_line(np.array([-2000.0, 1.0]), np.array([5.0, 2.0]), np.zeros(2))
    wl, bl = lower_line(np.array([-2000.0, 1.0]), np.array([5.0, 2.0]), np.zeros(2))
    assert np.isfinite(wu).all() and np.isfinite(bu) and (wl == 0).all() and bl == 0.0


def test_joint_agreement_rows_cover_every_pair_of_candidates():
    rows = joint_agreement_rows([0, 1], [1, 2], 3)
    assert rows.shape == (3, len(LAMBDAS), 12)  # (0,1), (0,2), (1,2)
    assert np.allclose(rows.sum(axis=2), 1.0)  # convex combinations of two head rows


def _conf(z, c):
    e = np.exp(z - z.max(1, keepdims=True))
    return e[:, c] / e.sum(1)


def _pair(tmp_path, seed):
    t = random_mlp(tmp_path / "t.onnx", [3, 12, 12, 3], seed=seed, scale=1.5)
    s = random_mlp(tmp_path / "s.onnx", [3, 8, 3], seed=seed + 100, scale=1.5)
    return PairContext(import_onnx(t), import_onnx(s), t, s)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sign", ["teacher-minus-student", "student-minus-teacher", "abs"])
def test_bound_stage_is_sound_on_a_grid(tmp_path, seed, sign):
    """Every Delta_hi from the bound stage (decoupled or joint) is >= the gap on a dense grid,
    and agreement is never claimed where the grid shows a disagreement."""
    ctx = _pair(tmp_path, seed)
    rng = np.random.default_rng(seed)
    x0 = rng.random((3, 3))
    eps = 0.15
    lo, hi = np.clip(x0 - eps, 0, 1), np.clip(x0 + eps, 0, 1)
    for method in ("crown", "alpha-crown"):
        opts = CertifyOptions(eps=eps, method=method, gap_sign=sign)
        cls = [int(np.argmax(evaluate(ctx.teacher, x)[0])) for x in x0]
        qs = questions(list(x0), cls, opts, range(3), boxes=list(zip(lo, hi, strict=True)))
        sts = decide(ctx, qs, replace(opts, use_attack=False))
        g = np.linspace(0, 1, 31)
        for b, st in enumerate(sts):
            grid = lo[b] + np.array(list(itertools.product(g, g, g))) * (hi[b] - lo[b])
            zt, zs = evaluate(ctx.teacher, grid), evaluate(ctx.student, grid)
            pt, ps = _conf(zt, cls[b]), _conf(zs, cls[b])
            gap = {"teacher-minus-student": pt - ps, "student-minus-teacher": ps - pt,
                   "abs": np.abs(pt - ps)}[sign]  # fmt: skip
            assert gap.max() <= st.gap_hi + 1e-9, (method, b, st.gap_method)
            if st.agreement == "agree":
                assert (zt.argmax(1) == zs.argmax(1)).all()


def test_joint_gap_beats_decoupled_when_the_networks_move_together(tmp_path):
    """Teacher = student + a constant 0.2 on class 0's logit: both confidences rise and fall
    together; the decoupled bound pairs the teacher's best with the student's worst."""
    from tests.builders import mlp_onnx

    w1 = np.array([[3.0, -3.0], [-3.0, 3.0]])
    b1 = np.zeros(2)
    t = mlp_onnx(tmp_path / "t.onnx", [(w1, b1), (np.eye(2), np.array([0.2, 0.0]))])
    s = mlp_onnx(tmp_path / "s.onnx", [(w1, b1), (np.eye(2), np.zeros(2))])
    ctx = PairContext(import_onnx(t), import_onnx(s), t, s)
    x0 = np.array([[0.7, 0.3]])
    lo, hi = x0 - 0.05, x0 + 0.05
    opts = CertifyOptions(eps=0.05, method="crown", use_attack=False, differential=False)
    (st,) = decide(ctx, questions([x0[0]], [0], opts, [0], boxes=[(lo[0], hi[0])]), opts)
    assert st.gap_method == "joint-crown"
    decoupled = decoupled_gap(*ctx.split(st.pair_ub), 0, 2, opts.gap_sign)
    g = np.linspace(0, 1, 201)
    grid = lo[0] + np.array(list(itertools.product(g, g))) * (hi[0] - lo[0])
    true = (_conf(evaluate(ctx.teacher, grid), 0) - _conf(evaluate(ctx.student, grid), 0)).max()
    assert true <= st.gap_hi <= true + 0.015 < decoupled - 0.05  # 0.052 vs 0.039 vs 0.135
    # the pair differs by a bias only: the differential bound is exact
    (st,) = decide(ctx, questions([x0[0]], [0], opts, [0], boxes=[(lo[0], hi[0])]),
                   replace(opts, differential=True))  # fmt: skip
    assert st.gap_method == "differential" and true <= st.gap_hi <= true + 1e-6


def test_joint_gap_takes_the_best_row_per_side():
    ub = np.array([0.3, 0.1, 0.5, 0.4])
    consts = np.zeros(4)
    side = np.array([0, 0, 1, 1])
    assert joint_gap(ub, consts, side) == pytest.approx(0.4)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sign", ["teacher-minus-student", "student-minus-teacher", "abs"])
def test_differential_gap_is_sound_and_tight_for_small_differences(seed, sign):
    """Sampled logits z_S in a box and z_T = z_S + d with d in a box never exceed the
    differential gap bound; for tiny d the bound is tiny too."""
    from fkdverify.pair.rows import differential_gap

    rng = np.random.default_rng(seed)
    k, c = 4, int(rng.integers(4))
    zl = rng.normal(0, 2, k)
    zu = zl + rng.random(k) * 3
    for width in (1e-7, 0.05, 1.0):
        dl = rng.normal(0, width, k)
        du = dl + rng.random(k) * width

        def ub(lo, hi):
            return np.array([hi[a] - lo[b] for a in range(k) for b in range(k) if a != b])

        bound = differential_gap(ub(dl, du), ub(zl + dl, zu + du), ub(zl, zu), c, k, sign)
        zs = zl + rng.random((20000, k)) * (zu - zl)
        zt = zs + dl + rng.random((20000, k)) * (du - dl)
        pt, ps = _conf(zt, c), _conf(zs, c)
        gap = {"teacher-minus-student": pt - ps, "student-minus-teacher": ps - pt,
               "abs": np.abs(pt - ps)}[sign]  # fmt: skip
        assert gap.max() <= bound + 1e-12
        if width == 1e-7:
            assert bound < 1e-6
