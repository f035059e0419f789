"""fkdverify figure: every slice point lies in the ball and the domain; the PNG is written
with one panel per student; a PNG it did not write is never replaced."""

import numpy as np

from fkdverify.cli import main
from fkdverify.report.figure import slice_points
from tests.conftest import REPO

T = str(REPO / "models/mnist_teacher_pgd.onnx")
S = [str(REPO / f"models/mnist_student_{m}.onnx") for m in ("kd", "faithful")]


def test_slice_points_stay_in_the_ball_and_the_domain():
    rng = np.random.default_rng(0)
    x0 = rng.random(50)
    d1, d2 = rng.choice([-1.0, 1.0], 50), rng.choice([-1.0, 1.0], 50)
    grid, xs = slice_points(x0, d1, d2, 0.1, 21)
    assert len(grid) == 21 and xs.shape == (21 * 21, 50)
    assert (np.abs(xs - x0) <= 0.1 + 1e-12).all() and (xs >= 0).all() and (xs <= 1).all()
    assert np.allclose(xs[10 * 21 + 10], x0)  # (a, b) = (0, 0) is the test point


def test_figure_writes_a_png_and_never_replaces_a_foreign_one(tmp_path, capsys, data):
    out = tmp_path / "fig.png"
    args = ["figure", T, *S, "--eps", "0.1", "--index", "0", "--grid", "11", "--dataset",
            "mnist", "--data-dir", str(data), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mnist_student_kd: max gap on the slice" in text and "mnist_student_faithful" in text
    assert main(args) == 0  # its own figure may be replaced
    foreign = tmp_path / "photo.png"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\nnot ours")
    assert main([*args[:-1], str(foreign)]) != 0
    assert foreign.read_bytes() == b"\x89PNG\r\n\x1a\nnot ours"
