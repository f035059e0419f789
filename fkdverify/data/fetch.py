"""Downloading the full datasets (train + test), each file checked against its published
sha256 before it lands. Used by ``fkdverify data download``; load_dataset never downloads.

* Files go to ``dest`` or ``<cache>/<name>/`` (cache: $FKD_CACHE_DIR, else ~/.cache/fkdverify),
  where the lookup finds them.
* Each file is streamed into a temporary file next to its destination and renamed only when
  its sha256 matches: a corrupt or partial download never lands.
* Files already present with the right sha256 are not fetched again.
* Mirrors (catalog.MIRRORS) are tried in order; $FKD_MIRROR_<NAME> (comma-separated base URLs)
  or $FKD_MIRROR (a base URL holding <name>/<file>) replace them.
* CIFAR-10 comes as one tar; only its regular files under cifar-10-batches-bin/ are extracted
  (no links, no absolute paths, no '..'), each checked against its own sha256."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ..errors import DataError
from .catalog import CIFAR_MEMBERS, CIFAR_TAR, CIFAR_TAR_DIR, MIRRORS, SHA256, SIZES
from .loaders import _sha256, cache_dir, normalise_name

TIMEOUT_S = 60.0  # per connection attempt and per read; $FKD_DOWNLOAD_TIMEOUT overrides
CHUNK = 1 << 20
Progress = Callable[[str, int, "int | None"], None]


def mirrors(name: str) -> list[str]:
    """Base URLs tried for ``name``, in order (environment overrides first)."""
    name = normalise_name(name)
    env = os.environ.get("FKD_MIRROR_" + name.upper().replace("-", "_"))
    if env:
        return [u.strip() for u in env.split(",") if u.strip()]
    if os.environ.get("FKD_MIRROR"):
        return [os.environ["FKD_MIRROR"].rstrip("/") + f"/{name}/"]
    return list(MIRRORS[name])


def download(name: str, dest: str | None = None, progress: Progress | None = None) -> Path:
    """Fetch the full dataset ``name`` (train + test) into ``dest`` (default
    ``<cache>/<name>/``) and return the folder that holds its files, usable as --data-dir
    (for CIFAR-10 ``<dest>/cifar-10-batches-bin``).

    ``progress(file_name, bytes_done, bytes_total_or_None)`` is called while a file
    downloads. Raises a one-line DataError when a file cannot be fetched from any mirror or
    its sha256 does not match (then nothing is written for that file)."""
    name = normalise_name(name)
    folder = Path(dest).expanduser() if dest else cache_dir() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {folder} for the {name} download ({_reason(e)})") from None
    if name == "cifar10":
        return _download_cifar(folder, progress)
    for fname, want in SHA256[name].items():
        target = folder / fname
        if target.is_file() and _sha256(target) == want:
            continue
        _fetch(name, fname, folder, want, progress, keep=target)
    return folder


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        text = f"HTTP {e.code} {e.reason}"
    elif isinstance(e, urllib.error.URLError):
        text = str(e.reason)
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def _timeout() -> float:
    try:
        return float(os.environ.get("FKD_DOWNLOAD_TIMEOUT", TIMEOUT_S))
    except ValueError:
        return TIMEOUT_S


class _TooLarge(Exception):
    pass


def _stream(url: str, out, cap: int | None, fname: str, progress) -> str:
    """Write the body of ``url`` to the open file ``out``; return its sha256."""
    req = urllib.request.Request(url, headers={"User-Agent": "fkdverify"})
    h = hashlib.sha256()
    with urllib.request.urlopen(req, timeout=_timeout()) as resp:
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if cap is not None and total is not None and total > cap:
            raise _TooLarge(f"it is {total} bytes, more than the expected {cap} bytes")
        done = 0
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            done += len(chunk)
            if cap is not None and done > cap:
                raise _TooLarge(f"it is more than the expected {cap} bytes")
            h.update(chunk)
            out.write(chunk)
            if progress:
                progress(fname, done, total)
    return h.hexdigest()


def _fetch(name: str, fname: str, folder: Path, want: str, progress, keep: Path) -> None:
    """Download ``fname`` from the first mirror that serves it with sha256 ``want`` and move
    it to ``keep``; nothing lands otherwise."""
    errors = []
    cap = SIZES.get(name, {}).get(fname)
    for base in mirrors(name):
        url = base if base.endswith(fname) else base.rstrip("/") + "/" + fname
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                got = _stream(url, out, cap, fname, progress)
            if got == want:
                os.replace(tmp, keep)
                return
            errors.append(f"{url} refused: its sha256 is {got}, expected {want} (corrupt or "
                          "partial download, not saved)")  # fmt: skip
        except _TooLarge as e:
            errors.append(f"{url} refused: {e}")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            errors.append(f"{url}: {_reason(e)}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(f"could not download {name} {fname}: {'; '.join(errors)}; copy the files "
                    f"into {folder} by hand or pass --data-dir")  # fmt: skip


def _cifar_ok(bins: Path) -> bool:
    return all((bins / f).is_file() and _sha256(bins / f) == d for f, d in CIFAR_MEMBERS.items())


def _download_cifar(folder: Path, progress) -> Path:
    bins = folder / CIFAR_TAR_DIR
    if _cifar_ok(bins):
        return bins
    want = SHA256["cifar10"][CIFAR_TAR]
    tar = folder / CIFAR_TAR
    by_hand = tar.is_file() and _sha256(tar) == want  # a tar put there by hand is used
    work = Path(tempfile.mkdtemp(dir=folder, prefix=".cifar10-"))
    try:
        if not by_hand:
            tar = work / CIFAR_TAR
            _fetch("cifar10", CIFAR_TAR, folder, want, progress, keep=tar)
        members = _extract(tar, work / "x")
        for f, d in CIFAR_MEMBERS.items():
            if f not in members:
                raise DataError(f"{CIFAR_TAR} has no {CIFAR_TAR_DIR}/{f}")
            got = _sha256(members[f])
            if got != d:
                raise DataError(f"{CIFAR_TAR_DIR}/{f} from {CIFAR_TAR} refused: its sha256 is "
                                f"{got}, expected {d}")  # fmt: skip
        bins.mkdir(parents=True, exist_ok=True)
        for f, p in members.items():
            os.replace(p, bins / f)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bins


def _extract(tar: Path, into: Path) -> dict[str, Path]:
    """The regular files directly under cifar-10-batches-bin/ of ``tar``, written to ``into``
    (by base name). Links, devices, absolute paths and '..' are never written."""
    into.mkdir(parents=True)
    out: dict[str, Path] = {}
    try:
        with tarfile.open(tar, "r:gz") as tf:
            for m in tf:
                p = PurePosixPath(m.name)
                if m.name.startswith(("/", "\\")) or ".." in p.parts or ":" in m.name:
                    raise DataError(f"{tar}: refused member {m.name!r} (absolute path or '..')")
                if not m.isfile():
                    continue  # directories, links, devices: never extracted
                if len(p.parts) != 2 or p.parts[0] != CIFAR_TAR_DIR:
                    continue
                src = tf.extractfile(m)
                if src is None:
                    continue
                dst = into / p.name
                with src, open(dst, "wb") as fh:
                    shutil.copyfileobj(src, fh, CHUNK)
                out[p.name] = dst
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"{tar} cannot be extracted ({_reason(e)})") from None
    return out
