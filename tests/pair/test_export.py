"""export: the product ONNX against the two originals (onnxruntime), the VNN-LIB box against
the point, and the export read back by the project's own verify with certify's verdict."""

import numpy as np
import onnxruntime as ort
import pytest

from fkdverify.cli import main
from fkdverify.data import load_dataset
from fkdverify.net.vnnlib import read_vnnlib
from tests.conftest import REPO

T = str(REPO / "models/mnist_teacher_pgd.onnx")
S = str(REPO / "models/mnist_student_kd.onnx")


def run_onnx(path, x):
    s = ort.InferenceSession(path)
    inp = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return s.run(None, {inp.name: x.reshape(shape).astype(np.float32)})[0].reshape(-1)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("prop", ["agreement", "faithful"])
def test_export_matches_the_originals_and_the_point(tmp_path, data, capsys, prop):
    code = main(["export", T, S, "--eps", "0.05", "--index", "3", "--property", prop,
                 "--delta", "0.2", "--out", str(tmp_path), "--data-dir", str(data)])  # fmt: skip
    assert code == 0
    onnx_path = tmp_path / f"mnist_student_kd_3_{prop}.onnx"
    spec = read_vnnlib(str(tmp_path / f"mnist_student_kd_3_{prop}.vnnlib"))
    ds = load_dataset("mnist", "test", str(data))
    x0 = ds.images[3].reshape(-1).astype(np.float64)
    assert np.array_equal(spec.lo, np.clip(x0 - 0.05, 0, 1))
    assert np.array_equal(spec.hi, np.clip(x0 + 0.05, 0, 1))
    rng = np.random.default_rng(0)
    for x in [x0, *(spec.lo + (spec.hi - spec.lo) * rng.random((5, 784)))]:
        y = run_onnx(str(onnx_path), x)
        zt, zs = run_onnx(T, x), run_onnx(S, x)
        assert np.allclose(y[:10], zt, atol=1e-5) and np.allclose(y[10:20], zs, atol=1e-5)
        if prop == "faithful":
            assert len(y) == 40
            assert np.allclose(y[20:30], softmax(zt), atol=1e-6)
            assert np.allclose(y[30:], softmax(zs), atol=1e-6)
            # the gap disjunct: p_T^c - p_S^c >= delta, c = label
            A, b = spec.disjuncts[-1]
            c = int(ds.labels[3])
            assert A[0, 20 + c] == -1 and A[0, 30 + c] == 1 and b[0] == -0.2
    n_agree = 90
    assert len(spec.disjuncts) == n_agree + (prop == "faithful")
    # a disagreement region: teacher's top is a, student's top is b
    y = np.zeros(spec.n_out)
    y[2], y[10 + 5] = 1.0, 1.0
    assert spec.holds_at(y) is not None
    y[10 + 2] = 2.0
    assert spec.holds_at(y) is None
    if prop != "agreement":
        assert "reads only the agreement export" in capsys.readouterr().out


@pytest.mark.slow
def test_own_verify_agrees_with_certify_on_the_export(tmp_path, data, capsys):
    args = ["--eps", "0.02", "--index", "0", "--data-dir", str(data)]
    assert main(["certify", T, S, *args[:2], "--indices", "0", "--property", "agreement",
                 "--data-dir", str(data), "--quiet"]) == 0  # fmt: skip
    assert "agree: 1" in capsys.readouterr().out
    assert main(["export", T, S, *args, "--out", str(tmp_path), "--name", "q"]) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "q.onnx"), str(tmp_path / "q.vnnlib"),
                 "--timeout", "120"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip().splitlines()[-1] == "unsat"


def test_bad_export_arguments(tmp_path, data, capsys):
    base = ["export", T, S, "--out", str(tmp_path), "--data-dir", str(data)]
    assert main([*base, "--eps", "0.1", "--index", "10000000"]) == 2
    assert "--index 10000000 is outside the test set" in capsys.readouterr().err
    assert main([*base, "--eps", "0.1", "--index", "-1"]) == 2
    assert "--index -1 is outside the test set" in capsys.readouterr().err
    assert main([*base, "--eps", "-1", "--index", "0"]) == 2


def test_export_is_batch_agnostic(tmp_path, data):
    """A batch of 3 through the exported product equals 3 single runs (onnxruntime)."""
    code = main(["export", T, S, "--eps", "0.05", "--index", "3", "--out", str(tmp_path),
                 "--data-dir", str(data)])  # fmt: skip
    assert code == 0
    s = ort.InferenceSession(str(tmp_path / "mnist_student_kd_3_agreement.onnx"))
    inp = s.get_inputs()[0]
    assert not isinstance(inp.shape[0], int)  # a symbolic batch dimension
    xs = np.random.default_rng(0).random((3, *inp.shape[1:])).astype(np.float32)
    batch = s.run(None, {inp.name: xs})[0]
    singles = np.concatenate([s.run(None, {inp.name: x[None]})[0] for x in xs])
    assert batch.shape[0] == 3 and np.allclose(batch, singles, atol=1e-6)


def test_robust_form_decides_like_certify(tmp_path, data):
    """--form robust: each network alone with a robustness spec at the teacher's class; both
    unsat by verify exactly where certify proves robust agreement."""
    from fkdverify.api import verify
    from fkdverify.vnnlib.verify import VerifyOptions

    code = main(["export", T, S, "--eps", "0.01", "--index", "0", "--form", "robust", "--class",
                 "teacher", "--out", str(tmp_path), "--data-dir", str(data)])  # fmt: skip
    assert code == 0
    res = []
    for who in ("teacher", "student"):
        stem = tmp_path / f"mnist_student_kd_0_agreement_{who}"
        spec = read_vnnlib(str(stem) + ".vnnlib")
        assert spec.n_out == 10 and len(spec.disjuncts) == 9
        res.append(verify(str(stem) + ".onnx", str(stem) + ".vnnlib",
                          VerifyOptions(method="milp", timeout=30)).result)  # fmt: skip
    assert res == ["unsat", "unsat"]  # both robust at eps 0.01 on point 0
    assert (
        main(
            [
                "export",
                T,
                S,
                "--eps",
                "0.01",
                "--index",
                "0",
                "--form",
                "robust",
                "--out",
                str(tmp_path),
                "--data-dir",
                str(data),
            ]
        )
        != 0
    )  # nothing overwritten
