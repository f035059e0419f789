"""Independent re-evaluation of candidate points on the *original* ONNX files (DESIGN.md
section 2, rule 2): onnxruntime on the files as written, and the imported network in float64.
A candidate counts only if it lies in the box and both paths agree on what it shows."""

from __future__ import annotations

import numpy as np
import torch

from ..net.graph import Network
from ..net.runtime import OnnxSession
from ..net.torch_net import TorchNet
from .attack import gap_value
from .state import Finding, Question

BOX_TOL = 1e-9  # candidates are clipped into the box first; this only absorbs rounding
ARGMAX_GAP = 1e-6  # a top-1 within this of the runner-up is a tie: no verdict from it
VALUE_TOL = 1e-4  # the two evaluation paths must agree on a probability this closely


def _strict_argmax(z: np.ndarray) -> int | None:
    o = np.argsort(z)[::-1]
    return int(o[0]) if z[o[0]] - z[o[1]] > ARGMAX_GAP * max(1.0, abs(z[o[0]])) else None


class Referee:
    """Holds the onnxruntime sessions of both files (a lifetime: one per worker)."""

    def __init__(self, teacher_path: str, student_path: str, teacher: Network, student: Network,
                 norms: tuple = (None, None)):  # fmt: skip
        """``norms``: each file's input normalisation (``net/normalise.py``) or None; the
        networks given already include it, the files do not."""
        self.sessions = [OnnxSession(teacher_path, teacher.input_shape),
                         OnnxSession(student_path, student.input_shape)]  # fmt: skip
        self.norms = norms
        self.shapes = [teacher.input_shape, student.input_shape]
        self.nets = [TorchNet(teacher), TorchNet(student)]

    def logits(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(float64 logits, onnxruntime logits)] for teacher and student at flat input x."""
        out = []
        parts = zip(self.sessions, self.shapes, self.nets, self.norms, strict=True)
        for session, shape, net, norm in parts:
            zo = session(x if norm is None else norm.apply(x, shape))
            with torch.no_grad():
                z64 = net(torch.as_tensor(x, dtype=torch.float64)[None])[0].numpy()
            out.append((z64, zo))
        return out

    @staticmethod
    def in_box(x, lo, hi) -> bool:
        return bool(np.all(x >= lo - BOX_TOL) and np.all(x <= hi + BOX_TOL))

    def disagreement(self, x, lo, hi) -> tuple[int, int] | None:
        """(teacher class, student class) if x is a confirmed disagreement, else None."""
        x = np.clip(x, lo, hi)
        if not self.in_box(x, lo, hi):
            return None
        (t64, tor), (s64, sor) = self.logits(x)
        picks = [_strict_argmax(z) for z in (t64, tor, s64, sor)]
        if None in picks or picks[0] != picks[1] or picks[2] != picks[3]:
            return None
        return (picks[0], picks[2]) if picks[0] != picks[2] else None

    def gap(self, x, lo, hi, c: int, sign: str) -> float | None:
        """g at x (float64 path) if x is in the box and onnxruntime agrees, else None."""
        x = np.clip(x, lo, hi)
        if not self.in_box(x, lo, hi):
            return None
        (t64, tor), (s64, sor) = self.logits(x)
        g = [
            float(gap_value(torch.as_tensor(a)[None], torch.as_tensor(b)[None], c, sign)[0])
            for a, b in ((t64, s64), (tor, sor))
        ]
        return g[0] if abs(g[0] - g[1]) <= VALUE_TOL else None

    def strict_pick(self, x, teacher: bool) -> int | None:
        """One network's strict argmax at x if both evaluation paths agree on it, else None."""
        z64, zo = self.logits(np.asarray(x, np.float64))[0 if teacher else 1]
        a, b = _strict_argmax(z64), _strict_argmax(zo)
        return a if a is not None and a == b else None

    def predictions(self, x) -> tuple[int, int]:
        (t64, _), (s64, _) = self.logits(np.asarray(x, np.float64))
        return int(np.argmax(t64)), int(np.argmax(s64))


def gap_witness(referee: Referee, q: Question, x: np.ndarray, sign: str, how: str) -> Finding:
    """Delta_lo >= g(x) when the referee confirms x (in the box, both paths agree)."""
    g = referee.gap(x, q.clo, q.chi, q.cls, sign)
    if g is None:
        return Finding(how=how)
    return Finding(how=how, gap_lo=g, gap_x=np.clip(x, q.clo, q.chi))
