"""Each loss on tiny inputs against a value computed by hand (natural logs)."""

import math

import pytest
import torch

from fkdverify.train import losses as L

LN3 = math.log(3.0)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


Y0 = torch.tensor([0])


def test_kl_by_hand():
    # p = (1/2, 1/2), q = softmax(ln 3, 0) = (3/4, 1/4): 1/2 ln(2/3) + 1/2 ln 2
    assert L.kl(t([0.0, 0.0]), t([LN3, 0.0])).item() == pytest.approx(0.143841, abs=1e-6)


def test_kd_by_hand():
    # alpha T^2 KL + (1 - alpha) CE, T = 1, alpha = 1/2: (0.143841 + (-ln 3/4)) / 2
    v = L.kd_loss(t([LN3, 0.0]), t([0.0, 0.0]), Y0, temperature=1.0, alpha=0.5)
    assert v.item() == pytest.approx(0.5 * 0.143841 + 0.5 * 0.287682, abs=1e-6)


def test_ard_by_hand():
    # T = 2: q = softmax(ln3/2, 0) = (sqrt3, 1)/(sqrt3 + 1); T^2 KL(p || q)
    s3 = math.sqrt(3)
    q = (s3 / (s3 + 1), 1 / (s3 + 1))
    want = 4 * (0.5 * math.log(0.5 / q[0]) + 0.5 * math.log(0.5 / q[1]))
    v = L.ard_loss(t([LN3, 0.0]), t([0.0, 0.0]), t([0.0, 0.0]), Y0, temperature=2.0, alpha=1.0)
    assert v.item() == pytest.approx(want, abs=1e-9)
    assert want == pytest.approx(0.149009, abs=1e-6)


def test_rslad_by_hand():
    # 5/6 KL(T(x) || S(x_adv)) + 1/6 KL(T(x) || S(x)), the clean student equal to the teacher
    v = L.rslad_loss(t([LN3, 0.0]), t([0.0, 0.0]), t([0.0, 0.0]))
    assert v.item() == pytest.approx(5 / 6 * 0.143841, abs=1e-6)


def test_iad_by_hand():
    # a = p_T(x_adv)_y ** beta = 0.5; KL(T(x) || S(x_adv)) + (1 - a) KL(S(x) || S(x_adv))
    v = L.iad_loss(t([LN3, 0.0]), t([0.0, 0.0]), t([0.0, 0.0]), torch.tensor([0.5]), beta=1.0)
    assert v.item() == pytest.approx(0.143841 + 0.5 * 0.143841, abs=1e-6)


def test_confidence_gap_by_hand():
    assert L.confidence_gap(t([LN3, 0.0]), t([0.0, 0.0]), Y0).item() == pytest.approx(0.25)


def test_faithful_by_hand():
    # KD part: student = teacher on x, so 0.9 * 16 * 0 + 0.1 * ln 2; match: KL((3/4, 1/4) ||
    # (1/2, 1/2)) = 3/4 ln 3/2 + 1/4 ln 1/2; hinge: g(x_g) - delta = 0.25 - 0.05
    match = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    v = L.faithful_loss(t([0.0, 0.0]), t([0.0, 0.0]), Y0, t([0.0, 0.0]), t([LN3, 0.0]),
                        delta=0.05)  # fmt: skip
    assert v.item() == pytest.approx(0.1 * math.log(2) + match + 0.2, abs=1e-6)
    # the bound term adds bound * max(0, gap_hi - delta)
    w = L.faithful_loss(t([0.0, 0.0]), t([0.0, 0.0]), Y0, t([0.0, 0.0]), t([LN3, 0.0]),
                        delta=0.05, gap_hi=torch.tensor([0.45]), bound=0.5)  # fmt: skip
    assert (w - v).item() == pytest.approx(0.2, abs=1e-6)


def test_certified_by_hand():
    # kappa CE((0, 0), 0) + (1 - kappa) CE((0, ln 3), 0) = 0.5 ln 2 + 0.5 ln 4
    v = L.certified_loss(t([0.0, 0.0]), t([0.0, LN3]), Y0, kappa=0.5)
    assert v.item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(4), abs=1e-9)


def test_certified_kd_by_hand():
    # kappa KD + (1 - kappa) CE((0, ln 3), 0) = 0.5 * 0.7 + 0.5 ln 4
    v = L.certified_kd_loss(torch.tensor(0.7, dtype=torch.float64), t([0.0, LN3]), Y0, kappa=0.5)
    assert v.item() == pytest.approx(0.5 * 0.7 + 0.5 * math.log(4), abs=1e-9)


def test_mtl_ibp_by_hand():
    # (1 - a) CE((ln 3, 0), 0) + a CE((0, ln 3), 0), a = 1/4: 3/4 ln(4/3) + 1/4 ln 4
    v = L.mtl_ibp_loss(t([LN3, 0.0]), t([0.0, LN3]), Y0, ibp_weight=0.25)
    assert v.item() == pytest.approx(0.75 * math.log(4 / 3) + 0.25 * math.log(4), abs=1e-9)
