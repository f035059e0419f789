"""Known-answer pairs built from a real network (VNN-COMP mnist_fc 256x2) at eps = 0.02 on the
first 10 MNIST test points (DESIGN.md section 1): S = T agrees everywhere with a gap of 0;
S = T with its logits halved agrees everywhere; S = T with a shifted output bias disagrees,
and onnxruntime confirms every counterexample on the ONNX files."""

import numpy as np
import onnxruntime as ort
import pytest

from fkdverify import CertifyOptions, certify_points, load_dataset, load_pair
from tests.builders import with_output_map

N = "vnncomp/mnist_fc/onnx/mnist-net_256x2.onnx"


@pytest.fixture(scope="module")
def teacher(data):
    return str(data / N)


def _run(t, s, data, prop, cex=False):
    ds = load_dataset("mnist", data_dir=str(data))
    pair = load_pair(t, s)
    xs = [ds.images[i].reshape(-1).astype(np.float64) for i in range(10)]
    classes = [pair.referee.predictions(x)[0] for x in xs]
    out = certify_points(pair, xs, classes, CertifyOptions(eps=0.02, prop=prop, timeout=60))
    return out if cex else [r for r, _ in out]


def test_identical_student_agrees_with_a_zero_gap(teacher, data, tmp_path):
    # a copy of the file: nothing may recognise "the same path"
    s = with_output_map(teacher, tmp_path / "copy.onnx")
    rows = _run(teacher, s, data, "faithful")  # agreement, and the gap reported
    assert [r.agreement for r in rows] == ["agree"] * 10
    assert all(0.0 <= r.gap_lower <= r.gap_upper <= 1e-3 for r in rows), rows


def test_halved_logits_agree(teacher, data, tmp_path):
    s = with_output_map(teacher, tmp_path / "half.onnx", mul=0.5)
    rows = _run(teacher, s, data, "agreement")
    assert [r.agreement for r in rows] == ["agree"] * 10, [r.note for r in rows]


def test_shifted_bias_disagreements_are_confirmed_by_onnxruntime(teacher, data, tmp_path):
    shift = np.zeros(10)
    shift[0] = 1.0
    s = with_output_map(teacher, tmp_path / "shift.onnx", add=shift)
    out = _run(teacher, s, data, "agreement", cex=True)
    dis = [x for r, x in out if r.agreement == "disagree"]
    assert len(dis) >= 5 and all(r.agreement in ("agree", "disagree") for r, _ in out)
    sess = [ort.InferenceSession(p) for p in (teacher, s)]
    for x in dis:
        x = np.asarray(x, np.float32)
        picks = [int(z.run(None, {z.get_inputs()[0].name: x.reshape(1, 784, 1)})[0].argmax())
                 for z in sess]  # fmt: skip
        assert picks[0] != picks[1]
