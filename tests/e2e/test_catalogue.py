"""The validation catalogue: nonsense gets one clear line and exit 2 (or a warning line where
the value is legal but suspicious); no writer truncates or changes a file it did not create;
certify resumes with every point exactly once. Runs on the shipped MNIST models and the
embedded MNIST test set (no data set-up needed)."""

import csv
import gzip
import shutil

import numpy as np
import pytest

from fkdverify.cli import main
from tests.conftest import REPO

T = str(REPO / "models/mnist_teacher_pgd.onnx")
S = str(REPO / "models/mnist_student_kd.onnx")
FASHION_S = str(REPO / "models/fashion-mnist_student_kd.onnx")
FAST = ["--method", "crown", "--quiet"]  # bounds only: each run takes a second or two


def one_line(capsys, code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--eps", "1.5"], ["--eps 1.5", "1.5/255"]),
        (["--eps", "inf"], ["--eps"]),
        (["--eps", "nan"], ["--eps"]),
        (["--eps", "0.1", "--tol", "-1"], ["--tol"]),
        (["--eps", "0.1", "--lp-tighten", "-3"], ["--lp-tighten"]),
        (["--eps", "0.1", "--gap-refine", "-1"], ["--gap-refine"]),
        (["--eps", "0.1", "--delta", "2"], ["--delta"]),
        (["--eps", "0.1", "--indices", "3,3,3"], ["--indices", "index 3 is given twice"]),
        (["--eps", "0.1", "--indices", "20-10"], ["--indices", "runs backwards"]),
        (["--eps", "0.1", "--dataset", "fashion-mnist"], ["--dataset fashion-mnist", "mnist"]),
        (["--eps", "0.1", "--timeout", "0"], ["--timeout"]),
        (["--eps", "0.1", "--workers", "-1"], ["--workers"]),
    ],
)
def test_certify_refuses_nonsense(capsys, args, needles):
    one_line(capsys, main(["certify", T, S, *args, *FAST]), *needles)


def test_pair_from_different_datasets_is_refused(capsys):
    one_line(capsys, main(["certify", T, FASHION_S, "--eps", "0.1", *FAST]),
             "mnist", "fashion-mnist")  # fmt: skip


def test_large_eps_warns_and_goes_on(capsys):
    assert main(["certify", T, S, "--eps", "0.6", "--n", "1", *FAST]) == 0
    err = capsys.readouterr().err
    assert "warning: --eps 0.6" in err and "0.6/255" in err


def test_export_index_is_named(capsys, tmp_path):
    code = main(["export", T, S, "--eps", "0.1", "--index", "-1", "--out", str(tmp_path)])
    one_line(capsys, code, "--index -1")


def test_verify_timeout_zero_is_refused(capsys, tmp_path):
    spec = tmp_path / "s.vnnlib"
    spec.write_text("(declare-const X_0 Real)(declare-const Y_0 Real)")
    one_line(capsys, main(["verify", T, str(spec), "--timeout", "0"]), "--timeout")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--train-limit", "-5"], ["--train-limit"]),
        (["--out", "/nonexistent/dir/t.onnx"], ["/nonexistent/dir", "does not exist"]),
        (["--eps", "3"], ["--eps"]),
    ],
)
def test_train_refuses_nonsense_before_training(capsys, args, needles):
    base = ["train", "teacher", "--dataset", "mnist", "--arch", "mlp:8", "--out", "t.onnx"]
    one_line(capsys, main([*base, *args, "--quiet"]), *needles)


def test_student_loss_weights_are_checked(capsys):
    base = ["train", "student", "--teacher", T, "--dataset", "mnist", "--arch", "mlp:8",
            "--out", "s.onnx", "--quiet"]  # fmt: skip
    one_line(capsys, main([*base, "--temperature", "-1"]), "--temperature")
    one_line(capsys, main([*base, "--alpha", "5"]), "--alpha")


def test_truncated_and_corrupt_gzip_are_one_line(capsys, tmp_path):
    src = gzip.open(REPO / "fkdverify/data/embedded/mnist/t10k-images-idx3-ubyte.gz").read()
    d = tmp_path / "mnist"
    d.mkdir()
    shutil.copy(REPO / "fkdverify/data/embedded/mnist/t10k-labels-idx1-ubyte.gz", d)
    full = gzip.compress(src)
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(full[: len(full) // 2])
    code = main(["certify", T, S, "--eps", "0.1", "--data-dir", str(d), *FAST])
    one_line(capsys, code, "t10k-images")
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(full[:20] + b"\x00" * 200 + full[220:])
    code = main(["certify", T, S, "--eps", "0.1", "--data-dir", str(d), *FAST])
    one_line(capsys, code, "t10k-images")
    spec = tmp_path / "s.vnnlib.gz"
    text = "(declare-const X_0 Real)" * 2000
    spec.write_bytes(gzip.compress(text.encode())[:300])
    one_line(capsys, main(["verify", T, str(spec)]), "s.vnnlib.gz")


# ------------------------------------------------------------------ nothing is clobbered
def _foreign_files(tmp_path):
    model = tmp_path / "x.onnx"
    shutil.copy(T, model)
    with_nl = tmp_path / "other.csv"
    with_nl.write_text("a,b\n1,2\n")
    without_nl = tmp_path / "other2.csv"
    without_nl.write_text("a,b\n1,2\n3,4")
    return [model, with_nl, without_nl]


def test_no_writer_changes_a_file_it_did_not_create(capsys, tmp_path):
    files = _foreign_files(tmp_path)
    before = {p: p.read_bytes() for p in files}
    inst = tmp_path / "instances.csv"
    inst.write_text("x.onnx,none.vnnlib,10\n")
    for p in files:
        one_line(capsys, main(["certify", T, S, "--eps", "0.01", "--n", "1", "--out", str(p),
                               *FAST]), str(p))  # fmt: skip
        one_line(capsys, main(["verify", "--instances", str(inst), "--out", str(p)]), str(p))
    bench = tmp_path / "bench"
    bench.mkdir()
    grid = tmp_path / "g.toml"
    grid.write_text(f'eps = 0.01\nmethod = "crown"\nn = 1\n[pairs.kd]\nteacher = "{T}"\n'
                    f'student = "{S}"\n')  # fmt: skip
    for p in files[1:]:
        shutil.copy(p, bench / "results.csv")
        one_line(capsys, main(["benchmark", str(grid), "--out", str(bench), "--quiet"]),
                 "results.csv")  # fmt: skip
        assert (bench / "results.csv").read_bytes() == p.read_bytes()
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "summary.csv").write_text("mine\n")
    (rep / "gap_sandwich.png").write_bytes(b"not a plot of ours")
    own = tmp_path / "own.csv"
    assert main(["certify", T, S, "--eps", "0.01", "--n", "1", "--out", str(own), *FAST]) == 0
    capsys.readouterr()
    one_line(capsys, main(["report", str(own), "--out", str(rep)]), "summary.csv")
    assert main(["report", str(own), "--out", str(rep / "sub"), "--no-plots"]) == 0
    capsys.readouterr()
    (rep / "summary.csv").unlink()
    one_line(capsys, main(["report", str(own), "--out", str(rep)]), "gap_sandwich.png")
    assert (rep / "gap_sandwich.png").read_bytes() == b"not a plot of ours"
    side = tmp_path / "side.csv"
    (tmp_path / "side.csv.json").write_text('{"something": "else"}')
    one_line(capsys, main(["certify", T, S, "--eps", "0.01", "--n", "1", "--out", str(side),
                           *FAST]), "side.csv.json")  # fmt: skip
    assert not side.exists()
    exp = tmp_path / "exp"
    exp.mkdir()
    shutil.copy(files[0], exp / "p.onnx")
    shutil.copy(files[2], exp / "p.vnnlib")
    for name in ("p.onnx", "p.vnnlib"):
        before[exp / name] = (exp / name).read_bytes()
    code = main(["export", T, S, "--eps", "0.1", "--index", "0", "--out", str(exp),
                 "--name", "p"])  # fmt: skip
    one_line(capsys, code, "p.onnx exists")
    spec = tmp_path / "s.vnnlib"
    spec.write_text("(declare-const X_0 Real)(declare-const Y_0 Real)")
    for p in files:  # refused before anything runs
        one_line(capsys, main(["verify", T, str(spec), "--cex", str(p)]), "--cex")
    for p, b in before.items():
        assert p.read_bytes() == b, p


# ------------------------------------------------------------------ certify resumes
def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_certify_resumes_with_every_point_once(capsys, tmp_path):
    out = tmp_path / "r.csv"
    base = ["certify", T, S, "--eps", "0.01", "--out", str(out), *FAST]
    assert main([*base, "--n", "3"]) == 0
    # a run killed while writing its fourth row: the row is cut short
    with open(out, "a") as f:
        f.write("3,2,2,2,2,agr")
    assert main([*base, "--n", "6"]) == 0
    err = capsys.readouterr().err
    assert "3 of 6 points already done; resuming" in err
    rows = _rows(out)  # in the order the workers finish them
    assert sorted(int(r["index"]) for r in rows) == [0, 1, 2, 3, 4, 5]
    assert main([*base, "--n", "6"]) == 0  # nothing left: nothing written
    assert len(_rows(out)) == 6
    capsys.readouterr()
    # another setting in the same file is refused, naming it
    code = main(["certify", T, S, "--eps", "0.02", "--out", str(out), "--n", "6", *FAST])
    one_line(capsys, code, "--eps 0.01", "this run: 0.02")
    code = main([*base[:-3], "--method", "ibp", "--quiet", "--n", "6"])
    one_line(capsys, code, "--method crown")


def test_default_out_and_first_hundred(capsys):
    assert main(["certify", T, S, "--eps", "0.01", "--start", "9990", *FAST]) == 0
    cap = capsys.readouterr()
    assert "deciding 10 test points from index 9990" in cap.err
    out = "fkdverify-mnist_teacher_pgd-mnist_student_kd-eps0.01.csv"
    assert f"results: {out}" in cap.out
    assert sorted(int(r["index"]) for r in _rows(out)) == list(range(9990, 10000))


def test_counterexample_is_float64_inside_the_ball(tmp_path):
    out = tmp_path / "r.csv"
    assert main(["certify", T, S, "--eps", "0.1", "--indices", "0-9", "--method", "attack",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    from fkdverify.data import load_dataset

    ds = load_dataset("mnist")
    dis = [r for r in _rows(out) if r["agreement"] == "disagree"]
    assert dis, "the PGD pair at eps 0.1 has counterexamples among the first 10 points"
    for r in dis:
        x = np.load(r["counterexample"])
        x0 = ds.images[int(r["index"])].reshape(x.shape)
        assert x.dtype == np.float64 and np.abs(x - x0).max() <= 0.1
        assert x.min() >= 0 and x.max() <= 1
        assert r["teacher_pred_cex"] != r["student_pred_cex"] and r["teacher_pred_cex"] != "-1"
        png = out.parent / "r_cex" / f"point_{r['index']}.png"
        from PIL import Image

        with Image.open(png) as im:
            assert im.width >= 460 and im.height > 28 * 4 + 50  # the panels and the caption
