"""Network representation, ONNX import, evaluation and the product network."""
