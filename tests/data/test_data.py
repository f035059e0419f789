import pickle

import numpy as np
import pytest

from fkdverify.data import infer_dataset, load_dataset
from fkdverify.errors import DataError, InputError


def test_mnist_and_fashion(data):
    m = load_dataset("mnist", data_dir=str(data))
    assert m.images.shape == (10000, 1, 28, 28) and m.images.max() <= 1.0
    assert np.bincount(m.labels).tolist()[:3] == [980, 1135, 1032]
    f = load_dataset("fashion-mnist", data_dir=str(data))
    assert len(f) == 10000 and np.bincount(f.labels).tolist() == [1000] * 10
    assert load_dataset("mnist", "train", str(data)).images.shape[0] == 60000


def test_cifar_binary(data):
    c = load_dataset("cifar10", data_dir=str(data))
    assert c.images.shape == (10000, 3, 32, 32)
    assert c.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def test_cifar_python_batches(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    x = np.random.default_rng(0).integers(0, 256, (4, 3072), dtype=np.uint8)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": x, b"labels": [1, 2, 3, 4]}, f)
    c = load_dataset("cifar10", data_dir=str(tmp_path))
    assert c.labels.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(c.images[1].reshape(-1), x[1] / 255.0)


def test_missing_dataset_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("FKD_DATA_DIR", raising=False)
    monkeypatch.delenv("FKD_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataError) as e:  # the train split is never embedded
        load_dataset("mnist", "train", data_dir=str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path) in msg and "/usr/share/datasets" in msg and "\n" not in msg
    assert "fkdverify data download mnist" in msg


def test_mnist_test_set_is_embedded(tmp_path, monkeypatch):
    monkeypatch.delenv("FKD_DATA_DIR", raising=False)
    monkeypatch.delenv("FKD_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    m = load_dataset("mnist", data_dir=str(tmp_path))
    assert len(m) == 10000 and m.source == "embedded (fkdverify package)"


def test_unknown_dataset_and_inference():
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("imagenet")
    assert infer_dataset({}, 784) == "mnist"
    assert infer_dataset({"fkd.dataset": "fashion-mnist"}, 784) == "fashion-mnist"
    with pytest.raises(InputError):
        infer_dataset({}, 5)
