"""MilpRunner: the point's deadline, and a capped share of it within a block."""

import time

import pytest

from fkdverify.milp.run import MilpRunner


def test_capped_shortens_then_restores_the_deadline():
    run = MilpRunner("highs", time.perf_counter() + 100.0)
    own = run.deadline
    with run.capped(0.25):
        assert 20.0 < run.left() <= 25.0
    assert run.deadline == own


def test_capped_never_extends_and_restores_on_error():
    run = MilpRunner("highs", time.perf_counter() + 10.0)
    own = run.deadline
    with pytest.raises(RuntimeError), run.capped(5.0):  # a share above 1 is still the deadline
        assert run.deadline == own
        raise RuntimeError
    assert run.deadline == own
