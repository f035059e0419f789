"""Training end to end on small slices of real data: learns, exports what it trained, resumes
to the same weights, and its files are read by certify without extra flags."""

import csv
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fkdverify.errors import InputError
from fkdverify.net.onnx_export import to_onnx
from fkdverify.net.onnx_import import import_onnx
from fkdverify.net.torch_net import evaluate
from fkdverify.train import trainer as tr
from fkdverify.train.arch import build, to_network
from fkdverify.train.trainer import TrainOptions, train


def _opts(data, tmp_path, **kw):
    base = dict(role="teacher", method="standard", dataset="mnist", arch="mlp:32",
                out=str(tmp_path / "m.onnx"), data_dir=str(data), epochs=1, batch_size=64,
                train_limit=2000, eval_n=100, eps=0.1, pgd_steps=3, lr=3e-3)  # fmt: skip
    base.update(kw)
    return TrainOptions(**base)


@pytest.mark.parametrize("arch,shape,norm", [
    ("mlp:16,8", (1, 28, 28), None),
    ("cnn-tiny", (3, 32, 32), ((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))),
    ("cnn-medium", (1, 28, 28), None),
])  # fmt: skip
def test_export_then_import_gives_the_same_outputs(tmp_path, arch, shape, norm):
    torch.manual_seed(1)
    model = build(arch, shape, 10, norm)
    path = str(tmp_path / "m.onnx")
    onnx.save(to_onnx(to_network(model, shape), {"fkd.dataset": "x"}), path)
    x = np.random.default_rng(0).random((5, *shape)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    net = import_onnx(path)
    np.testing.assert_allclose(evaluate(net, x.reshape(5, -1)), want, atol=1e-4)
    sess = ort.InferenceSession(path)
    got = np.concatenate([sess.run(None, {"x": xi[None]})[0] for xi in x])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert net.meta["fkd.dataset"] == "x"


def test_one_epoch_on_a_slice_beats_chance(data, tmp_path):
    res = train(_opts(data, tmp_path))
    assert res.clean_acc > 0.6  # chance is 0.1
    net = import_onnx(res.path)
    assert net.meta["fkd.method"] == "standard" and float(net.meta["fkd.clean_accuracy"]) > 0.6


def test_resume_after_interruption_gives_the_same_weights(data, tmp_path, monkeypatch):
    opts = _opts(data, tmp_path, method="pgd", train_limit=640, epochs=2, checkpoint_every=3)
    ref = train(replace(opts, out=str(tmp_path / "ref.onnx")))
    real_step = tr.teacher_step
    calls = {"n": 0}

    def dying_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 14:  # in the second epoch, between checkpoints
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(tr, "teacher_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(opts)
    monkeypatch.setattr(tr, "teacher_step", real_step)
    res = train(opts)
    assert res.resumed_from == (1, 3)
    a, b = onnx.load(ref.path).graph.initializer, onnx.load(res.path).graph.initializer
    for ta, tb in zip(a, b, strict=True):
        assert onnx.numpy_helper.to_array(ta).tobytes() == onnx.numpy_helper.to_array(tb).tobytes()


@pytest.mark.parametrize("method", ["kd", "ard", "rslad", "iad", "faithful", "certified-kd"])
def test_every_student_method_trains(data, tmp_path, method):
    teacher = train(_opts(data, tmp_path, out=str(tmp_path / "t.onnx"), train_limit=3000))
    opts = _opts(
        data,
        tmp_path,
        role="student",
        method=method,
        teacher=teacher.path,
        arch="mlp:16",
        train_limit=2000,
        bound_weight=0.5 if method == "faithful" else 0,
    )
    res = train(opts)  # fmt: skip
    assert res.clean_acc > 0.15  # above chance (0.1) after 31 steps, adversarial ones included
    assert import_onnx(res.path).meta["fkd.teacher"] == "t.onnx"


def test_certified_training_methods_run(data, tmp_path):
    for m in ("ibp", "crown-ibp", "mtl-ibp"):
        res = train(_opts(data, tmp_path, method=m, out=str(tmp_path / f"{m}.onnx")))
        assert res.clean_acc > 0.2


def test_bad_options_are_clear():
    with pytest.raises(InputError, match="--arch"):
        TrainOptions(role="teacher", method="pgd", dataset="mnist", arch="resnet", out="a.onnx")
    with pytest.raises(InputError, match="--teacher"):
        TrainOptions(role="student", method="kd", dataset="mnist", arch="mlp:8", out="a.onnx")
    with pytest.raises(InputError, match="--method"):
        TrainOptions(role="teacher", method="kd", dataset="mnist", arch="mlp:8", out="a.onnx")


def test_cli_train_then_certify_reads_the_metadata(data, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "fkdverify.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    common = ["--dataset", "mnist", "--data-dir", data, "--epochs", 1, "--train-limit", 1500,
              "--eval-n", 50, "--pgd-steps", 3, "--quiet"]  # fmt: skip
    t, s = tmp_path / "t.onnx", tmp_path / "s.onnx"
    r = cli("train", "teacher", "--arch", "mlp:32", "--method", "pgd", "--out", t, *common)
    assert r.returncode == 0, r.stderr
    assert "clean accuracy" in r.stdout
    r = cli("train", "student", "--teacher", t, "--arch", "mlp:16", "--method", "faithful",
            "--out", s, *common)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "r.csv"
    r = cli("certify", t, s, "--eps", 0.02, "--n", 4, "--data-dir", data, "--method", "milp",
            "--timeout", 20, "--out", out, "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader(open(out)))) == 4
    r = cli("train", "student", "--teacher", tmp_path / "none.onnx", "--arch", "mlp:16",
            "--out", s, *common)  # fmt: skip
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bound_terms_ramp_their_epsilon_and_pgd_does_not():
    from fkdverify.train.trainer import TrainOptions, ramp_at

    def opts(**kw):
        return TrainOptions(role="student", dataset="mnist", arch="mlp:8", out="s.onnx",
                            teacher="t.onnx", eps=0.1, **kw)  # fmt: skip

    assert ramp_at(opts(method="certified-kd"), 0, 100) == 0.0
    assert ramp_at(opts(method="faithful", bound_weight=1.0), 0, 100) == 0.0
    assert ramp_at(opts(method="faithful"), 0, 100) == 1.0  # no bound term: nothing to ramp
    assert ramp_at(opts(method="kd"), 0, 100) == 1.0
    assert ramp_at(opts(method="certified-kd"), 100, 100) == 1.0
