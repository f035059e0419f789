"""Training: architectures, losses, adversaries, the trainer and ONNX export (DESIGN.md §4)."""
