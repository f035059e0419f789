"""Automatic download on first use: a dataset found nowhere is fetched once into the cache
(sha256-checked, with a progress bar on stderr), then read from there. ``FKD_NO_DOWNLOAD=1``
turns it off; a failed download becomes the not-found error, with its reason."""

from __future__ import annotations

import os
import sys

from ..errors import DataError
from .fetch import download
from .loaders import Dataset, load_dataset, locate, normalise_name, not_found_message


def _bar():
    """A progress callback: one tqdm bar per file on stderr."""
    from tqdm import tqdm

    bars: dict = {}

    def progress(file, done, total):
        if file not in bars:
            bars[file] = tqdm(total=total, desc=f"downloading {file}", unit="B",
                              unit_scale=True, file=sys.stderr, leave=False)  # fmt: skip
        bars[file].update(done - bars[file].n)

    return progress, bars


def load_or_download(name: str, split: str = "test", data_dir: str | None = None,
                     progress=None) -> Dataset:  # fmt: skip
    """``load_dataset``, downloading the full set into the cache first when no copy of the
    split exists anywhere (and downloads are not turned off)."""
    name = normalise_name(name)
    if locate(name, split, data_dir) or os.environ.get("FKD_NO_DOWNLOAD"):
        return load_dataset(name, split, data_dir)
    bars: dict = {}
    if progress is None:
        progress, bars = _bar()
    print(f"fkdverify: {name} {split} set not found; downloading it once into the cache "
          "(FKD_NO_DOWNLOAD=1 turns this off)", file=sys.stderr)  # fmt: skip
    try:
        download(name, None, progress)
    except DataError as e:
        raise DataError(f"{not_found_message(name, split, data_dir)} (automatic download "
                        f"failed: {e})") from None  # fmt: skip
    finally:
        for b in bars.values():
            b.close()
    return load_dataset(name, split, data_dir)
