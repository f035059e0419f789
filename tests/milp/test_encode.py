"""The MILP encoding's convolution matrix against torch's conv2d (strides, padding, dilation,
groups, zero weights), and its reuse across models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fkdverify.milp.encode import conv_as_matrix, conv_matrix
from fkdverify.net.graph import Conv

CASES = [  # (C, H, W), (C_out, kh, kw), stride, padding, dilation, groups
    ((1, 5, 5), (2, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    ((3, 8, 7), (4, 4, 3), (2, 1), (1, 2), (1, 1), 1),
    ((4, 9, 9), (6, 3, 3), (2, 2), (1, 1), (2, 1), 2),
    ((2, 6, 6), (2, 2, 2), (1, 3), (0, 1), (1, 2), 2),
    ((3, 4, 4), (5, 1, 1), (1, 1), (0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("shape,kern,stride,padding,dilation,groups", CASES)
def test_conv_matrix_is_conv2d(shape, kern, stride, padding, dilation, groups):
    rng = np.random.default_rng(sum(shape) + sum(kern))
    C = shape[0]
    w = rng.normal(size=(kern[0], C // groups, kern[1], kern[2]))
    w[rng.random(w.shape) < 0.3] = 0.0  # zero weights are left out of the matrix
    M = conv_as_matrix(w, shape, stride, padding, dilation, groups)
    x = rng.normal(size=(3, *shape))
    want = F.conv2d(torch.as_tensor(x), torch.as_tensor(w), None, stride, padding, dilation,
                    groups).reshape(3, -1).numpy()  # fmt: skip
    assert M.shape == (want.shape[1], int(np.prod(shape)))
    np.testing.assert_allclose((M @ x.reshape(3, -1).T).T, want, rtol=1e-12, atol=1e-12)
    assert M.nnz <= np.count_nonzero(w) * want.shape[1] // kern[0]


def test_conv_matrix_is_built_once_per_layer_and_shape():
    w = np.arange(18, dtype=float).reshape(2, 1, 3, 3)
    lay = Conv(w, np.zeros(2), (1, 1), (1, 1), (1, 1), 1)
    a = conv_matrix(lay, (1, 1, 4, 4))
    assert conv_matrix(lay, (1, 4, 4)) is a  # leading 1s: the same image shape
    b = conv_matrix(lay, (1, 5, 5))
    assert b is not a and b.shape == (2 * 25, 25)
    other = Conv(w.copy(), np.zeros(2), (1, 1), (1, 1), (1, 1), 1)
    assert conv_matrix(other, (1, 4, 4)) is not a  # keyed by the layer, not by its values
