"""Soundness against VNN-COMP 2022 known answers (mnist_fc): networks trained by others,
counterexamples checked by the organisers."""

import csv
import gzip
import re

import numpy as np
import pytest

from fkdverify.bounds import network_bounds, spec_bounds
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.vnnlib import read_vnnlib
from fkdverify.pair import CertifyOptions, PairContext, certify_point, network_robustness


def read_box(path, n=784):
    """Input box and label of a VNN-COMP robustness spec: every unsafe disjunct is
    Y_label - Y_j <= 0."""
    spec = read_vnnlib(str(path))
    assert spec.n_in == n
    return spec.lo, spec.hi, int(np.argmax(spec.disjuncts[0][0][0]))


def read_cex(path, n=784):
    vals = dict(re.findall(r"\((X_\d+|Y_\d+) ([-+0-9.eE]+)\)", gzip.open(path, "rt").read()))
    return np.array([float(vals[f"X_{i}"]) for i in range(n)])


def rows(data, truth):
    base = data / "vnncomp" / "mnist_fc"
    with open(base / "truth_2022.csv") as f:
        return [(base / r["onnx"], base / r["vnnlib"]) for r in csv.DictReader(f)
                if r["truth"] == truth]  # fmt: skip


def test_official_counterexamples_lie_inside_our_bounds(data):
    """Every organiser-checked counterexample's logit differences lie inside CROWN bounds."""
    base = data / "vnncomp" / "mnist_fc"
    checked = 0
    nets = {}
    for onnx_path, spec in rows(data, "violated"):
        lo, hi, c = read_box(spec)
        net = nets.setdefault(onnx_path, import_onnx(str(onnx_path)))
        b = network_bounds(net, lo, hi, "crown")
        C = np.eye(10) - np.eye(10)[c]  # z_j - z_c
        lb, ub = spec_bounds(net, lo, hi, b, C)
        tag = f"{onnx_path.stem}_{spec.name.replace('.vnnlib.gz', '')}"
        for cex in base.glob(f"results_2022/counterexamples/*/{tag}.counterexample.gz"):
            if "cgdtest" in str(cex):  # known bad entry (data README)
                continue
            x = np.clip(read_cex(cex), lo, hi)
            from fkdverify.net.torch_net import evaluate

            d = evaluate(net, x)[0] - evaluate(net, x)[0][c]
            assert np.all(d >= lb - 1e-5) and np.all(d <= ub + 1e-5)
            assert ub.max() >= 0  # bounds never rule out the real violation
            checked += 1
    assert checked >= 50


@pytest.mark.slow
def test_never_robust_on_violated_instances(data):
    """The robustness MILP never proves a violated instance; its witnesses are real."""
    ctxs = {}
    opts = CertifyOptions(eps=0.0, prop="agreement", timeout=15)
    found = 0
    for onnx_path, spec in rows(data, "violated")[:6]:
        lo, hi, c = read_box(spec)
        p = str(onnx_path)
        if p not in ctxs:
            net = import_onnx(p)
            ctxs[p] = PairContext(net, net, p, p)
        verdict, x = network_robustness(ctxs[p], True, lo, hi, c, opts)
        assert verdict != "robust", spec
        if verdict == "not":
            assert np.all(x >= lo) and np.all(x <= hi)
            assert ctxs[p].referee.strict_pick(x, teacher=True) != c
            found += 1
    assert found >= 3


def test_certify_pair_on_a_spec_box(data):
    """certify_point on an explicit box: the identical pair never disagrees."""
    onnx_path, spec = rows(data, "holds")[0]
    lo, hi, c = read_box(spec)
    p = str(onnx_path)
    net = import_onnx(p)
    f, cex = certify_point(PairContext(net, net, p, p), (lo + hi) / 2, c,
                           CertifyOptions(eps=0.0, timeout=10), box=(lo, hi))  # fmt: skip
    assert f.agreement in ("agree", "unknown") and cex is None


# ---------------------------------------------------------------- fkdverify verify vs truth
VERIFY_CASES = [  # (bench, onnx, spec, truth): fast ones of each kind
    ("mnist_fc", "mnist-net_256x2", "prop_1_0.03", "violated"),  # attack
    ("mnist_fc", "mnist-net_256x2", "prop_2_0.03", "violated"),  # needs the MILP
    ("mnist_fc", "mnist-net_256x2", "prop_0_0.03", "holds"),  # bounds
    ("mnist_fc", "mnist-net_256x2", "prop_3_0.05", "holds"),
    ("oval21", "cifar_wide_kw", "cifar_wide_kw-img1909-eps0.0033986928104575162", "violated"),
    ("oval21", "cifar_wide_kw", "cifar_wide_kw-img9062-eps0.0014379084967320263", "holds"),
]


BAB_CASES = [  # branch and bound: a violated one, a holding one the bounds leave open
    ("mnist_fc", "mnist-net_256x2", "prop_2_0.03", "violated", "bab"),
    ("mnist_fc", "mnist-net_256x4", "prop_3_0.05", "holds", "bab"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "bench, net, spec, truth, method", [(*c, "milp") for c in VERIFY_CASES] + BAB_CASES
)
def test_verify_gives_the_published_answer(data, tmp_path, bench, net, spec, truth, method):
    from fkdverify.cli import main

    base = data / "vnncomp" / bench
    onnx_path = str(base / "onnx" / f"{net}.onnx")
    spec_path = str(base / "vnnlib_2022" / f"{spec}.vnnlib.gz")
    cex = tmp_path / "cex"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["verify", onnx_path, spec_path, "--timeout", "100", "--cex", str(cex),
                     "--method", method])  # fmt: skip
    assert code == 0
    result = out.getvalue().strip().splitlines()[-1]
    assert result == {"violated": "sat", "holds": "unsat"}[truth]
    if result == "sat":  # the counterexample file, re-run with onnxruntime
        import onnxruntime as ort

        s = read_vnnlib(spec_path)
        vals = dict(re.findall(r"\((X_\d+|Y_\d+) ([-+0-9.eE]+)\)", cex.read_text()))
        x = np.array([float(vals[f"X_{i}"]) for i in range(s.n_in)], np.float32)
        assert np.all(x >= s.lo) and np.all(x <= s.hi)
        sess = ort.InferenceSession(onnx_path)
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        y = sess.run(None, {inp.name: x.reshape(shape)})[0].reshape(-1)
        assert s.holds_at(y.astype(np.float64)) is not None
