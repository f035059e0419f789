"""merge: the only writer of a point's state (bounds only tighten, witnesses only rise, the
soundness rules of DESIGN.md section 2 raise)."""

import numpy as np
import pytest

from fkdverify.errors import SoundnessError
from fkdverify.pair.state import Finding, PointState, Question, merge, merge_all

Q = Question(3, np.zeros(2), np.zeros(2), np.ones(2), 0)


def test_bounds_tighten_and_witnesses_rise():
    st = merge_all(Q, PointState(), [
        Finding(gap_hi=0.5, gap_method="a", pair_ub=np.array([1.0, 2.0])),
        Finding(gap_hi=0.7, gap_method="b", pair_ub=np.array([3.0, 0.5])),
        Finding(gap_lo=0.1, gap_x=np.ones(2)),
        Finding(gap_lo=0.05, gap_x=np.zeros(2)),
        Finding(times=(("milp", 1.5), ("bounds", 0.25))),
        Finding(times=(("milp", 0.5),), notes=("x", "x"), unstable=(("ibp", 7),)),
    ])  # fmt: skip
    assert (st.gap_hi, st.gap_method) == (0.5, "a")
    assert np.array_equal(st.pair_ub, [1.0, 0.5])
    assert st.gap_lo == 0.1 and np.array_equal(st.gap_x, np.ones(2))
    assert st.times == {"attack": 0.0, "bounds": 0.25, "milp": 2.0} and st.spent() == 2.25
    assert st.unstable == {"ibp": 7}


def test_a_state_is_never_changed_in_place():
    st = PointState()
    new = merge(Q, st, Finding(agreement="agree", gap_hi=0.2))
    assert st.agreement == "unknown" and np.isnan(st.gap_hi) and new.agreement == "agree"


def test_proof_against_counterexample_raises():
    st = merge(Q, PointState(), Finding(how="attack", agreement="disagree", cex=np.ones(2)))
    with pytest.raises(SoundnessError, match="point 3: bounds says agree"):
        merge(Q, st, Finding(how="bounds", agreement="agree"))
    st = merge(Q, PointState(), Finding(agreement="agree"))
    with pytest.raises(SoundnessError):
        merge(Q, st, Finding(agreement="disagree", cex=np.ones(2)))


def test_gap_lower_above_upper_raises():
    st = merge(Q, PointState(), Finding(gap_hi=0.2))
    with pytest.raises(SoundnessError, match="gap lower 0.3 > upper 0.2"):
        merge(Q, st, Finding(gap_lo=0.3, gap_x=np.ones(2)))
