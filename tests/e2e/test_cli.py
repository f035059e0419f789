"""The CLI end to end, on real files, as a user runs it."""

import csv
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from fkdverify.cli import main
from fkdverify.results import COLUMNS
from tests.builders import random_mlp, save


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "fkdverify.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=900,
    )  # fmt: skip


def one_line_error(res, *needles):
    assert res.returncode != 0
    err = res.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


@pytest.mark.slow
def test_certify_real_pair_end_to_end(mnist_pair, data, tmp_path):
    out = tmp_path / "r.csv"
    t, s = mnist_pair
    res = run_cli("certify", t, s, "--eps", 0.02, "--indices", "0-5", "--data-dir", data,
                  "--timeout", 30, "--out", out, "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "agreement" in res.stdout and "median" in res.stdout
    rows = list(csv.DictReader(open(out)))
    assert tuple(rows[0].keys()) == COLUMNS and len(rows) == 6
    assert {r["agreement"] for r in rows} <= {"agree", "disagree", "unknown"}
    assert {r["faithful"] for r in rows} <= {"faithful", "unfaithful", "unknown"}
    assert (tmp_path / "r.csv.json").exists()
    dis = [r for r in rows if r["agreement"] == "disagree"]
    assert dis, "points 0, 2 and 4 are known disagreements at eps 0.02"
    from fkdverify.data import load_dataset

    ds = load_dataset("mnist", data_dir=str(data))
    for r in dis:  # onnxruntime on the original files confirms every counterexample
        x = np.load(r["counterexample"])
        x0 = ds.images[int(r["index"])].reshape(x.shape)
        assert x.dtype == np.float64  # exactly the re-checked point
        assert np.abs(x - x0).max() <= 0.02 + 1e-12 and x.min() >= 0 and x.max() <= 1
        preds = []
        for f in (t, s):
            sess = ort.InferenceSession(f)
            feed = {sess.get_inputs()[0].name: x.astype(np.float32)}  # the file takes float32
            preds.append(int(sess.run(None, feed)[0].argmax()))
        assert preds[0] != preds[1]
        assert (tmp_path / "r_cex" / f"point_{r['index']}.png").exists()
    for r in rows:
        if r["agreement"] != "disagree" and r["gap_upper"] != "nan":
            assert float(r["gap_lower"]) <= float(r["gap_upper"])


@pytest.mark.slow
def test_workers_give_same_rows(mnist_pair, data, tmp_path):
    t, s = mnist_pair
    outs = []
    for w in (1, 2):
        out = tmp_path / f"w{w}.csv"
        res = run_cli("certify", t, s, "--eps", 0.01, "--indices", "1,3,9", "--data-dir", data,
                      "--method", "crown", "--workers", w, "--out", out, "--quiet")  # fmt: skip
        assert res.returncode == 0, res.stderr
        rows = sorted(csv.DictReader(open(out)), key=lambda r: int(r["index"]))
        outs.append([(r["index"], r["agreement"], r["faithful"]) for r in rows])
    assert outs[0] == outs[1]


def test_skipped_points_get_rows(tmp_path, data, mnist_pair):
    t, s = mnist_pair
    base = ["certify", t, s, "--eps", "0.001", "--data-dir", str(data), "--quiet"]
    out = tmp_path / "r.csv"
    # test point 247 is misclassified by the 256x4 teacher; 246 is not
    args = ["--indices", "246,247", "--method", "attack", "--out", str(out)]
    assert main(base + args) == 0
    rows = {r["index"]: r for r in csv.DictReader(open(out))}
    assert rows["247"]["note"].startswith("skipped: teacher predicts")
    assert rows["247"]["agreement"] == "unknown"
    assert not rows["246"]["note"].startswith("skipped")
    out2 = tmp_path / "all.csv"
    args = ["--indices", "247", "--method", "crown", "--points", "all", "--out", str(out2)]
    assert main(base + args) == 0
    row = next(csv.DictReader(open(out2)))
    assert row["agreement"] in ("agree", "disagree") and row["cls"] == row["label"]


def test_bad_choice_is_one_line(tmp_path):
    a = random_mlp(tmp_path / "a.onnx", [784, 8, 10])
    one_line_error(run_cli("certify", a, a, "--eps", 0.1, "--method", "magic"), "--method")


# ---------------------------------------------------------------- bad input, one line each
def test_missing_file(tmp_path):
    one_line_error(run_cli("certify", tmp_path / "a.onnx", tmp_path / "b.onnx", "--eps", 0.1),
                   "no such file")  # fmt: skip


def test_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    one_line_error(run_cli("certify", bad, bad, "--eps", 0.1), "not")


def test_mismatched_shapes(tmp_path):
    a = random_mlp(tmp_path / "a.onnx", [784, 8, 10])
    b = random_mlp(tmp_path / "b.onnx", [784, 8, 5])
    one_line_error(run_cli("certify", a, b, "--eps", 0.1), "outputs")


def test_unsupported_op(tmp_path):
    p = save(tmp_path / "sig.onnx", [helper.make_node("Sigmoid", ["x"], ["y"], name="s1")], [],
             (1, 784), "y", (1, 784))  # fmt: skip
    one_line_error(run_cli("certify", p, p, "--eps", 0.1), "Sigmoid", "s1")


def test_negative_eps(tmp_path):
    a = random_mlp(tmp_path / "a.onnx", [784, 8, 10])
    one_line_error(run_cli("certify", a, a, "--eps", -0.1), "--eps")


def test_unknown_dataset(tmp_path):
    a = random_mlp(tmp_path / "a.onnx", [784, 8, 10])
    one_line_error(run_cli("certify", a, a, "--eps", 0.1, "--dataset", "imagenet"), "imagenet")


def test_missing_eps_is_one_line(tmp_path):
    a = random_mlp(tmp_path / "a.onnx", [784, 8, 10])
    one_line_error(run_cli("certify", a, a), "--eps")


def test_unlicensed_gurobi_is_one_line(tmp_path, capsys, monkeypatch):
    from fkdverify.errors import SolverError
    from fkdverify.milp.backends import gurobi

    def no_licence():
        raise SolverError("Gurobi has no usable licence (test); use --solver highs")

    monkeypatch.setattr(gurobi, "check", no_licence)
    a = random_mlp(tmp_path / "a.onnx", [784, 8, 10])
    code = main(["certify", a, a, "--eps", "0.1", "--solver", "gurobi"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Gurobi" in err


def test_bound_methods_on_the_oval21_cifar_pair(data, tmp_path):
    """CROWN on a real CIFAR-10 pair with its normalisation; counterexamples confirmed by
    onnxruntime on the original files fed normalised input."""
    base = data / "vnncomp" / "oval21" / "onnx"
    t, s = str(base / "cifar_wide_kw.onnx"), str(base / "cifar_base_kw.onnx")
    common = ["--indices", "0-7", "--data-dir", data, "--mean", "0.485,0.456,0.406", "--std",
              "0.225", "--eps", 2 / 255]  # fmt: skip
    rows = {}
    for method, prec in (("ibp", "float64"), ("crown", "float32"), ("alpha-crown", "float64")):
        out = tmp_path / f"{method}.csv"
        res = run_cli("certify", t, s, *common, "--method", method, "--precision", prec,
                      "--out", out)  # fmt: skip
        assert res.returncode == 0, res.stderr
        rows[method] = list(csv.DictReader(open(out)))
        assert len(rows[method]) == 8
    decided = [r for r in rows["crown"] if not r["note"].startswith("skipped")]
    assert all(int(r["unstable_crown"]) <= int(r["unstable_ibp"]) for r in decided)
    agree = {m: sum(r["agreement"] == "agree" for r in rs) for m, rs in rows.items()}
    assert agree["ibp"] <= agree["crown"] <= agree["alpha-crown"] and agree["crown"] > 0
    mean = np.array([0.485, 0.456, 0.406])[None, :, None, None]
    for r in rows["crown"]:
        if r["agreement"] == "disagree":
            x = np.load(r["counterexample"])
            preds = []
            for f in (t, s):
                sess = ort.InferenceSession(f)
                xn = ((x - mean) / 0.225).astype(np.float32)
                preds.append(int(sess.run(None, {sess.get_inputs()[0].name: xn})[0].argmax()))
            assert preds[0] != preds[1]


def test_tiny_bounds_memory_is_logged(tmp_path, data):
    base = data / "vnncomp" / "oval21" / "onnx"
    t = str(base / "cifar_base_kw.onnx")
    res = run_cli("certify", t, t, "--indices", "0-3", "--data-dir", data, "--eps", 1 / 255,
                  "--method", "crown", "--bounds-memory", 16, "--mean", "0.485,0.456,0.406",
                  "--std", "0.225", "--no-attack")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "chunks" in res.stderr and "--bounds-memory" in res.stderr


def test_bad_normalisation_is_one_line(tmp_path, data):
    base = data / "vnncomp" / "oval21" / "onnx"
    t = str(base / "cifar_base_kw.onnx")
    res = run_cli("certify", t, t, "--eps", 0.01, "--mean", "0.1,0.2", "--data-dir", data)
    one_line_error(res, "--mean/--std", "channel")
