"""The public Python API (DESIGN.md section 6): what the CLI does, as functions.

import fkdverify as fkd
pair = fkd.load_pair("teacher.onnx", "student.onnx")
rows = fkd.certify_points(pair, xs, labels, fkd.CertifyOptions(eps=0.02))
rows = fkd.certify_dataset("teacher.onnx", "student.onnx", fkd.CertifyOptions(eps=0.1),
                           indices=range(10), out="results.csv")
res = fkd.verify("net.onnx", "prop.vnnlib", fkd.VerifyOptions(method="bab"))
fkd.read_results("results.csv")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .pair.context import PairContext
from .pair.options import CertifyOptions
from .results import Result
from .vnnlib.verify import VerifyOptions, VerifyResult


def load_pair(teacher: str, student: str, mean: str | None = None,
              std: str | None = None) -> PairContext:  # fmt: skip
    """A teacher/student pair from ONNX files, both reading pixel-space input (``mean``/
    ``std``, e.g. "0.49,0.48,0.45", put a normalisation in front; else the files' metadata)."""
    from .pair.runner import RunConfig
    from .pair.runner import load_pair as _load

    cfg = RunConfig(teacher, student, CertifyOptions(eps=0.0), mean=mean, std=std)
    t, s, norms = _load(cfg)
    return PairContext(t, s, teacher, student, norms)


def certify_points(pair: PairContext, xs: Sequence[np.ndarray], classes: Sequence[int],
                   opts: CertifyOptions, indices: Iterable[int] | None = None,
                   boxes=None) -> list[tuple[Result, np.ndarray | None]]:  # fmt: skip
    """Decide points xs (each flat or image-shaped, pixel space) at their classes:
    [(Result, re-checked counterexample or None)] in order. ``boxes`` [(lo, hi)] replace the
    eps-balls."""
    from .pair.certify import certify_batch

    idx = list(range(len(xs))) if indices is None else list(indices)
    return certify_batch(pair, list(xs), list(classes), opts, idx, boxes)


def certify_dataset(teacher: str, student: str, opts: CertifyOptions,
                    indices: Iterable[int] = range(100), dataset: str | None = None,
                    data_dir: str | None = None, out: str | None = None, workers: int = 1,
                    **config) -> list[Result]:  # fmt: skip
    """``fkdverify certify`` as a function: test points of the pair's dataset (from the ONNX
    metadata unless ``dataset`` is given); rows appended to ``out`` when given (resumed when
    it holds some). ``config``: other RunConfig fields (class_mode, points, mean, std)."""
    from .pair.runner import RunConfig, load_data, run
    from .pair.runner import load_pair as _load

    base = RunConfig(teacher, student, opts, dataset=dataset, data_dir=data_dir, **config)
    t, s, _ = _load(base)
    ds = load_data(base, t, s)
    cfg = RunConfig(teacher, student, opts, dataset=ds.name, data_dir=data_dir,
                    indices=tuple(indices), out=out, workers=workers, **config)  # fmt: skip
    return run(cfg, ds, t)


def verify(net: str, spec, opts: VerifyOptions | None = None) -> VerifyResult:
    """``fkdverify verify``: one ONNX network against a VNN-LIB file (path) or a Spec."""
    from .net.onnx_import import import_onnx
    from .net.vnnlib import Spec, read_vnnlib
    from .vnnlib.verify import verify as _verify

    s = spec if isinstance(spec, Spec) else read_vnnlib(str(spec))
    return _verify(import_onnx(net), net, s, opts or VerifyOptions())


def train(opts):
    """``fkdverify train``: a teacher or student from ``TrainOptions``; returns TrainResult."""
    from .train.trainer import train as _train

    return _train(opts)


def read_results(path: str) -> list[Result]:
    """The rows of a certify results CSV."""
    from .results import read_results as _read

    return _read(path)
