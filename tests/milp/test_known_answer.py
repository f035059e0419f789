"""Known-answer MILPs on hand-weighted networks, on every installed back-end."""

import itertools

import numpy as np
import pytest

from fkdverify.bounds import network_bounds, spec_bounds
from fkdverify.errors import SolverError
from fkdverify.milp.backends import SOLVERS, get_backend
from fkdverify.milp.model import Status
from fkdverify.milp.properties import margin_extreme, margin_violation
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from tests.builders import random_mlp


def installed():
    out = []
    for s in SOLVERS:
        try:
            get_backend(s).check()
            out.append(s)
        except SolverError:
            pass
    return out


SOLVERS_HERE = installed()


def test_highs_and_cbc_installed():
    assert "highs" in SOLVERS_HERE and "cbc" in SOLVERS_HERE


@pytest.mark.parametrize("solver", SOLVERS_HERE)
def test_hand_weighted_optimum(xor_pair, solver):
    """Teacher z = (x0 - x1, 0) via ReLUs: max of z0 - z1 = x0 - x1 over a box is hi0 - lo1."""
    net = import_onnx(xor_pair[0])
    backend = get_backend(solver)
    for lo, hi in [((0.0, 0.0), (1.0, 1.0)), ((0.2, 0.1), (0.6, 0.3)), ((0.4, 0.3), (0.5, 0.9))]:
        lo, hi = np.array(lo), np.array(hi)
        b = network_bounds(net, lo, hi, "crown")
        # m_1 = z0 - z1 with c = 0, j = 1
        m, _ = margin_extreme(net, b, lo, hi, 0, 1, maximize=True)
        sol = backend.solve(m, 30)
        assert sol.status == Status.OPTIMAL
        assert sol.objective == pytest.approx(hi[0] - lo[1], abs=1e-6)
        m, _ = margin_extreme(net, b, lo, hi, 0, 1, maximize=False)
        sol = backend.solve(m, 30)
        assert sol.objective == pytest.approx(lo[0] - hi[1], abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_backends_agree_and_attack_le_milp_le_bound(tmp_path, seed):
    """On random 2-input nets: grid max <= MILP optimum <= CROWN bound; all solvers agree."""
    net = import_onnx(random_mlp(tmp_path / "n.onnx", [2, 10, 10, 3], seed=seed, scale=2.0))
    lo, hi = np.array([0.1, 0.2]), np.array([0.7, 0.9])
    g = np.linspace(0, 1, 301)
    grid = np.array(list(itertools.product(g, g))) * (hi - lo) + lo
    z = evaluate(net, grid)
    b = network_bounds(net, lo, hi, "crown")
    _, ub = spec_bounds(net, lo, hi, b, np.array([[1.0, -1.0, 0.0]]))
    best = {}
    for solver in SOLVERS_HERE:
        m, xid = margin_extreme(net, b, lo, hi, 0, 1, maximize=True)
        sol = get_backend(solver).solve(m, 60)
        assert sol.status == Status.OPTIMAL
        best[solver] = sol.objective
        # the optimiser's x is a real input achieving the objective
        zx = evaluate(net, sol.x[xid])[0]
        assert zx[0] - zx[1] == pytest.approx(sol.objective, abs=1e-5)
    vals = list(best.values())
    assert max(vals) - min(vals) < 1e-5, best
    assert (z[:, 0] - z[:, 1]).max() <= vals[0] + 1e-6 <= ub[0] + 2e-6


@pytest.mark.parametrize("solver", SOLVERS_HERE)
def test_feasibility_statuses(xor_pair, solver):
    net = import_onnx(xor_pair[0])
    lo, hi = np.array([0.6, 0.0]), np.array([0.9, 0.3])  # x0 > x1 everywhere: class 0 robust
    b = network_bounds(net, lo, hi, "ibp")
    m, _ = margin_violation(net, b, lo, hi, 0, 1, -1e-4)  # z1 - z0 >= -1e-4 ?
    assert get_backend(solver).solve(m, 30).status == Status.INFEASIBLE
    lo2 = np.array([0.2, 0.0])  # now x1 can exceed x0
    b = network_bounds(net, lo2, hi, "ibp")
    m, xid = margin_violation(net, b, lo2, hi, 0, 1, 0.05)
    sol = get_backend(solver).solve(m, 30)
    assert sol.status == Status.OPTIMAL
    x = sol.x[xid]
    assert x[1] - x[0] >= 0.05 - 1e-6


@pytest.mark.skipif("gurobi" not in SOLVERS_HERE, reason="gurobipy not installed/licensed")
def test_gurobi_size_limited_licence_is_refused_cleanly():
    """The pip licence refuses > 2,000 variables: SolverRefused (one line), not a crash."""
    import scipy.sparse as sp

    from fkdverify.errors import SolverRefused
    from fkdverify.milp.model import MilpModel

    n = 2500
    m = MilpModel(np.zeros(n), np.ones(n), np.zeros(n, bool), sp.csr_matrix((1, n)),
                  np.zeros(1), np.ones(1), np.ones(n))  # fmt: skip
    try:
        sol = get_backend("gurobi").solve(m, 10)
    except SolverRefused as e:
        assert "2,000" in str(e) and "\n" not in str(e)
    else:  # a full licence: then it must simply solve
        assert sol.objective == pytest.approx(n)
