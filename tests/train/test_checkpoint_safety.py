"""Training checkpoints are loaded with torch.load(weights_only=True): a crafted one is refused
without running its code; a real one still resumes."""

import os
import pickle

import pytest
import torch

from fkdverify.errors import InputError
from fkdverify.train import trainer as tr
from fkdverify.train.arch import build
from fkdverify.train.trainer import TrainOptions


class RunsCode:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _setup(tmp_path, **kw):
    opts = TrainOptions(role="teacher", method="standard", dataset="mnist", arch="mlp:8",
                        out=str(tmp_path / "m.onnx"), **kw)  # fmt: skip
    torch.manual_seed(0)
    model = build("mlp:8", (1, 28, 28), 10, None)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(3, 1, 28, 28)).sum().backward()
    optim.step()
    return opts, model, optim


@pytest.mark.parametrize("how", ["torch.save", "legacy pickle"])
def test_checkpoint_that_would_run_code_is_refused(tmp_path, how):
    opts, model, optim = _setup(tmp_path)
    marker = tmp_path / "marker"
    ckpt = opts.out + ".ckpt"
    state = {"key": opts.key(), "where": [0, 1], "model": RunsCode(f"touch {marker}"),
             "optim": optim.state_dict()}  # fmt: skip
    if how == "torch.save":
        torch.save(state, ckpt)
    else:
        with open(ckpt, "wb") as f:
            pickle.dump(state, f, protocol=2)
    with pytest.raises(InputError) as e:
        tr._resume(ckpt, opts, model, optim)
    msg = str(e.value)
    assert "\n" not in msg and "cannot be loaded safely" in msg and ckpt in msg
    assert not marker.exists()


def test_train_refuses_a_crafted_checkpoint(data, tmp_path):
    opts, _, _ = _setup(tmp_path, data_dir=str(data), epochs=1, train_limit=64, eval_n=10)
    marker = tmp_path / "marker"
    torch.save({"key": opts.key(), "where": [0, 1], "model": RunsCode(f"touch {marker}"),
                "optim": {}}, opts.out + ".ckpt")  # fmt: skip
    with pytest.raises(InputError, match="cannot be loaded safely"):
        tr.train(opts)
    assert not marker.exists()


def test_saved_checkpoint_loads_weights_only_and_resumes(tmp_path):
    opts, model, optim = _setup(tmp_path)
    ckpt = opts.out + ".ckpt"
    tr._save(ckpt, opts, model, optim, (1, 7))
    torch.load(ckpt, weights_only=True)  # plain tensors / containers only
    m2 = build("mlp:8", (1, 28, 28), 10, None)
    o2 = torch.optim.Adam(m2.parameters(), lr=1e-3)
    assert tr._resume(ckpt, opts, m2, o2) == ((1, 7), (1, 7))
    for a, b in zip(model.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(optim.state_dict()["state"][0]["exp_avg"],
                       o2.state_dict()["state"][0]["exp_avg"])  # fmt: skip


def test_torn_or_foreign_checkpoint_is_a_one_line_error(tmp_path):
    opts, model, optim = _setup(tmp_path)
    ckpt = opts.out + ".ckpt"
    tr._save(ckpt, opts, model, optim, (0, 3))
    b = open(ckpt, "rb").read()
    open(ckpt, "wb").write(b[: len(b) // 2])
    with pytest.raises(InputError) as e:
        tr._resume(ckpt, opts, model, optim)
    assert "\n" not in str(e.value)
    torch.save([1, 2, 3], ckpt)
    with pytest.raises(InputError, match="not a fkdverify training checkpoint"):
        tr._resume(ckpt, opts, model, optim)
