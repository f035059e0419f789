"""One onnxruntime session per ONNX file, the independent evaluation path of every re-check
(DESIGN.md section 2, rule 2): the file exactly as written, single-threaded on the CPU."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError


class OnnxSession:
    """Runs the original file on flat inputs, in the input type the file declares."""

    def __init__(self, path: str, shape: tuple[int, ...]):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"onnxruntime cannot run {path}: {first}") from None
        inp = self.session.get_inputs()[0]
        self.name = inp.name
        self.dtype = np.float64 if "double" in inp.type else np.float32
        self.shape = tuple(shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Flat float64 outputs at the flat input ``x`` (cast to the file's input type)."""
        feed = {self.name: np.asarray(x).reshape(self.shape).astype(self.dtype)}
        return self.session.run(None, feed)[0].reshape(-1).astype(np.float64)
