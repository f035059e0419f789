"""VNN-LIB reader and writer: known answers, round trips, clear errors."""

import gzip

import numpy as np
import pytest

from fkdverify.errors import InputError
from fkdverify.net.vnnlib import Spec, parse_vnnlib, read_vnnlib, write_vnnlib

ROBUST = """
; a robustness property
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 -0.5))
(assert (and (<= X_1 1) (>= X_1 0.25)))
(assert (or
    (and (>= Y_1 Y_0))
    (and (>= Y_2 Y_0) (<= Y_2 3.5))
))
"""


def test_robustness_spec_known_answer():
    s = parse_vnnlib(ROBUST)
    assert s.n_in == 2 and s.n_out == 3
    assert np.array_equal(s.lo, [-0.5, 0.25]) and np.array_equal(s.hi, [0.5, 1.0])
    (A0, b0), (A1, b1) = s.disjuncts
    assert np.array_equal(A0, [[1, -1, 0]]) and np.array_equal(b0, [0])  # Y_0 - Y_1 <= 0
    assert np.array_equal(A1, [[1, 0, -1], [0, 0, 1]]) and np.array_equal(b1, [0, 3.5])
    assert s.holds_at(np.array([1.0, 2.0, 0.0])) == 0
    assert s.holds_at(np.array([1.0, 0.0, 2.0])) == 1
    assert s.holds_at(np.array([1.0, 0.0, 4.0])) is None
    assert s.holds_at(np.array([1.0, 0.5, 0.9])) is None


def test_linear_terms_and_several_output_asserts():
    s = parse_vnnlib(
        "(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
        "(assert (<= X_0 1))(assert (>= X_0 0))"
        "(assert (<= (+ (* 2 Y_0) (- Y_1) 1) (* 3 0.5)))"  # 2y0 - y1 + 1 <= 1.5
        "(assert (or (> Y_0 1) (< (- Y_0 Y_1) -2)))"
    )
    # two asserts: a conjunction; the second is a disjunction -> two disjuncts
    assert len(s.disjuncts) == 2
    A, b = s.disjuncts[0]
    assert np.allclose(A, [[2, -1], [-1, 0]]) and np.allclose(b, [0.5, -1])
    A, b = s.disjuncts[1]
    assert np.allclose(A, [[2, -1], [1, -1]]) and np.allclose(b, [0.5, -2])


def test_vnncomp_files_read(data):
    s = read_vnnlib(str(data / "vnncomp/mnist_fc/vnnlib_2022/prop_0_0.03.vnnlib.gz"))
    assert s.n_in == 784 and s.n_out == 10 and len(s.disjuncts) == 9
    assert np.all(s.hi - s.lo <= 0.06 + 1e-6) and s.lo.min() >= 0 and s.hi.max() <= 1
    label = int(np.argmax(s.disjuncts[0][0][0]))
    others = set()
    for A, b in s.disjuncts:  # Y_j >= Y_label: one atom Y_label - Y_j <= 0
        assert A.shape == (1, 10) and A[0, label] == 1 and A[0].sum() == 0 and b[0] == 0
        others.add(int(np.argmin(A[0])))
    assert others == set(range(10)) - {label}


def test_round_trip_plain_and_gz(tmp_path):
    s = parse_vnnlib(ROBUST)
    p = tmp_path / "s.vnnlib"
    write_vnnlib(str(p), s, "a comment\nover two lines")
    assert p.read_text().startswith("; a comment\n; over two lines\n")
    with open(p, "rb") as f, gzip.open(tmp_path / "s.vnnlib.gz", "wb") as g:
        g.write(f.read())
    for path in (p, tmp_path / "s.vnnlib.gz"):
        r = read_vnnlib(str(path))
        assert np.array_equal(r.lo, s.lo) and np.array_equal(r.hi, s.hi)
        for (A, b), (A2, b2) in zip(s.disjuncts, r.disjuncts, strict=True):
            assert np.array_equal(A, A2) and np.array_equal(b, b2)


def test_writer_general_atoms_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    s = Spec(np.zeros(3), np.ones(3), 4, ((rng.normal(size=(2, 4)), rng.normal(size=2)),))
    write_vnnlib(str(tmp_path / "r.vnnlib"), s)
    ((A, b),) = read_vnnlib(str(tmp_path / "r.vnnlib")).disjuncts
    assert np.array_equal(A, s.disjuncts[0][0]) and np.array_equal(b, s.disjuncts[0][1])


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "(declare-const X_0 Real)(declare-const Y_0 Real)"
            "(assert (<= X_0 1))(assert (>= X_0 0))",
            "no output",
        ),
        ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= Y_0 1))", "no lower or"),
        ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1)", "unbalanced"),
        ("(declare-const X_0 Real)(assert (or (and (<= X_0 1)) (and (>= X_0 0))))", "input"),
        (
            "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= (* Y_0 Y_0) 1))",
            "non-linear",
        ),
        ("(declare-const Z Real)", "only X_i / Y_j"),
        ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (=> Y_0 1))", "unsupported"),
        (
            "(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 -1))"
            "(assert (>= X_0 1))(assert (<= Y_0 0))",
            "empty range",
        ),
    ],
)
def test_unsupported_or_bad_specs_are_one_line_errors(text, message):
    with pytest.raises(InputError) as e:
        parse_vnnlib(text, "f.vnnlib")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith("f.vnnlib")


def test_missing_file():
    with pytest.raises(InputError, match="cannot read VNN-LIB file"):
        read_vnnlib("/nonexistent.vnnlib")
