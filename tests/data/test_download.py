"""download(): real files from shared/data served by a local HTTP server on 127.0.0.1."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from fkdverify.data import DataError, download, load_dataset, mirrors
from fkdverify.data import catalog as cat
from tests.data.helpers import cifar_records, digest, sha256, tar_gz

MNIST = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
         "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]  # fmt: skip


def _serve_mnist(data, mirror):
    d = mirror.root / "mnist"
    d.mkdir()
    for f in MNIST:
        shutil.copy(data / "mnist" / f, d / f)
    return d


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_real_table_real_t10k_files_and_refused_train_images(data, mirror, monkeypatch, tmp_path):
    """With the real sha256 table: the t10k files (byte-identical to the official ones) land;
    shared/data's re-gzipped train images differ from the official .gz and are refused."""
    _serve_mnist(data, mirror)
    monkeypatch.setenv("FKD_MIRROR", mirror.url)
    dest = tmp_path / "dl"
    with pytest.raises(DataError) as e:
        download("mnist", str(dest))
    msg = str(e.value)
    assert "\n" not in msg
    assert cat.SHA256["mnist"]["train-images-idx3-ubyte.gz"] in msg  # expected
    assert sha256(data / "mnist" / "train-images-idx3-ubyte.gz") in msg  # found
    assert "train-images-idx3-ubyte.gz" in msg and "pass --data-dir" in msg
    for f in MNIST[:2]:
        assert sha256(dest / f) == cat.SHA256["mnist"][f] == sha256(data / "mnist" / f)
    assert not (dest / "train-images-idx3-ubyte.gz").exists()
    assert _leftovers(dest) == []  # no partial file left behind
    t = load_dataset("mnist", "test", str(dest))  # the dataset's own folder as --data-dir
    assert len(t) == 10000 and t.source == str(dest)


def test_full_download_into_the_cache_then_found_there(data, mirror, monkeypatch, tmp_path):
    _serve_mnist(data, mirror)
    # the served train images are a re-gzipped copy: its digest stands in for the official one
    monkeypatch.setitem(cat.SHA256["mnist"], "train-images-idx3-ubyte.gz",
                        sha256(data / "mnist" / "train-images-idx3-ubyte.gz"))  # fmt: skip
    monkeypatch.setenv("FKD_MIRROR_MNIST", mirror.url + "/mnist/")
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path / "cache"))
    seen = []
    got = download("mnist", progress=lambda f, done, total: seen.append((f, done, total)))
    assert got == tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in got.iterdir()) == sorted(MNIST)
    assert {f for f, _, _ in seen} == set(MNIST)
    last = {f: (done, total) for f, done, total in seen}
    assert last["t10k-labels-idx1-ubyte.gz"] == (4542, 4542)
    tr = load_dataset("mnist", "train")  # no --data-dir, no $FKD_DATA_DIR: the cache
    assert tr.images.shape == (60000, 1, 28, 28) and tr.source == str(got)
    assert load_dataset("mnist", "test").source == str(got)  # the cache comes before embedded


def test_present_files_are_not_fetched_again(data, mirror, monkeypatch, tmp_path):
    _serve_mnist(data, mirror)
    monkeypatch.setitem(cat.SHA256["mnist"], "train-images-idx3-ubyte.gz",
                        sha256(data / "mnist" / "train-images-idx3-ubyte.gz"))  # fmt: skip
    monkeypatch.setenv("FKD_MIRROR", mirror.url)
    dest = tmp_path / "dl"
    download("mnist", str(dest))
    assert len(mirror.requests) == 4
    mirror.requests.clear()
    download("mnist", str(dest))
    assert mirror.requests == []
    # a present file with a wrong digest is fetched again (and only that one)
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the labels")
    download("mnist", str(dest))
    assert mirror.requests == ["/mnist/t10k-labels-idx1-ubyte.gz"]
    assert sha256(dest / "t10k-labels-idx1-ubyte.gz") == cat.SHA256["mnist"][MNIST[1]]


def test_corrupt_file_is_refused_and_nothing_lands(data, mirror, monkeypatch, tmp_path):
    d = mirror.root / "fashion-mnist"
    d.mkdir()
    good = (data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(bad))
    shutil.copy(data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz", d)
    monkeypatch.setenv("FKD_MIRROR", mirror.url)
    dest = tmp_path / "dl"
    with pytest.raises(DataError) as e:
        download("fashion-mnist", str(dest))
    msg = str(e.value)
    assert "\n" not in msg and "refused" in msg
    assert cat.SHA256["fashion-mnist"]["t10k-labels-idx1-ubyte.gz"] in msg
    assert sha256(d / "t10k-labels-idx1-ubyte.gz") in msg
    assert not (dest / "t10k-labels-idx1-ubyte.gz").exists()
    assert (dest / "t10k-images-idx3-ubyte.gz").exists()  # the good one before it landed
    assert _leftovers(dest) == []


def test_oversized_download_is_cut_off(data, mirror, monkeypatch, tmp_path):
    _serve_mnist(data, mirror)
    monkeypatch.setitem(cat.SIZES["mnist"], "t10k-images-idx3-ubyte.gz", 1000)
    monkeypatch.setenv("FKD_MIRROR", mirror.url)
    with pytest.raises(DataError, match="more than the expected 1000 bytes"):
        download("mnist", str(tmp_path / "dl"))
    assert list((tmp_path / "dl").iterdir()) == []


def test_unreachable_mirror_is_a_one_line_error(closed_port, monkeypatch, tmp_path):
    monkeypatch.setenv("FKD_MIRROR", f"http://127.0.0.1:{closed_port}")
    dest = tmp_path / "dl"
    with pytest.raises(DataError) as e:
        download("mnist", str(dest))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("could not download mnist t10k-images-idx3-ubyte.gz")
    assert f"copy the files into {dest} by hand or pass --data-dir" in msg
    assert list(dest.iterdir()) == []


def test_missing_file_on_the_mirror_and_fallback_to_the_next(data, mirror, closed_port,
                                                             monkeypatch, tmp_path):  # fmt: skip
    monkeypatch.setenv("FKD_MIRROR", mirror.url)  # serves nothing
    with pytest.raises(DataError, match="HTTP 404"):
        download("fashion-mnist", str(tmp_path / "a"))
    _serve_mnist(data, mirror)
    monkeypatch.setitem(cat.SHA256["mnist"], "train-images-idx3-ubyte.gz",
                        sha256(data / "mnist" / "train-images-idx3-ubyte.gz"))  # fmt: skip
    monkeypatch.setenv("FKD_MIRROR_MNIST", f"http://127.0.0.1:{closed_port}/x/,{mirror.url}/mnist")
    got = download("mnist", str(tmp_path / "b"))
    assert len(list(got.iterdir())) == 4


def test_mirrors_defaults_and_overrides(monkeypatch):
    assert mirrors("mnist") == ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                                "http://yann.lecun.com/exdb/mnist/"]  # fmt: skip
    assert mirrors("fashion-mnist") == [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ]
    assert mirrors("cifar10") == ["https://www.cs.toronto.edu/~kriz/"]
    monkeypatch.setenv("FKD_MIRROR", "http://h/base/")
    assert mirrors("fashion-mnist") == ["http://h/base/fashion-mnist/"]
    monkeypatch.setenv("FKD_MIRROR_FASHION_MNIST", "http://a/, http://b/")
    assert mirrors("fashion_mnist") == ["http://a/", "http://b/"]


def _cifar_tar(mirror, monkeypatch, extra=None, links=None):
    """A small CIFAR-10 binary tar (3 records per batch) served at <mirror>/cifar10/; the
    sha256 table is patched to its digests (the real tar is 162 MB and not in shared/data)."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    members = {f"cifar-10-batches-bin/{n}": cifar_records(3, i) for i, n in enumerate(names)}
    members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\n"
    members.update(extra or {})
    d = mirror.root / "cifar10"
    d.mkdir()
    tar_gz(d / cat.CIFAR_TAR, members, links)
    monkeypatch.setitem(cat.SHA256["cifar10"], cat.CIFAR_TAR, sha256(d / cat.CIFAR_TAR))
    for n in names:
        monkeypatch.setitem(cat.CIFAR_MEMBERS, n, digest(members[f"cifar-10-batches-bin/{n}"]))
    monkeypatch.setenv("FKD_MIRROR", mirror.url)
    return members


def test_cifar_tar_is_extracted_safely(mirror, monkeypatch, tmp_path):
    members = _cifar_tar(mirror, monkeypatch, extra={"elsewhere/x.bin": b"x"},
                         links={"cifar-10-batches-bin/link": "/etc/passwd"})  # fmt: skip
    dest = tmp_path / "dl"
    got = download("cifar10", str(dest))
    assert got == dest / "cifar-10-batches-bin"
    assert sorted(p.name for p in got.iterdir()) == sorted(
        n.split("/")[1] for n in members if n.startswith("cifar-10-batches-bin/")
    )
    assert not (got / "link").exists() and not (got / "link").is_symlink()
    assert sorted(p.name for p in dest.iterdir()) == ["cifar-10-batches-bin"]  # no tar, no tmp
    c = load_dataset("cifar10", "train", str(got))  # the dataset's own folder
    assert c.images.shape == (15, 3, 32, 32)
    assert load_dataset("cifar10", "test", str(dest)).images.shape == (3, 3, 32, 32)
    mirror.requests.clear()
    download("cifar10", str(dest))  # present and verified: not fetched again
    assert mirror.requests == []


@pytest.mark.parametrize("evil", ["../escaped.bin", "/tmp/fkd-abs-escaped.bin",
                                  "cifar-10-batches-bin/../../escaped.bin"])  # fmt: skip
def test_cifar_tar_with_unsafe_paths_is_refused(mirror, monkeypatch, tmp_path, evil):
    _cifar_tar(mirror, monkeypatch, extra={evil: b"pwned"})
    dest = tmp_path / "sub" / "dl"
    with pytest.raises(DataError, match="refused member"):
        download("cifar10", str(dest))
    assert not list(tmp_path.rglob("escaped.bin"))
    assert not Path("/tmp/fkd-abs-escaped.bin").exists()
    assert list(dest.iterdir()) == []


def test_cifar_member_with_a_wrong_digest_is_refused(mirror, monkeypatch, tmp_path):
    _cifar_tar(mirror, monkeypatch)
    monkeypatch.setitem(cat.CIFAR_MEMBERS, "test_batch.bin", "0" * 64)
    dest = tmp_path / "dl"
    with pytest.raises(DataError, match="test_batch.bin .*refused.*expected 0{64}"):
        download("cifar10", str(dest))
    assert list(dest.iterdir()) == []


def test_real_cifar_batches_match_the_member_table(data):
    """The extracted-member digests are the official ones; shared/data holds the same files."""
    d = data / "cifar10" / "cifar-10-batches-bin"
    if not (d / "test_batch.bin").is_file():
        pytest.skip("full CIFAR-10 batches not in shared/data")
    for name, want in cat.CIFAR_MEMBERS.items():
        assert sha256(d / name) == want, name
    x = np.fromfile(d / "test_batch.bin", np.uint8)
    assert x.size == 10000 * 3073


def test_first_use_downloads_once_into_the_cache(data, mirror, monkeypatch, tmp_path, capsys):
    """A split found nowhere is fetched into the cache on first use (progress on stderr),
    then read from there; FKD_NO_DOWNLOAD=1 keeps the old offline error."""
    from fkdverify.data import load_or_download

    _serve_mnist(data, mirror)
    monkeypatch.setitem(cat.SHA256["mnist"], "train-images-idx3-ubyte.gz",
                        sha256(data / "mnist" / "train-images-idx3-ubyte.gz"))  # fmt: skip
    monkeypatch.setenv("FKD_MIRROR_MNIST", mirror.url + "/mnist/")
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FKD_NO_DOWNLOAD", "1")
    with pytest.raises(DataError, match="fkdverify data download mnist"):
        load_or_download("mnist", "train")
    monkeypatch.delenv("FKD_NO_DOWNLOAD")
    tr = load_or_download("mnist", "train")
    assert len(tr) == 60000 and tr.source == str(tmp_path / "cache" / "mnist")
    assert "downloading it once into the cache" in capsys.readouterr().err
    n = len(mirror.requests)
    assert len(load_or_download("mnist", "train")) == 60000 and len(mirror.requests) == n


def test_first_use_download_failure_is_the_not_found_error(closed_port, monkeypatch):
    from fkdverify.data import load_or_download

    monkeypatch.delenv("FKD_NO_DOWNLOAD", raising=False)
    monkeypatch.setenv("FKD_MIRROR_MNIST", f"http://127.0.0.1:{closed_port}/")
    with pytest.raises(DataError) as e:
        load_or_download("mnist", "train")
    assert "automatic download failed" in str(e.value) and "\n" not in str(e.value)
