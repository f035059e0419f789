"""Finding and reading datasets. Offline: nothing here touches the network (see fetch.py).

Lookup order (DESIGN.md section 5): --data-dir, $FKD_DATA_DIR, the user cache
($FKD_CACHE_DIR, default ~/.cache/fkdverify), Debian's /usr/share/datasets, then - for the
MNIST and Fashion-MNIST test splits only - the copy embedded in the package. --data-dir may be
the parent folder (it holds mnist/, cifar10/, ...) or the dataset's own folder (it directly
holds t10k-images-idx3-ubyte.gz or CIFAR-10's batch files); the other locations are parents."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from .catalog import (
    CLASSES,
    DATASETS,
    IDX_KINDS,
    SHA256,
    SIZES,
    SPLITS,
    SUBDIRS,
    cifar_files,
    idx_names,
    idx_prefix,
)
from .safe_pickle import safe_load

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
EMBEDDED = ("mnist", "fashion-mnist")  # test split only; the train split is never embedded
EMBEDDED_SOURCE = "embedded (fkdverify package)"
DEBIAN_DIR = Path("/usr/share/datasets")


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    split: str
    images: np.ndarray  # (N, C, H, W) float64 in [0, 1]
    labels: np.ndarray  # (N,) int64
    source: str  # the folder the files came from, or EMBEDDED_SOURCE
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Found:
    """One place where a dataset split lies."""

    source: str  # --data-dir | $FKD_DATA_DIR | cache | /usr/share/datasets | embedded
    folder: Path
    files: tuple[Path, ...]  # IDX: (images, labels); CIFAR-10: the batches
    fmt: str  # idx | cifar-bin | cifar-py
    direct: bool = False  # --data-dir named the dataset's own folder


def cache_dir() -> Path:
    """Root of the user cache: $FKD_CACHE_DIR, else ~/.cache/fkdverify."""
    env = os.environ.get("FKD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fkdverify"


def search_dirs(data_dir: str | None) -> list[Path]:
    """The parent folders searched, in order (the embedded copy comes after these)."""
    return [p for _, p in _bases(data_dir)]


def _bases(data_dir: str | None) -> list[tuple[str, Path]]:
    out = []
    if data_dir:
        out.append(("--data-dir", Path(data_dir).expanduser()))
    if os.environ.get("FKD_DATA_DIR"):
        out.append(("$FKD_DATA_DIR", Path(os.environ["FKD_DATA_DIR"]).expanduser()))
    out.append(("cache", cache_dir()))
    out.append(("/usr/share/datasets", DEBIAN_DIR))
    return out


def normalise_name(name: str) -> str:
    """'MNIST', 'fashion_mnist', 'cifar-10' -> the canonical name; InputError when unknown."""
    n = str(name).lower().replace("_", "-")
    if n in ("cifar-10", "cifar"):
        n = "cifar10"
    if n in ("fashionmnist", "fmnist"):
        n = "fashion-mnist"
    if n not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return n


def _first_file(folder: Path, names) -> Path | None:
    for n in names:
        p = folder / n
        if p.is_file():
            return p
    return None


def _match(name: str, split: str, folder: Path) -> tuple[tuple[Path, ...], str] | None:
    """The split's files when ``folder`` directly holds all of them."""
    if name == "cifar10":
        bins, pys = cifar_files(split)
        if all((folder / f).is_file() for f in bins):
            return tuple(folder / f for f in bins), "cifar-bin"
        if all((folder / f).is_file() for f in pys):
            return tuple(folder / f for f in pys), "cifar-py"
        return None
    files = [_first_file(folder, idx_names(split, kind)) for kind in IDX_KINDS]
    return (tuple(files), "idx") if all(files) else None


def _candidates(name: str, split: str, data_dir: str | None):
    """(source, folder, direct) in lookup order."""
    for src, base in _bases(data_dir):
        for sub in SUBDIRS[name]:
            yield src, base / sub, False
        if src == "--data-dir":
            yield src, base, True
    if name in EMBEDDED and split == "test":
        yield "embedded", EMBEDDED_DIR / name, False


def locate(name: str, split: str = "test", data_dir: str | None = None) -> list[Found]:
    """Every place where the split lies, in lookup order (the first is what load_dataset
    reads). Only checks that the files exist; reads nothing."""
    name = normalise_name(name)
    out, seen = [], set()
    for src, folder, direct in _candidates(name, split, data_dir):
        m = _match(name, split, folder)
        if m is None:
            continue
        key = os.path.realpath(folder)
        if key in seen:
            continue
        seen.add(key)
        out.append(Found(src, folder, m[0], m[1], direct))
    return out


def read_idx(path: Path, name: str | None = None) -> np.ndarray:
    """An unsigned-byte IDX file, gzip'd or not (told apart by its first bytes).
    Truncated or corrupt files raise a one-line DataError."""
    path = Path(path)
    again = f"fkdverify data download {name}" if name else "fkdverify data download NAME"
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz:
            with gzip.open(path, "rb") as f:
                b = f.read()
        else:
            b = path.read_bytes()
    except EOFError:
        raise DataError(f"{path} is truncated (its gzip stream ends early): delete it and "
                        f"fetch it again ({again})") from None  # fmt: skip
    except (OSError, zlib.error) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path} is corrupt or unreadable ({reason}): delete it and fetch it "
                        f"again ({again})") from None  # fmt: skip
    if len(b) < 4 or b[0] != 0 or b[1] != 0 or b[2] != 8:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    nd = b[3]
    if len(b) < 4 + 4 * nd:
        raise DataError(f"{path} is truncated: its IDX header is cut short ({again})")
    dims = [int.from_bytes(b[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    data = np.frombuffer(b, np.uint8, offset=4 + 4 * nd)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} bytes "
                        f"({again})")  # fmt: skip
    return data.reshape(dims)


_ALIASES = {"mnist": {"mnist"}, "fashion-mnist": {"fashionmnist"}}


def _guard_direct(name: str, found: Found) -> None:
    """--data-dir named a dataset's own folder: make sure it is not another dataset's (MNIST
    and Fashion-MNIST use the same file names)."""
    if found.fmt != "idx":
        return
    folder = found.folder.resolve()
    label = folder.name if folder.name.lower() != "raw" else folder.parent.name
    label = label.lower().replace("-", "").replace("_", "")
    images = found.files[0]
    for other, aliases in _ALIASES.items():
        if other == name:
            continue
        hit = label in aliases
        size = SIZES[other].get(images.name)
        if not hit and size is not None and images.stat().st_size == size:
            hit = _sha256(images) == SHA256[other].get(images.name)
        if hit:
            raise DataError(f"--data-dir {found.folder} holds {other}, not {name}: pass "
                            f"--dataset {other} or the {name} folder")  # fmt: skip


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source(found: Found) -> str:
    return EMBEDDED_SOURCE if found.source == "embedded" else str(found.folder)


def _read_idx_dataset(name: str, split: str, found: Found) -> Dataset:
    xf, yf = found.files
    x, y = read_idx(xf, name), read_idx(yf, name)
    if x.ndim != 3 or y.ndim != 1:
        raise DataError(f"{xf} / {yf}: expected images (N, H, W) and labels (N,), found "
                        f"{x.shape} and {y.shape}")  # fmt: skip
    if len(x) != len(y):
        raise DataError(f"{xf} has {len(x)} images but {yf} has {len(y)} labels")
    imgs = x.reshape(len(x), 1, x.shape[1], x.shape[2]).astype(np.float64) / 255.0
    return Dataset(name, split, imgs, y.astype(np.int64), _source(found), CLASSES[name])


def _read_cifar(split: str, found: Found) -> Dataset:
    if found.fmt == "cifar-bin":
        raw = np.concatenate([np.fromfile(f, np.uint8) for f in found.files])
        if raw.size % 3073:
            raise DataError(f"{found.folder}: CIFAR-10 binary batches have a partial record "
                            "(a file is truncated)")  # fmt: skip
        rec = raw.reshape(-1, 3073)
        x, y = rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0]
    else:
        xs, ys = [], []
        for f in found.files:
            dct = safe_load(f, encoding="bytes")
            if not isinstance(dct, dict) or b"data" not in dct or b"labels" not in dct:
                raise DataError(f"{f} is not a CIFAR-10 python batch (no data/labels entries)")
            try:
                xb = np.asarray(dct[b"data"], np.uint8).reshape(-1, 3072)
                yb = np.asarray(dct[b"labels"], np.int64).reshape(-1)
            except (TypeError, ValueError) as e:
                raise DataError(f"{f}: unexpected CIFAR-10 batch content ({e})") from None
            if len(xb) != len(yb):
                raise DataError(f"{f} has {len(xb)} images but {len(yb)} labels")
            xs.append(xb)
            ys.append(yb)
        x, y = np.concatenate(xs).reshape(-1, 3, 32, 32), np.concatenate(ys)
    return Dataset("cifar10", split, x / 255.0, y.astype(np.int64), _source(found),
                   CLASSES["cifar10"])  # fmt: skip


def _wanted(name: str, split: str) -> str:
    if name == "cifar10":
        bins, pys = cifar_files(split)
        return f"{bins[0]} or {pys[0]}" + (" ..." if len(bins) > 1 else "")
    pre = idx_prefix(split)
    return " and ".join(f"{pre}-{k}[.gz]" for k in IDX_KINDS)


def not_found_message(name: str, split: str, data_dir: str | None) -> str:
    """One line: what was looked for, every place looked in, and how to get it."""
    subs = ", ".join(f"{s}/" for s in SUBDIRS[name])
    places = []
    for src, base in _bases(data_dir):
        label = f"{src} {base}" if src != str(base) else src
        own = "itself and " if src == "--data-dir" else ""
        places.append(f"{label} ({own}{subs})")
    if not os.environ.get("FKD_DATA_DIR"):
        places.insert(1 if data_dir else 0, "$FKD_DATA_DIR (not set)")
    if name in EMBEDDED and split == "test":
        places.append(f"the embedded copy {EMBEDDED_DIR / name} (missing: broken install?)")
    elif split == "train":
        places.append("no embedded copy (the train split is not embedded)")
    else:
        places.append(f"no embedded copy ({name} is not embedded, only the "
                      f"{' and '.join(EMBEDDED)} test sets)")  # fmt: skip
    partial = []
    if name != "cifar10":
        for _, folder, _ in _candidates(name, split, data_dir):
            have = [_first_file(folder, idx_names(split, k)) for k in IDX_KINDS]
            if any(have) and not all(have):
                partial.append(f"{folder} has only {next(p for p in have if p).name}")
    extra = f"; {'; '.join(partial)}" if partial else ""
    return (
        f"{name} {split} set not found ({_wanted(name, split)}); looked in "
        f"{'; '.join(places)}{extra}; get it with `fkdverify data download {name}` (into "
        f"{cache_dir() / name}) or copy the files there by hand, or pass --data-dir"
    )


def load_dataset(name: str, split: str = "test", data_dir: str | None = None) -> Dataset:
    """The first copy of the split in lookup order (see the module docstring). Offline: a
    missing dataset is a DataError that names every place looked in and the download command."""
    name = normalise_name(name)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose test or train")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataError(f"--data-dir {data_dir} is not a directory")
    found = locate(name, split, data_dir)
    if not found:
        raise DataError(not_found_message(name, split, data_dir))
    first = found[0]
    if first.direct:
        _guard_direct(name, first)
    if name == "cifar10":
        return _read_cifar(split, first)
    return _read_idx_dataset(name, split, first)


def listing(data_dir: str | None = None) -> list[dict]:
    """One row per dataset and split, for ``fkdverify data list``::

        {"dataset": "mnist", "split": "test", "status": "found" | "missing",
         "source": "--data-dir" | "$FKD_DATA_DIR" | "cache" | "/usr/share/datasets"
                   | "embedded" | None,          # the copy load_dataset would use
         "path": "/folder/it/reads" | None,
         "found_in": ["cache: /root/.cache/fkdverify/mnist", ...],  # every copy, in order
         "download": "fkdverify data download mnist"}

    Only checks that files exist (reads none)."""
    rows = []
    for name in DATASETS:
        for split in SPLITS:
            found = locate(name, split, data_dir)
            first = found[0] if found else None
            rows.append({
                "dataset": name,
                "split": split,
                "status": "found" if found else "missing",
                "source": first.source if first else None,
                "path": str(first.folder) if first else None,
                "found_in": [f"{f.source}: {f.folder}" for f in found],
                "download": f"fkdverify data download {name}",
            })  # fmt: skip
    return rows


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
    """'3,5,10-20' -> [3, 5, 10, ..., 20]; ValueError (saying what is wrong) when a part is not
    N or N-M, a range runs backwards, or an index comes twice."""
    out: list[int] = []
    for part in str(text).split(","):
        a, _, b = part.strip().partition("-")
        try:
            lo, hi = int(a), int(b) if b else int(a)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not N or N-M (e.g. 3,5,10-20)") from None
        if hi < lo:
            raise ValueError(f"the range {lo}-{hi} runs backwards; write {hi}-{lo}")
        out += range(lo, hi + 1)
    seen: set[int] = set()
    for i in out:
        if i in seen:
            raise ValueError(f"index {i} is given twice")
        seen.add(i)
    return out
