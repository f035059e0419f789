"""Reading CIFAR-10 python batches without running code from them.

A pickle can call any importable function while it loads (``os.system`` through
``__reduce__``). The CIFAR-10 batches need only numpy's array reconstruction, so the unpickler
below resolves exactly those globals and refuses every other one with a one-line DataError."""

from __future__ import annotations

import io
import pickle

from ..errors import DataError


def _numpy_globals() -> dict[tuple[str, str], object]:
    import codecs

    import numpy as np

    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric

    out: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # bytes in protocol-2 pickles written by Python 3: _codecs.encode(text, "latin1")
        ("_codecs", "encode"): codecs.encode,
    }
    # the official batches (Python 2, numpy 1) name numpy.core; numpy 2 writes numpy._core.
    # Resolved here without importing numpy.core (deprecated under numpy 2).
    for mod in ("numpy.core", "numpy._core"):
        out[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # protocol 5 (in-band buffers)
        out[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return out


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals a CIFAR-10 batch needs."""

    _allowed: dict[tuple[str, str], object] | None = None

    def find_class(self, module: str, name: str):
        if RestrictedUnpickler._allowed is None:
            RestrictedUnpickler._allowed = _numpy_globals()
        obj = RestrictedUnpickler._allowed.get((module, name))
        if obj is None:
            raise DataError(
                f"{getattr(self, 'path', 'pickle')}: refused to load global {module}.{name} "
                "(a CIFAR-10 batch holds only numpy arrays, lists and bytes; this file may run "
                "code: do not use it)"
            )
        return obj


def safe_load(path, encoding: str = "bytes"):
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler` (never runs its code)."""
    with open(path, "rb") as fh:
        data = fh.read()
    u = RestrictedUnpickler(io.BytesIO(data), encoding=encoding)
    u.path = str(path)
    try:
        return u.load()
    except DataError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        msg = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path} is not a readable CIFAR-10 python batch ({msg})") from None
