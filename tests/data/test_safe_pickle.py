"""CIFAR-10 python batches are unpickled without running code from them."""

import builtins
import os
import pickle
import warnings

import numpy as np
import pytest

from fkdverify.data import DataError, load_dataset, safe_load


class RunsCode:
    """Unpickling this runs a shell command (what a hostile 'batch' would do)."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class Evals:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


def _batch_dir(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    return d


def _batch(n=4, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"testing batch 1 of 1", b"labels": list(range(n)), b"data": x,
            b"filenames": [b"f%d.png" % i for i in range(n)]}  # fmt: skip


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_batch_that_would_run_code_is_refused(tmp_path, payload):
    marker = tmp_path / "marker"
    d = _batch_dir(tmp_path)
    bad = _batch()
    if payload == "system":
        bad[b"data"] = RunsCode(f"touch {marker}")
    else:
        bad[b"data"] = Evals(f"open({str(marker)!r}, 'w').close()")
    with open(d / "test_batch", "wb") as f:
        pickle.dump(bad, f)
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", "test", str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "refused to load global" in msg
    assert (f"{os.system.__module__}.system" if payload == "system" else "builtins.eval") in msg
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_batches_load_under_every_protocol(tmp_path, protocol):
    d = _batch_dir(tmp_path)
    b = _batch()
    with open(d / "test_batch", "wb") as f:
        pickle.dump(b, f, protocol=protocol)
    c = load_dataset("cifar10", "test", str(tmp_path))
    assert c.labels.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(c.images.reshape(4, -1), b[b"data"] / 255.0)


def test_python2_numpy1_batch_names_numpy_core(tmp_path):
    """The official batches (Python 2 / numpy 1) name numpy.core.multiarray._reconstruct; it is
    resolved without importing the deprecated numpy.core."""
    d = _batch_dir(tmp_path)
    raw = pickle.dumps(_batch(), protocol=2)
    if b"numpy._core.multiarray" in raw:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    (d / "test_batch").write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = load_dataset("cifar10", "test", str(tmp_path))
    assert len(c) == 4


def test_truncated_and_wrong_batches(tmp_path):
    d = _batch_dir(tmp_path)
    raw = pickle.dumps(_batch())
    (d / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="not a readable CIFAR-10 python batch") as e:
        load_dataset("cifar10", "test", str(tmp_path))
    assert "\n" not in str(e.value)
    (d / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="no data/labels"):
        load_dataset("cifar10", "test", str(tmp_path))
    bad = _batch()
    bad[b"labels"] = [1]
    (d / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match="4 images but 1 labels"):
        load_dataset("cifar10", "test", str(tmp_path))


def test_safe_load_plain_data(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps({b"a": [1, 2.5, b"x", None, (True,)]}, protocol=2))
    assert safe_load(p) == {b"a": [1, 2.5, b"x", None, (True,)]}
    p.write_bytes(pickle.dumps({1, 2}, protocol=2))  # builtins.set: not needed, refused
    with pytest.raises(DataError, match=r"refused to load global (builtins|__builtin__)\.set"):
        safe_load(p)
