"""The pair's branch-and-bound stage: the robust route (each network's own robustness tree)
against the exhaustive answer on random 2-D pairs."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from fkdverify.bounds import network_bounds
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from fkdverify.pair import CertifyOptions, PairContext
from fkdverify.pair.certify import questions
from fkdverify.pair.stages import bab as bab_stage
from fkdverify.pair.stages.bab import robust_agreement, robust_atoms, robust_route
from fkdverify.pair.state import PointState
from fkdverify.words import Verdict
from tests.builders import random_mlp

TAU = CertifyOptions(eps=0.0).tau


def _grid(lo, hi, n=301):
    g = np.linspace(0, 1, n)
    return np.array(list(itertools.product(g, g))) * (hi - lo) + lo


def test_robust_atoms_are_class_j_beats_c_by_tau():
    C, b, owner = robust_atoms(4, 2, [0, 2, 3], 1e-4)
    assert C.tolist() == [[-1, 0, 1, 0], [0, 0, 1, -1]]  # z_c - z_j <= -tau, j in {0, 3}
    assert b.tolist() == [-1e-4, -1e-4] and owner.tolist() == [0, 1]


@pytest.mark.parametrize("pgd", [True, False])  # False: the trees must refute themselves
def test_robust_route_matches_the_exhaustive_answer(tmp_path, monkeypatch, pgd):
    """Random 2-D pairs at points where both pick the same class: a network the route
    reduces to its class has no grid point where another class beats it by tau; a network it
    calls not robust has a grid point where another class wins (up to a cell); and both
    outcomes occur (a route that never proves or never refutes fails here)."""
    if not pgd:
        monkeypatch.setattr(bab_stage, "ROBUST_PGD_CHECKS", 0)
    proved = refuted = 0
    for seed in range(8):
        t = random_mlp(tmp_path / f"t{seed}.onnx", [2, 12, 12, 3], seed=seed, scale=3.0)
        s = random_mlp(tmp_path / f"s{seed}.onnx", [2, 10, 3], seed=100 + seed, scale=3.0)
        ctx = PairContext(import_onnx(t), import_onnx(s), t, s)
        rng = np.random.default_rng(seed)
        xs = rng.random((200, 2))
        same = xs[evaluate(ctx.teacher, xs).argmax(1) == evaluate(ctx.student, xs).argmax(1)]
        for eps, x0 in zip((0.05, 0.15, 0.3), same, strict=False):
            opts = CertifyOptions(eps=eps)
            c = int(evaluate(ctx.teacher, x0)[0].argmax())
            q = questions([x0], [c], opts, [seed])[0]
            pb = network_bounds(ctx.product, q.lo, q.hi, "crown")
            full = (list(range(3)), list(range(3)))
            (ct, cs), notes = robust_route(ctx, q, full, pb, time.perf_counter() + 20, opts)
            xs = _grid(q.lo, q.hi)
            for cands, net, word in ((ct, ctx.teacher, "teacher"), (cs, ctx.student, "student")):
                z = evaluate(net, xs)
                beats = np.delete(z, c, 1).max(1) - z[:, c]
                if cands == [c]:
                    assert beats.max() < TAU, (seed, eps, word, notes)
                    proved += 1
                elif any(n.startswith(word + (" not robust" if pgd else " robustness bab: not"))
                         for n in notes):  # fmt: skip
                    refuted += 1
                    assert beats.max() > -1e-2, (seed, eps, word, notes)  # a cell's change
    assert proved >= 10 and refuted >= 5, (proved, refuted)


def test_two_robust_networks_give_robust_agreement(tmp_path):
    """S = T at a point deep inside its class: the route proves both and says agree."""
    t = random_mlp(tmp_path / "t.onnx", [2, 12, 12, 3], seed=3, scale=3.0)
    ctx = PairContext(import_onnx(t), import_onnx(t), t, t)
    rng = np.random.default_rng(0)
    xs = rng.random((400, 2))
    z = evaluate(ctx.teacher, xs)
    top = np.sort(z, 1)
    x0 = xs[int(np.argmax(top[:, -1] - top[:, -2]))]  # the most confident of 400 points
    c = int(evaluate(ctx.teacher, x0)[0].argmax())
    opts = CertifyOptions(eps=0.01)
    q = questions([x0], [c], opts, [0], preds=[(c, c)])[0]
    pb = network_bounds(ctx.product, q.lo, q.hi, "ibp")  # loose on purpose: the trees decide
    npair = ctx.npair
    st = PointState(pair_ub=np.full(2 * npair, 10.0))  # every class a candidate
    cands, found = robust_agreement(ctx, q, st, pb, time.perf_counter() + 20, opts)
    assert cands == ([c], [c])
    assert found[0].agreement == Verdict.AGREE, found[0].notes
