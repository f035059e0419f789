"""Input normalisation in front of a network whose ONNX file expects normalised input, so that
inputs, boxes and epsilon stay in pixel space [0, 1]: x_net = (x - mean) / std per channel."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from .graph import Network, Node, Scale
from .simplify import fold_affine


def parse_floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """'0.485,0.456,0.406' -> floats; None stays None."""
    if text is None or str(text).strip() == "":
        return None
    try:
        return tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise InputError(
            f"{what} {text!r}: expected comma-separated numbers, e.g. 0.5,0.5,0.5"
        ) from None


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std (one value each, or one per input channel)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        if any(not s > 0 for s in self.std):
            raise InputError(f"--std must be positive, got {','.join(map(str, self.std))}")

    @classmethod
    def from_options(cls, mean, std, meta: dict | None = None) -> Normalisation | None:
        """From --mean/--std text, else the ONNX metadata keys ``mean``/``std``, else None."""
        meta = meta or {}
        m = parse_floats(mean, "--mean") or parse_floats(meta.get("mean"), "metadata mean")
        s = parse_floats(std, "--std") or parse_floats(meta.get("std"), "metadata std")
        if m is None and s is None:
            return None
        return cls(m or (0.0,), s or (1.0,))

    def per_value(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Flat (mul, add) arrays for an input of ``shape`` (channels first after any 1s)."""
        size = int(np.prod(shape))
        dims = [d for d in shape if d != 1] or [1]
        channels = dims[0] if len(dims) >= 3 else 1
        n = max(len(self.mean), len(self.std))
        if n != 1 and n != channels:
            raise InputError(
                f"--mean/--std give {n} values but the input {shape} has {channels} channel(s); "
                "give one value or one per channel"
            )
        mean = np.broadcast_to(np.asarray(self.mean, np.float64), (n,))
        std = np.broadcast_to(np.asarray(self.std, np.float64), (n,))
        reps = size // n
        return np.repeat(1.0 / std, reps), np.repeat(-mean / std, reps)

    def apply(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        mul, add = self.per_value(shape)
        return np.asarray(x, np.float64).reshape(-1) * mul + add


def with_normalisation(net: Network, norm: Normalisation | None) -> Network:
    """The network that reads pixel-space input: a Scale node in front, folded where exact."""
    if norm is None:
        return net
    mul, add = norm.per_value(net.input_shape)
    nodes = [Node(Scale(mul, add), (0,), net.input_shape, "input/normalise")]
    for n in net.nodes:
        nodes.append(replace(n, inputs=tuple(v + 1 for v in n.inputs)))
    note = f"input normalised: mean {norm.mean}, std {norm.std}"
    out = replace(net, nodes=tuple(nodes), output=net.output + 1, notes=(*net.notes, note))
    return fold_affine(out)


def load_normalised(path: str, mean=None, std=None) -> tuple[Network, Normalisation | None]:
    """The network of an ONNX file reading pixel-space input, and the normalisation put in
    front of it (--mean/--std text, else the file's metadata ``mean``/``std``, else none)."""
    from .onnx_import import import_onnx

    net = import_onnx(path)
    norm = Normalisation.from_options(mean, std, net.meta)
    return with_normalisation(net, norm), norm
