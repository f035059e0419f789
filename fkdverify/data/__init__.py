"""Datasets in their standard formats: MNIST / Fashion-MNIST (IDX .gz or raw), CIFAR-10
(binary batches or python pickles, read without running code). Images come back as float64
in [0, 1], shape (N, C, H, W).

Lookup order (DESIGN.md section 5): --data-dir, $FKD_DATA_DIR, the user cache
($FKD_CACHE_DIR, default ~/.cache/fkdverify), /usr/share/datasets, then the MNIST and
Fashion-MNIST test sets embedded in this package. load_dataset never downloads;
``load_or_download`` (what certify and train use) fetches a set found nowhere once into the
cache; ``download``
(``fkdverify data download NAME``) fetches the full sets with sha256 checks, ``listing``
(``fkdverify data list``) says what is where."""

from ..errors import DataError, InputError
from .catalog import CLASSES, DATASETS, SPLITS
from .catalog import SUBDIRS as _SUBDIRS
from .fetch import download, mirrors
from .first_use import load_or_download
from .loaders import (
    EMBEDDED_SOURCE,
    Dataset,
    Found,
    cache_dir,
    infer_dataset,
    listing,
    load_dataset,
    locate,
    normalise_name,
    parse_indices,
    read_idx,
    search_dirs,
)
from .safe_pickle import RestrictedUnpickler, safe_load

__all__ = [
    "load_or_download",
    "CLASSES",
    "DATASETS",
    "EMBEDDED_SOURCE",
    "SPLITS",
    "DataError",
    "Dataset",
    "Found",
    "InputError",
    "RestrictedUnpickler",
    "_SUBDIRS",
    "cache_dir",
    "download",
    "infer_dataset",
    "listing",
    "load_dataset",
    "locate",
    "mirrors",
    "normalise_name",
    "parse_indices",
    "read_idx",
    "safe_load",
    "search_dirs",
]
