"""Branch and bound over ReLU splits: its bounds hold on every point of a split domain, and
its answers match the exact MILP's on small random networks."""

import numpy as np
import pytest
import torch

from fkdverify.bounds import network_bounds
from fkdverify.bounds.bab import BabOptions, _Problem, _root, bab
from fkdverify.errors import InputError
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import TorchNet
from fkdverify.net.vnnlib import parse_vnnlib
from fkdverify.vnnlib.verify import VerifyOptions, verify
from tests.builders import random_mlp


def _domains(P: _Problem, n_dom: int, n_split: int, rng) -> torch.Tensor:
    """(n_dom, N) random sides on random root-unstable neurons."""
    unstable = torch.nonzero((P.l[0] < 0) & (P.u[0] > 0)).flatten().numpy()
    split = torch.zeros(n_dom, P.N, dtype=torch.int8)
    for d in range(n_dom):
        for j in rng.choice(unstable, size=min(n_split, len(unstable)), replace=False):
            split[d, j] = rng.choice([-1, 1])
    return split


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("slopes", [False, True])
def test_split_domain_bounds_hold_on_every_sampled_point_of_the_domain(tmp_path, slopes,
                                                                       precision):  # fmt: skip
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [6, 24, 24, 24, 4], seed=5))
    lo, hi = np.full(6, -0.5), np.full(6, 0.5)
    root = network_bounds(net, lo, hi, "crown")
    rng = np.random.default_rng(0)
    C = rng.normal(size=(3, 4))
    opts = BabOptions(refresh_precision=precision)
    P = _Problem(net, lo, hi, root.pre, C, np.zeros(3), np.arange(3), opts)
    if slopes:  # the refresh uses each intermediate neuron's optimised root slopes
        P.slopes = P.root_slopes()
        assert len(P.slopes) == 2 and all(len(rows) for rows, _ in P.slopes.values())
    D, S = 12, 3
    split = _domains(P, D, 4, rng)
    l, u = P.refresh(split, P.l.expand(D, -1), P.u.expand(D, -1), 0)
    assert (l >= P.l - 1e-12).all() and (u <= P.u + 1e-12).all()  # only ever tightened
    alpha = torch.from_numpy(rng.random((D, S, P.N)))
    beta = torch.from_numpy(rng.random((D, S, P.N)) * 2)
    lb = P.lower(P.p64, split, l, u, alpha, beta)

    xs = lo + rng.random((40000, 6)) * (hi - lo)
    vals = TorchNet(net)(torch.from_numpy(xs), all_values=True)
    z = torch.cat([vals[v] for v in P.vs], 1).detach()  # (n, N) pre-activations
    out = vals[net.output].detach().numpy() @ C.T
    checked = 0
    for d in range(D):
        s = split[d]
        inside = ((z * s.double()) >= 0)[:, s != 0].all(1).numpy()
        if not inside.any():
            continue
        checked += int(inside.sum())
        zd = z[inside]
        assert (zd >= l[d] - 1e-9).all() and (zd <= u[d] + 1e-9).all()
        assert (out[inside] >= lb[d].numpy() - 1e-9).all()
    assert checked > 500
    # the split sides are used: bounds of the domains are tighter than the root's somewhere
    assert (l > P.l + 1e-9).any() or (u < P.u - 1e-9).any()


def test_children_start_from_their_parents_bound(tmp_path):
    """The beta and upper-line start of a new split gives each child the parent's bound
    before any optimisation (the bound may only rise from there)."""
    from fkdverify.bounds.bab import _bound, _children

    net = import_onnx(random_mlp(tmp_path / "m.onnx", [5, 20, 20, 3], seed=2))
    lo, hi = np.full(5, -1.0), np.full(5, 1.0)
    root = network_bounds(net, lo, hi, "crown")
    C = np.array([[1.0, -1.0, 0.0]])
    P = _Problem(net, lo, hi, root.pre, C, np.zeros(1), np.zeros(1, int),
                 BabOptions(refresh=False, fsb=1))  # fmt: skip
    B = _root(P)
    for _ in range(4):
        B, branch, at, _ = _bound(P, B, 30)
        if int(branch[0]) < 0:
            break
        kids = _children(B, at, branch)
        with torch.no_grad():
            start = P.lower(P.p64, kids.split, kids.l, kids.u, kids.alpha, kids.beta)
        own = P.lower(P.p64, B.split, B.l, B.u, B.alpha, B.beta)
        assert (start >= own - 1e-6).all()
        B = kids.take([int(torch.argmin(start[:, 0]))])


def _spec(lo, hi, unsafe: str, n_in: int, n_out: int) -> str:
    decl = "".join(f"(declare-const X_{i} Real)" for i in range(n_in))
    decl += "".join(f"(declare-const Y_{j} Real)" for j in range(n_out))
    box = "".join(f"(assert (>= X_{i} {float(lo[i])!r}))(assert (<= X_{i} {float(hi[i])!r}))"
                  for i in range(n_in))  # fmt: skip
    return decl + box + f"(assert {unsafe})"


def test_bab_gives_the_milps_answer_on_random_networks(tmp_path):
    """Known answers from the exact MILP: never a different verdict, and branch and bound
    decides instances that the bounds alone leave open."""
    beyond_bounds = 0
    decided = 0
    for seed in range(6):
        path = random_mlp(tmp_path / f"n{seed}.onnx", [4, 24, 24, 24, 3], seed=seed)
        net = import_onnx(path)
        centre = np.random.default_rng(seed).uniform(-1, 1, 4)
        c = int(TorchNet(net)(torch.from_numpy(centre)[None])[0].argmax())
        others = [j for j in range(3) if j != c]  # unsafe: class c is not the top one
        unsafe = "(or " + " ".join(f"(>= Y_{j} Y_{c})" for j in others) + ")"
        for r in (0.1, 0.2, 0.4):
            text = _spec(centre - r, centre + r, unsafe, 4, 3)
            res = {m: verify(net, path, parse_vnnlib(text), VerifyOptions(method=m, timeout=60))
                   for m in ("milp", "bab", "alpha-crown")}  # fmt: skip
            # the first tree cut short at once: MILP refinement, then a second tree
            refined = verify(net, path, parse_vnnlib(text),
                             VerifyOptions(method="bab", timeout=60, bab_first=1e-9))  # fmt: skip
            assert res["milp"].result in ("sat", "unsat")
            assert res["bab"].result == res["milp"].result, (seed, r)
            assert refined.result == res["milp"].result, (seed, r)
            decided += 1
            beyond_bounds += res["bab"].stage == "bab" and res["alpha-crown"].result == "unknown"
    assert decided == 18 and beyond_bounds >= 2


def test_sat_comes_back_confirmed():
    """A candidate that the re-check rejects is not an answer; one it accepts is."""
    from fkdverify.net.graph import Linear, Network, Node, Relu

    w1 = np.array([[1.0, -1.0], [-1.0, 1.0]])
    nodes = (Node(Linear(w1, np.zeros(2)), (0,), (2,)), Node(Relu(), (1,), (2,)),
             Node(Linear(np.array([[1.0, 1.0]]), np.zeros(1)), (2,), (1,)))  # fmt: skip
    net = Network((2,), nodes, 3)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    root = network_bounds(net, lo, hi, "crown")
    # y = |x0 - x1| on [-1, 1]^2; the unsafe region is the atom c * y <= b
    seen = []
    res = bab(net, lo, hi, root.pre, np.array([[1.0]]), np.array([-0.5]), np.zeros(1, int),
              float("inf"), lambda x: seen.append(x) or None)  # fmt: skip
    assert res.status == "unsat" and not seen  # |x0 - x1| >= 0 > -0.5: never reachable
    res = bab(net, lo, hi, root.pre, np.array([[-1.0]]), np.array([-1.5]), np.zeros(1, int),
              float("inf"), lambda x: ("ok", x))  # fmt: skip
    assert res.status == "sat" and abs(res.found[1][0] - res.found[1][1]) >= 1.5 - 1e-9


def test_options_are_checked():
    with pytest.raises(InputError):
        BabOptions(batch=0)
    with pytest.raises(InputError):
        BabOptions(opt_precision="float16")


def test_shared_atoms_are_bounded_once_and_product_rows_apart(tmp_path):
    """An atom repeated across disjuncts is kept once (membership matrix); rows of the two
    networks of a product fall in separate groups; the lower bounds equal the one-pass ones."""
    from fkdverify.bounds.bab import dedup
    from fkdverify.net.product import product

    C = np.array([[1.0, 0], [0, 1], [1.0, 0], [0, -1]])
    b = np.array([0.0, 1, 0, 2])
    Cu, bu, member = dedup(C, b, np.array([0, 0, 1, 1]))
    assert len(Cu) == 3 and member.shape == (2, 3) and member.sum() == 4
    # the shared row [1, 0] <= 0 serves both disjuncts
    k = [i for i in range(3) if (Cu[i] == [1, 0]).all() and bu[i] == 0][0]
    assert member[:, k].all()

    t = import_onnx(random_mlp(tmp_path / "t.onnx", [4, 12, 12, 3], seed=1))
    s = import_onnx(random_mlp(tmp_path / "s.onnx", [4, 10, 3], seed=2))
    P_net = product(t, s)[0]
    lo, hi = np.full(4, -0.3), np.full(4, 0.3)
    root = network_bounds(P_net, lo, hi, "crown")
    rows = np.zeros((4, 6))
    rows[0, 0] = rows[1, 1] = rows[2, 3] = rows[3, 5] = 1.0  # two teacher rows, two student
    P = _Problem(P_net, lo, hi, root.pre, rows, np.zeros(4), np.arange(4), BabOptions())
    B = _root(P)
    split = torch.zeros(1, P.N, dtype=torch.int8)
    one = P.lower(P.p64, split, P.l, P.u, B.alpha, B.beta)
    P.set_groups(B.alpha, B.beta)
    assert P.groups is not None and sorted(len(g) for g in P.groups) == [2, 2]
    ro, ic = {}, []
    two = P.lower(P.p64, split, P.l, P.u, B.alpha, B.beta, ro, ic)
    assert torch.allclose(one, two, atol=1e-12)
    assert ic[0].shape == (1, 4, 4) and all(r.shape[1] == 4 for r in ro.values())


def test_selected_atoms_are_each_open_disjuncts_best_and_bound_as_when_all_are(tmp_path):
    """``select`` keeps, per domain, the best-margin atoms of every open disjunct (none of a
    closed one unless padding needs it); ``lower`` on a selection equals the whole pass on
    those atoms."""
    net = import_onnx(random_mlp(tmp_path / "m.onnx", [4, 16, 16, 4], seed=3))
    lo, hi = np.full(4, -0.4), np.full(4, 0.4)
    root = network_bounds(net, lo, hi, "crown")
    rng = np.random.default_rng(1)
    C = rng.normal(size=(6, 4))
    member = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], bool)
    P = _Problem(net, lo, hi, root.pre, C, np.zeros(6), member, BabOptions())
    # margins (lb - b) per domain; disjunct 2 is closed on domain 0 (atom 4 > 0)
    lb = torch.tensor([[-3.0, -1.0, -2.0, -0.5, 0.5, -9.0], [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]],
                      dtype=torch.float64)  # fmt: skip
    (sel,) = P.select(lb, 1)
    assert set(sel[0].tolist()) >= {1, 3} and set(sel[1].tolist()) >= {0, 2, 4}
    assert sel.shape[1] == 3  # padded to the larger count (domain 1 needs 3)
    (sel2,) = P.select(lb, 2)
    assert set(sel2[1].tolist()) == {0, 1, 2, 3, 4, 5}
    D = 2
    split = _domains(P, D, 3, rng)
    l, u = P.refresh(split, P.l.expand(D, -1), P.u.expand(D, -1), 0)
    alpha = torch.from_numpy(rng.random((D, 6, P.N)))
    beta = torch.from_numpy(rng.random((D, 6, P.N)))
    whole = P.lower(P.p64, split, l, u, alpha, beta)
    idx = sel[..., None].expand(-1, -1, P.N)
    part = P.lower(P.p64, split, l, u, alpha.gather(1, idx), beta.gather(1, idx), sel=[sel])
    assert torch.allclose(part, whole.gather(1, sel), atol=1e-12, rtol=0)


def test_a_split_refreshes_only_the_layers_it_reaches(tmp_path):
    """In a product, a teacher split leaves the student's bounds as they were (and the
    other way round); a split of the first layer reaches that network's later layers."""
    from fkdverify.net.product import product

    t = import_onnx(random_mlp(tmp_path / "t.onnx", [4, 12, 12, 3], seed=1))
    s = import_onnx(random_mlp(tmp_path / "s.onnx", [4, 10, 10, 3], seed=2))
    P_net = product(t, s)[0]
    lo, hi = np.full(4, -0.5), np.full(4, 0.5)
    root = network_bounds(P_net, lo, hi, "crown")
    P = _Problem(P_net, lo, hi, root.pre, np.ones((1, 6)), np.zeros(1), np.zeros(1, int),
                 BabOptions(interm_iters=0))  # fmt: skip
    assert P.reaches.tolist() == [[False, True, False, False], [False] * 4,
                                  [False, False, False, True], [False] * 4]  # fmt: skip
    # shrink the stored bounds so that any refresh of a layer would change them
    l0, u0 = P.l.expand(2, -1) - 5.0, P.u.expand(2, -1) + 5.0
    split = torch.zeros(2, P.N, dtype=torch.int8)
    l, u = P.refresh(split, l0, u0, torch.tensor([0, 2]))  # domain 0: teacher; 1: student
    o = P.offsets
    t2, s2 = slice(o[1], o[2]), slice(o[3], o[4])
    assert (l[0, t2] > l0[0, t2]).any() and (l[0, s2] == l0[0, s2]).all()
    assert (l[1, s2] > l0[1, s2]).any() and (l[1, t2] == l0[1, t2]).all()
