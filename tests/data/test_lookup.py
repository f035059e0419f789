"""Where load_dataset finds data: lookup order, the embedded test sets, --data-dir as the
dataset's own folder, the not-found message, listing(), and damaged files."""

import gzip
import shutil

import numpy as np
import pytest

from fkdverify.data import EMBEDDED_SOURCE, DataError, listing, load_dataset, loaders, locate
from fkdverify.data import catalog as cat
from tests.data.helpers import sha256, write_idx_set


def test_embedded_test_sets_without_any_data_location(isolated):
    """FKD_DATA_DIR unset, HOME an empty folder, no Debian folder: the embedded copy."""
    m = load_dataset("mnist")
    assert m.source == EMBEDDED_SOURCE
    assert m.images.shape == (10000, 1, 28, 28)
    assert np.bincount(m.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                              1009]  # fmt: skip
    f = load_dataset("fashion-mnist", "test")
    assert f.source == EMBEDDED_SOURCE and np.bincount(f.labels).tolist() == [1000] * 10


def test_embedded_files_are_the_official_ones():
    for name in ("mnist", "fashion-mnist"):
        for kind in cat.IDX_KINDS:
            f = f"t10k-{kind}.gz"
            assert sha256(loaders.EMBEDDED_DIR / name / f) == cat.SHA256[name][f]
    assert not list(loaders.EMBEDDED_DIR.rglob("train-*"))  # the train split is never embedded


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_train_split_is_never_embedded(name):
    with pytest.raises(DataError) as e:
        load_dataset(name, "train")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"fkdverify data download {name}" in msg and "not embedded" in msg


def test_not_found_names_every_place_and_the_download_command(tmp_path, isolated, monkeypatch):
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path / "c"))
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", "test", str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg
    assert f"--data-dir {tmp_path} (itself and" in msg
    assert "$FKD_DATA_DIR (not set)" in msg
    assert f"cache {tmp_path / 'c'}" in msg
    assert str(loaders.DEBIAN_DIR) in msg
    assert "cifar-10-batches-bin/" in msg and "test_batch.bin" in msg
    assert "fkdverify data download cifar10" in msg and str(tmp_path / "c" / "cifar10") in msg
    monkeypatch.setenv("FKD_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError, match=r"\$FKD_DATA_DIR .*env"):
        load_dataset("mnist", "train")


def test_images_and_labels_come_from_the_same_folder(tmp_path):
    write_idx_set(tmp_path / "a" / "mnist", "train", 5)
    (tmp_path / "a" / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="has only train-images-idx3-ubyte.gz"):
        load_dataset("mnist", "train", str(tmp_path / "a"))


def test_lookup_order(tmp_path, isolated, monkeypatch):
    """--data-dir, then $FKD_DATA_DIR, then the cache, then Debian's folder, then embedded."""
    cache, env, arg, deb = (tmp_path / s for s in ("cache", "env", "arg", "deb"))
    monkeypatch.setattr(loaders, "DEBIAN_DIR", deb)
    monkeypatch.setenv("FKD_CACHE_DIR", str(cache))
    monkeypatch.setenv("FKD_DATA_DIR", str(env))
    for i, base in enumerate((deb, cache, env, arg)):
        write_idx_set(base / "mnist", "test", 10 + i, gz=i % 2 == 0)
    assert len(load_dataset("mnist", "test", str(arg))) == 13
    assert len(load_dataset("mnist", "test")) == 12
    shutil.rmtree(env)
    assert len(load_dataset("mnist", "test")) == 11
    shutil.rmtree(cache)
    assert len(load_dataset("mnist", "test")) == 10
    assert [f.source for f in locate("mnist", "test", str(arg))] == [
        "--data-dir", "/usr/share/datasets", "embedded"]  # fmt: skip
    shutil.rmtree(deb)
    assert load_dataset("mnist", "test").source == EMBEDDED_SOURCE


def test_data_dir_may_be_the_dataset_folder_itself(data):
    m = load_dataset("mnist", "test", str(data / "mnist"))
    assert len(m) == 10000 and m.source == str(data / "mnist")
    assert len(load_dataset("mnist", "train", str(data / "mnist"))) == 60000
    f = load_dataset("fashion-mnist", "test", str(data / "fashion-mnist"))
    assert np.bincount(f.labels).tolist() == [1000] * 10
    c = load_dataset("cifar10", "test", str(data / "cifar10" / "cifar-10-batches-bin"))
    assert c.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    # the parent-folder rule still holds
    assert load_dataset("mnist", "test", str(data)).source == str(data / "mnist")


def test_dataset_folder_of_another_dataset_is_refused(data, tmp_path):
    with pytest.raises(DataError, match="holds fashion-mnist, not mnist"):
        load_dataset("mnist", "test", str(data / "fashion-mnist"))
    # the same files in a folder whose name says nothing: told apart by their sha256
    d = tmp_path / "some-folder"
    d.mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data / "mnist" / f, d / f)
    with pytest.raises(DataError, match="holds mnist, not fashion-mnist"):
        load_dataset("fashion-mnist", "test", str(d))
    assert len(load_dataset("mnist", "test", str(d))) == 10000


def test_listing(data, isolated, monkeypatch):
    monkeypatch.setenv("FKD_DATA_DIR", str(data))
    rows = {(r["dataset"], r["split"]): r for r in listing()}
    assert set(rows) == {(n, s) for n in cat.DATASETS for s in ("test", "train")}
    mt = rows["mnist", "test"]
    assert mt["status"] == "found" and mt["source"] == "$FKD_DATA_DIR"
    assert mt["path"] == str(data / "mnist")
    assert mt["found_in"][-1].startswith("embedded: ")
    ft = rows["fashion-mnist", "train"]
    assert ft["status"] == "missing" and ft["source"] is None and ft["path"] is None
    assert ft["download"] == "fkdverify data download fashion-mnist"
    assert rows["cifar10", "train"]["status"] == "found"
    monkeypatch.delenv("FKD_DATA_DIR")
    rows = {(r["dataset"], r["split"]): r for r in listing()}
    assert rows["mnist", "test"]["source"] == "embedded"
    assert rows["mnist", "train"]["status"] == "missing"
    assert rows["cifar10", "test"]["status"] == "missing"
    rows = {(r["dataset"], r["split"]): r for r in listing(str(data / "mnist"))}
    assert rows["mnist", "train"]["source"] == "--data-dir"


def _copy_set(data, dest):
    dest.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data / "mnist" / f, dest / f)
    return dest / "t10k-images-idx3-ubyte.gz"


def test_truncated_gzip_is_a_one_line_error(data, tmp_path):
    img = _copy_set(data, tmp_path / "mnist")
    b = img.read_bytes()
    img.write_bytes(b[: len(b) // 2])  # cut in the middle
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "test", str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "truncated" in msg and str(img) in msg
    assert "fkdverify data download mnist" in msg


def test_corrupt_gzip_is_a_one_line_error(data, tmp_path):
    img = _copy_set(data, tmp_path / "mnist")
    b = bytearray(img.read_bytes())
    for i in range(len(b) // 2, len(b) // 2 + 64):
        b[i] ^= 0x5A
    img.write_bytes(bytes(b))
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "test", str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "corrupt" in msg and str(img) in msg


def test_truncated_and_mislabelled_raw_idx(tmp_path):
    write_idx_set(tmp_path / "mnist", "test", 4, gz=False)
    img = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated: header says"):
        load_dataset("mnist", "test", str(tmp_path))
    img.write_bytes(img.read_bytes()[:10])
    with pytest.raises(DataError, match="IDX header is cut short"):
        load_dataset("mnist", "test", str(tmp_path))
    # gzip'd bytes under the raw name are read as gzip (told apart by their magic bytes)
    write_idx_set(tmp_path / "x", "test", 4)
    for kind in cat.IDX_KINDS:
        src = tmp_path / "x" / f"t10k-{kind}.gz"
        (tmp_path / "mnist" / f"t10k-{kind}").write_bytes(src.read_bytes())
    assert len(load_dataset("mnist", "test", str(tmp_path))) == 4
    # a zero-length .gz
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(b"")[:5])
    with pytest.raises(DataError):
        load_dataset("mnist", "test", str(tmp_path))
