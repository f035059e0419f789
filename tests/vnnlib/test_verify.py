"""verify on hand-weighted networks with known answers, and the CLI's contract."""

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from fkdverify.cli import main
from fkdverify.errors import InputError, MismatchError
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.vnnlib import parse_vnnlib
from fkdverify.vnnlib.verify import VerifyOptions, verify
from tests.builders import mlp_onnx


@pytest.fixture
def loose_net(tmp_path):
    """y0 = relu(x0 - x1) - relu(x1 - x0) + relu(x1 - x0) = relu(x0 - x1), y1 = 0.
    IBP bounds y0 by the sum of three intervals (loose); the exact maximum over
    x in [0, 0.4]^2 is 0.4."""
    w1 = np.array([[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]])
    w2 = np.array([[1.0, -1.0, 1.0], [0.0, 0.0, 0.0]])
    return mlp_onnx(tmp_path / "loose.onnx", [(w1, np.zeros(3)), (w2, np.zeros(2))])


def spec_text(lo, hi, unsafe: str) -> str:
    decl = "".join(f"(declare-const X_{i} Real)" for i in range(2))
    decl += "(declare-const Y_0 Real)(declare-const Y_1 Real)"
    box = "".join(f"(assert (>= X_{i} {lo[i]}))(assert (<= X_{i} {hi[i]}))" for i in range(2))
    return decl + box + f"(assert {unsafe})"


def run(path, text, method="milp", **kw):
    opts = VerifyOptions(method=method, **kw)
    return verify(import_onnx(path), path, parse_vnnlib(text), opts)


def test_unsat_needs_the_milp_where_bounds_are_loose(loose_net):
    text = spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.5)")
    assert run(loose_net, text, "ibp").result == "unknown"
    r = run(loose_net, text, "milp", milp_bounds="ibp")
    assert (r.result, r.stage, r.open_disjuncts) == ("unsat", "milp", 0)
    assert run(loose_net, text, "alpha-crown").result == "unsat"  # optimised slopes suffice
    r = run(loose_net, text, "bab", milp_bounds="ibp")  # splits close what IBP leaves open
    assert (r.result, r.stage, r.open_disjuncts) == ("unsat", "bab", 0)


def test_sat_is_found_and_confirmed(loose_net):
    r = run(loose_net, spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.35)"))
    assert r.result == "sat" and r.stage in ("attack", "milp")
    x = r.x
    assert np.all(x >= 0) and np.all(x <= np.float32(0.4)) and x.dtype == np.float32
    y = ort.InferenceSession(loose_net).run(None, {"x": x[None]})[0][0]
    assert y[0] >= 0.35 and np.allclose(y, r.y)


def test_disjunctions_and_conjunctions(loose_net):
    box = ([0, 0], [0.4, 0.4])
    # y0 >= 0.5 (impossible) or (y0 >= 0.1 and y0 <= 0.2) (possible)
    r = run(loose_net, spec_text(*box, "(or (>= Y_0 0.5) (and (>= Y_0 0.1) (<= Y_0 0.2)))"))
    assert r.result == "sat" and 0.1 <= r.y[0] <= 0.2
    # y0 >= 0.3 and y0 <= 0.2: every disjunct empty, one atom alone is not
    r = run(loose_net, spec_text(*box, "(and (>= Y_0 0.3) (<= Y_0 0.2))"))
    assert r.result == "unsat"
    assert run(loose_net, spec_text(*box, "(<= Y_1 -0.01)"), "ibp").result == "unsat"


def test_attack_only_and_sizes(loose_net, tmp_path):
    text = spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.5)")
    r = run(loose_net, text, "attack", timeout=2.0)  # restarts until the limit, then gives up
    assert r.result == "unknown" and "rounds" in r.note
    bad = parse_vnnlib("(declare-const X_0 Real)(declare-const Y_0 Real)"
                       "(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= Y_0 0))")  # fmt: skip
    with pytest.raises(MismatchError, match="spec has 1 inputs"):
        verify(import_onnx(loose_net), loose_net, bad)
    with pytest.raises(InputError, match="--method"):
        VerifyOptions(method="sherlock")


def test_cli_prints_the_result_last_and_writes_the_cex(loose_net, tmp_path, capsys):
    spec = tmp_path / "s.vnnlib"
    spec.write_text(spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.35)"))
    cex = tmp_path / "cex.txt"
    assert main(["verify", loose_net, str(spec), "--cex", str(cex), "--timeout", "20"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "sat"
    text = cex.read_text()
    assert text.startswith("((X_0 ") and text.rstrip().endswith(")")
    vals = dict(line.strip("()").split() for line in text.split("\n") if line)
    x = np.array([float(vals["X_0"]), float(vals["X_1"])], np.float32)
    y = ort.InferenceSession(loose_net).run(None, {"x": x[None]})[0][0]
    assert y[0] >= 0.35 and float(vals["Y_0"]) == pytest.approx(y[0])
    spec.write_text(spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.5)"))
    assert main(["verify", loose_net, str(spec)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "unsat"
    assert main(["verify", loose_net]) == 2
    assert main(["verify", loose_net, str(tmp_path / "none.vnnlib")]) == 2
    assert "cannot read VNN-LIB" in capsys.readouterr().err


def test_batch_mode_resumes(loose_net, tmp_path, capsys):
    (tmp_path / "a.vnnlib").write_text(spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.5)"))
    (tmp_path / "b.vnnlib").write_text(spec_text([0, 0], [0.4, 0.4], "(>= Y_0 0.35)"))
    inst = tmp_path / "instances.csv"
    inst.write_text(f"{loose_net},a.vnnlib,30\n{loose_net},b.vnnlib,30\n")
    out = tmp_path / "res.csv"
    assert main(["verify", "--instances", str(inst), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0].startswith("onnx,vnnlib,timeout_s,result") and len(rows) == 3
    assert ",unsat," in rows[1] and ",sat," in rows[2]
    cex = rows[2].split(",")[7]
    assert (tmp_path / "res_cex").is_dir() and cex.endswith(".counterexample")
    # the file next to the CSV is a real counterexample: X in the box, Y_0 >= 0.35 there
    vals = dict(re.findall(r"\((X_\d+|Y_\d+) ([^)]+)\)", Path(cex).read_text()))
    assert all(0 <= float(vals[f"X_{i}"]) <= 0.4 for i in range(2))
    assert float(vals["Y_0"]) >= 0.35
    assert main(["verify", "--instances", str(inst), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3  # nothing run twice
    assert main(["verify", "--instances", str(inst)]) == 2


def test_bound_vertices_minimise_a_linear_network(tmp_path):
    """Without ReLUs CROWN's lower bound is exact, so each row's vertex is its true minimiser
    over the box (checked against all 8 vertices of a 3-d box)."""
    import itertools

    from fkdverify.vnnlib.verify import _vertices

    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(2, 3)), rng.normal(size=2)
    path = mlp_onnx(tmp_path / "lin.onnx", [(w, b)])
    net = import_onnx(path)
    spec = parse_vnnlib(
        "".join(f"(declare-const X_{i} Real)" for i in range(3))
        + "(declare-const Y_0 Real)(declare-const Y_1 Real)"
        + "".join(f"(assert (>= X_{i} -1))(assert (<= X_{i} {i + 1}))" for i in range(3))
        + "(assert (>= Y_0 Y_1))"
    )
    from fkdverify.bounds import network_bounds

    C = np.array([[1.0, -1.0], [0.0, 1.0], [-2.0, 0.5]])
    verts = _vertices(net, spec, network_bounds(net, spec.lo, spec.hi), C)
    w32 = w.astype(np.float32).astype(np.float64)
    corners = np.array(list(itertools.product(*zip(spec.lo, spec.hi, strict=True))))
    for c, v in zip(C, verts, strict=True):
        values = corners @ (c @ w32)
        assert v @ (c @ w32) == pytest.approx(values.min())
