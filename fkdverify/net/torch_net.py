"""A torch ``nn.Module`` built from a canonical :class:`Network` (attacks, bounds, training).

Values travel as flat tensors of shape (B, size); conv layers reshape to (B, C, H, W).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .graph import Add, Concat, Conv, Linear, Network, Permute, Relu, Reshape, Scale, chw


class TorchNet(torch.nn.Module):
    """Evaluates ``net`` on flat inputs (B, input_size) -> flat outputs (B, n_out)."""

    def __init__(self, net: Network, dtype: torch.dtype = torch.float64, device: str = "cpu"):
        super().__init__()
        self.net = net
        self.params = torch.nn.ParameterList()
        self._index: list[tuple[int, ...]] = []
        for node in net.nodes:
            idx: tuple[int, ...] = ()
            lay = node.layer
            arrays = []
            if isinstance(lay, Linear | Conv):
                arrays = [lay.weight, lay.bias]
            elif isinstance(lay, Scale):
                arrays = [lay.mul, lay.add]
            for a in arrays:
                self.params.append(
                    torch.nn.Parameter(
                        torch.as_tensor(np.asarray(a), dtype=dtype, device=device),
                        requires_grad=False,
                    )
                )
                idx += (len(self.params) - 1,)
            self._index.append(idx)

    def p(self, i: int, k: int) -> torch.Tensor:
        return self.params[self._index[i][k]]

    def forward(self, x: torch.Tensor, all_values: bool = False):
        vals = [x.reshape(x.shape[0], -1)]
        for i, node in enumerate(self.net.nodes):
            vals.append(self.apply_node(i, [vals[v] for v in node.inputs]))
        return vals if all_values else vals[self.net.output]

    def apply_node(self, i: int, ins: list[torch.Tensor]) -> torch.Tensor:
        node = self.net.nodes[i]
        lay = node.layer
        x = ins[0]
        if isinstance(lay, Linear):
            return x @ self.p(i, 0).T + self.p(i, 1)
        if isinstance(lay, Conv):
            c, h, w = chw(self.net.shape_of(node.inputs[0]))
            y = F.conv2d(
                x.reshape(-1, c, h, w),
                self.p(i, 0),
                self.p(i, 1),
                lay.stride,
                lay.padding,
                lay.dilation,
                lay.groups,
            )
            return y.reshape(x.shape[0], -1)
        if isinstance(lay, Scale):
            return x * self.p(i, 0) + self.p(i, 1)
        if isinstance(lay, Relu):
            return torch.relu(x)
        if isinstance(lay, Reshape):
            return x
        if isinstance(lay, Permute):
            shp = self.net.shape_of(node.inputs[0])
            return (
                x.reshape(-1, *shp).permute(0, *(p + 1 for p in lay.perm)).reshape(x.shape[0], -1)
            )
        if isinstance(lay, Add):
            return ins[0] + ins[1]
        if isinstance(lay, Concat):
            return torch.cat(ins, dim=1)
        raise TypeError(f"unknown layer {lay!r}")


def evaluate(net: Network, x: np.ndarray) -> np.ndarray:
    """Float64 outputs (B, n_out) for inputs x of shape (B, ...) or a single sample."""
    xs = np.asarray(x, dtype=np.float64).reshape(-1, net.input_size)
    with torch.no_grad():
        return TorchNet(net)(torch.from_numpy(xs)).numpy()
