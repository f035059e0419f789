"""Datasets in their standard formats: MNIST / Fashion-MNIST (IDX .gz or raw), CIFAR-10
(binary batches or python pickles). Images come back as float64 in [0, 1], shape (N, C, H, W).

Lookup order (DESIGN.md section 5): --data-dir, $FKD_DATA_DIR, ~/.cache/fkdverify,
/usr/share/datasets. Without network access nothing is downloaded; the error says where we
looked."""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, InputError

DATASETS = ("mnist", "fashion-mnist", "cifar10")
CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
}  # fmt: skip
_SUBDIRS = {
    "mnist": ("mnist", "MNIST", "MNIST/raw"),
    "fashion-mnist": ("fashion-mnist", "FashionMNIST", "FashionMNIST/raw", "fashion_mnist"),
    "cifar10": ("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin", "cifar10",
                "cifar-10-batches-py", "cifar10/cifar-10-batches-py"),
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    split: str
    images: np.ndarray  # (N, C, H, W) float64 in [0, 1]
    labels: np.ndarray  # (N,) int64
    source: str
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def search_dirs(data_dir: str | None) -> list[Path]:
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("FKD_DATA_DIR"):
        dirs.append(Path(os.environ["FKD_DATA_DIR"]))
    dirs.append(Path.home() / ".cache" / "fkdverify")
    dirs.append(Path("/usr/share/datasets"))
    return dirs


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        b = f.read()
    if len(b) < 4 or b[0] != 0 or b[1] != 0 or b[2] != 8:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    data = np.frombuffer(b, np.uint8, offset=4 + 4 * nd)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} bytes")
    return data.reshape(dims)


def _find(dirs: list[Path], subdirs, names) -> Path | None:
    for d in dirs:
        for sub in subdirs:
            for n in names:
                p = d / sub / n
                if p.is_file():
                    return p
    return None


def _idx_dataset(name: str, split: str, dirs: list[Path]) -> Dataset:
    pre = "t10k" if split == "test" else "train"
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        names = [f"{pre}-{kind}.gz", f"{pre}-{kind}", f"{pre}-{kind.replace('-idx', '.idx')}"]
        p = _find(dirs, _SUBDIRS[name], names)
        if p is None:
            where = ", ".join(str(d) for d in dirs)
            raise DataError(
                f"{name} {split} set not found ({pre}-{kind}[.gz]) under {where}; "
                "pass --data-dir or set FKD_DATA_DIR"
            )
        found.append(p)
    x, y = read_idx(found[0]), read_idx(found[1])
    if len(x) != len(y):
        raise DataError(f"{found[0]} has {len(x)} images but {found[1]} has {len(y)} labels")
    imgs = x.reshape(len(x), 1, x.shape[1], x.shape[2]).astype(np.float64) / 255.0
    return Dataset(name, split, imgs, y.astype(np.int64), str(found[0].parent), CLASSES[name])


def _cifar_dataset(split: str, dirs: list[Path]) -> Dataset:
    bins = ["test_batch.bin"] if split == "test" else [f"data_batch_{i}.bin" for i in range(1, 6)]
    pys = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    for d in dirs:
        for sub in _SUBDIRS["cifar10"]:
            base = d / sub
            if all((base / f).is_file() for f in bins):
                raw = np.concatenate([np.fromfile(base / f, np.uint8) for f in bins])
                if raw.size % 3073:
                    raise DataError(f"{base}: CIFAR-10 binary batches have a partial record")
                rec = raw.reshape(-1, 3073)
                x, y = rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0]
                return Dataset("cifar10", split, x / 255.0, y.astype(np.int64), str(base),
                               CLASSES["cifar10"])  # fmt: skip
            if all((base / f).is_file() for f in pys):
                xs, ys = [], []
                for f in pys:
                    with open(base / f, "rb") as fh:
                        dct = pickle.load(fh, encoding="bytes")
                    xs.append(np.asarray(dct[b"data"], np.uint8))
                    ys.append(np.asarray(dct[b"labels"], np.int64))
                x = np.concatenate(xs).reshape(-1, 3, 32, 32)
                return Dataset("cifar10", split, x / 255.0, np.concatenate(ys), str(base),
                               CLASSES["cifar10"])  # fmt: skip
    where = ", ".join(str(d) for d in dirs)
    raise DataError(
        f"cifar10 {split} set not found ({bins[0]} or {pys[0]}) under {where}; "
        "pass --data-dir or set FKD_DATA_DIR"
    )


def load_dataset(name: str, split: str = "test", data_dir: str | None = None) -> Dataset:
    name = name.lower().replace("_", "-")
    if name in ("cifar-10", "cifar"):
        name = "cifar10"
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("test", "train"):
        raise InputError(f"unknown split {split!r}; choose test or train")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} is not a directory")
    dirs = search_dirs(data_dir)
    return _cifar_dataset(split, dirs) if name == "cifar10" else _idx_dataset(name, split, dirs)


def infer_dataset(meta: dict, input_size: int) -> str:
    """Dataset named in ONNX metadata, else guessed from the input size."""
    for key in ("fkd.dataset", "dataset"):
        if meta.get(key):
            return meta[key]
    if input_size == 784:
        return "mnist"
    if input_size == 3072:
        return "cifar10"
    raise InputError(
        f"cannot infer the dataset from an input of {input_size} values; pass --dataset"
    )


def parse_indices(text: str) -> list[int]:
    """'3,5,10-20' -> [3, 5, 10, ..., 20]; ValueError when a part is not N or N-M."""
    out: list[int] = []
    for part in str(text).split(","):
        a, _, b = part.strip().partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out
