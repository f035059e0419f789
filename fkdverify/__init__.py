"""fkdverify: is a knowledge-distilled student faithful to its teacher around real data?

The public API (``api.py``), imported on first use so that ``fkdverify --help`` stays fast:
``load_pair``, ``certify_points``, ``certify_dataset``, ``verify``, ``train``,
``read_results``, ``load_dataset`` and the option and result types."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "CertifyOptions",
    "PairContext",
    "Result",
    "SpecResult",
    "TrainOptions",
    "Verdict",
    "VerifyOptions",
    "VerifyResult",
    "certify_dataset",
    "certify_points",
    "load_dataset",
    "load_pair",
    "read_results",
    "train",
    "verify",
]

_WHERE = {
    "TrainOptions": "fkdverify.train.trainer",
    "Verdict": "fkdverify.words",
    "SpecResult": "fkdverify.words",
    "load_dataset": "fkdverify.data",
}


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'fkdverify' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_WHERE.get(name, "fkdverify.api"))
    value = getattr(module, name)
    globals()[name] = value
    return value
