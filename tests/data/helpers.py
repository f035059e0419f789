"""Small builders for the data tests: IDX files, CIFAR batches, tars."""

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np


def digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256(path) -> str:
    return digest(Path(path).read_bytes())


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, np.uint8)
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def write_idx_set(folder: Path, split: str, n: int, seed: int = 0, gz: bool = True) -> None:
    """n random 28x28 images and labels as <pre>-images-idx3-ubyte[.gz] / labels."""
    rng = np.random.default_rng(seed)
    pre = "t10k" if split == "test" else "train"
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr in (("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28))),
                      ("labels-idx1-ubyte", rng.integers(0, 10, n))):  # fmt: skip
        b = idx_bytes(arr)
        if gz:
            (folder / f"{pre}-{kind}.gz").write_bytes(gzip.compress(b, mtime=0))
        else:
            (folder / f"{pre}-{kind}").write_bytes(b)


def cifar_records(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1)
    return rec.astype(np.uint8).tobytes()


def tar_gz(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    """A .tar.gz holding ``members`` (name -> bytes) and symlinks (name -> target)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
