"""The certify runner's batching (``RunConfig.batch_size``)."""

from fkdverify import defaults as D
from fkdverify.pair import CertifyOptions
from fkdverify.pair.runner import RunConfig


def config(method, workers=1, batch=0):
    return RunConfig("t.onnx", "s.onnx", CertifyOptions(eps=0.1, method=method),
                     workers=workers, batch=batch)  # fmt: skip


def test_milp_methods_batch_a_few_points_bound_methods_many():
    for m in ("milp", "milp+bab"):
        assert config(m).batch_size(1000) == D.BATCH_MILP == 8
        assert config(m, workers=2).batch_size(10) == 5  # both workers get points
    assert config("alpha-crown").batch_size(1000) == D.BATCH_BOUNDS
    assert config("alpha-crown", workers=2).batch_size(30) == 15
    assert config("milp", batch=3).batch_size(1000) == 3  # --batch-size wins
    assert config("milp").batch_size(1) == 1


def test_zero_workers_is_one_per_core_and_a_negative_count_is_refused():
    import pytest

    from fkdverify.errors import InputError
    from fkdverify.threads import cores

    assert config("milp", workers=0).n_workers == cores()
    assert config("alpha-crown", workers=0).batch_size(30) == -(-30 // cores())
    with pytest.raises(InputError, match="--workers"):
        config("milp", workers=-1)
