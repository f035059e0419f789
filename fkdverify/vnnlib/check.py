"""Re-check of a VNN-LIB counterexample (DESIGN.md section 2, rule 2): onnxruntime on the
original file and the imported network in float64 must both put the float32 input inside the
box and the output inside the unsafe region exactly."""

from __future__ import annotations

import numpy as np
import torch

from ..net.graph import Network
from ..net.runtime import OnnxSession
from ..net.torch_net import TorchNet
from ..net.vnnlib import Spec


class Checker:
    """Re-checks candidates on the original ONNX file (onnxruntime) and in float64."""

    def __init__(self, path: str, net: Network, spec: Spec):
        self.path, self.shape = path, net.input_shape
        self._session: OnnxSession | None = None  # opened at the first candidate
        self.net64 = TorchNet(net)
        self.spec = spec

    @property
    def session(self) -> OnnxSession:
        if self._session is None:
            self._session = OnnxSession(self.path, self.shape)
        return self._session

    def inside(self, x: np.ndarray) -> np.ndarray:
        """x as float32 values inside the box (a rounded value that lands outside is moved one
        float32 step inward)."""
        lo, hi = self.spec.lo, self.spec.hi
        x32 = np.clip(x, lo, hi).astype(np.float32)
        up, down = x32 > hi, x32 < lo
        x32[up] = np.nextafter(x32[up], np.float32(-np.inf))
        x32[down] = np.nextafter(x32[down], np.float32(np.inf))
        return x32

    def outputs(self, x32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = self.session(x32)
        with torch.no_grad():
            y64 = self.net64(torch.as_tensor(x32, dtype=torch.float64)[None])[0].numpy()
        return y, y64

    def confirm(self, x: np.ndarray):
        """(x32, y) when x is a counterexample on both evaluation paths, else None."""
        x32 = self.inside(x)
        if np.any(x32 < self.spec.lo) or np.any(x32 > self.spec.hi):
            return None
        y, y64 = self.outputs(x32)
        if self.spec.holds_at(y) is None or self.spec.holds_at(y64) is None:
            return None
        return x32, y
