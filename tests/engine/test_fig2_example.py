"""The worked example of the etalon paper (Fig. 2, eq. 4-5 and eq. 9-11), computed by hand.

X = (X1, X2) -> Y = ReLU(alpha^T X + b) (3 units) -> Z = ReLU(beta^T Y + b') (2 units), with
weights chosen so that, as in the paper, Y2 and Z2 are off at X. eq. 5 then gives
    W_Z1 = (beta11 alpha11 + beta31 alpha13,  beta11 alpha21 + beta31 alpha23)
    b_Z1 = beta11 b1 + beta31 b3 + b4.
"""
import numpy as np
import pytest

from cnn_widgets.testing import fig2_mlp
from cnn_widgets.testing.reference import cpu_engine

# alpha[i][j]: X_{i+1} -> Y_{j+1};  beta[l][k]: Y_{l+1} -> Z_{k+1}   (paper's indexing, 0-based)
ALPHA = [[0.5, -1.0, 0.3],
         [0.25, -0.5, 0.4]]
B_HIDDEN = [0.1, 0.2, -0.1]          # b1, b2, b3
BETA = [[0.7, -0.6],
        [2.0, 0.9],
        [-0.2, -0.3]]
B_OUT = [0.05, 0.1]                  # b4, b5
X = np.array([1.0, 2.0])
SHAPE = (1, 1, 2)


def _by_hand():
    a, b, be, bo = np.array(ALPHA), np.array(B_HIDDEN), np.array(BETA), np.array(B_OUT)
    y_arg = a.T @ X + b
    assert y_arg[0] > 0 and y_arg[1] < 0 and y_arg[2] > 0, "Y2 must be off, Y1 and Y3 on"
    y = np.maximum(y_arg, 0)
    z_arg = be.T @ y + bo
    assert z_arg[0] > 0 and z_arg[1] < 0, "Z1 must be on, Z2 off"
    (a11, a12, a13), (a21, a22, a23) = a
    (b11, _), (_, _), (b31, _) = be
    b1, _, b3 = b
    b4 = bo[0]
    W_z1 = np.array([b11 * a11 + b31 * a13, b11 * a21 + b31 * a23])      # eq. 5
    b_z1 = b11 * b1 + b31 * b3 + b4
    return W_z1, b_z1, z_arg[0]


@pytest.mark.parametrize("method,kw", [("fast", {}), ("paper", {}),
                                       ("paper", {"one_hot_batch": 1})])
def test_z1_etalon_matches_eq5(method, kw):
    W_z1, b_z1, z1 = _by_hand()
    engine = cpu_engine(fig2_mlp(ALPHA, B_HIDDEN, BETA, B_OUT), SHAPE)
    assert engine.default_layer == "relu_z"
    et = engine.etalons(X.reshape(SHAPE), method=method, **kw)
    assert et.W.shape == (1, 2, *SHAPE)
    np.testing.assert_allclose(et.W[0, 0].ravel(), W_z1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(et.b[0, 0], b_z1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(et.out[0, 0], z1, rtol=1e-6)
    # Z2 is off: its etalon and bias are zero
    np.testing.assert_array_equal(et.W[0, 1], 0)
    assert et.b[0, 1] == 0
    assert et.exact


def test_hidden_units_match_first_layer():
    """Y1 and Y3 are on: their etalons are alpha's columns and their biases b1, b3; Y2 is off."""
    engine = cpu_engine(fig2_mlp(ALPHA, B_HIDDEN, BETA, B_OUT), SHAPE)
    a = np.array(ALPHA)
    for method in ("fast", "paper"):
        et = engine.etalons(X.reshape(SHAPE), layer="relu_y", method=method)
        np.testing.assert_allclose(et.W[0, :, 0, 0], [a[:, 0], [0, 0], a[:, 2]], atol=1e-7)
        np.testing.assert_allclose(et.b[0], [B_HIDDEN[0], 0, B_HIDDEN[2]], atol=1e-7)


def test_weights_of_the_frozen_unit_do_not_matter():
    """Changing every weight into and out of the inactive Y2 (and into Z2) leaves Z1's etalon
    unchanged, as long as Y2 stays off: Y2's edges are not in Z1's subgraph."""
    W_z1, b_z1, _ = _by_hand()
    alpha = [row[:] for row in ALPHA]
    beta = [row[:] for row in BETA]
    alpha[0][1], alpha[1][1] = -3.0, 0.5        # Y2's arg: -3 + 1 + 0.2 < 0, still off
    beta[1][0] = -7.0                            # Y2 -> Z1
    engine = cpu_engine(fig2_mlp(alpha, B_HIDDEN, beta, B_OUT), SHAPE)
    for method in ("fast", "paper"):
        et = engine.etalons(X.reshape(SHAPE), units=[0], method=method)
        np.testing.assert_allclose(et.W[0, 0].ravel(), W_z1, rtol=1e-6)
        np.testing.assert_allclose(et.b[0, 0], b_z1, rtol=1e-6)


def test_activation_pattern_is_the_paper_subgraph():
    """Pattern = (Y1, Y2, Y3, Z1, Z2) on/off, computed by hand for several inputs."""
    engine = cpu_engine(fig2_mlp(ALPHA, B_HIDDEN, BETA, B_OUT), SHAPE)
    pts = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0], [3.0, -1.0], [-2.0, -2.0]])
    a, b, be, bo = map(np.array, (ALPHA, B_HIDDEN, BETA, B_OUT))
    y_arg = pts @ a + b
    z_arg = np.maximum(y_arg, 0) @ be + bo
    want = np.concatenate([y_arg > 0, z_arg > 0], axis=1).astype(np.int64)
    got = engine.activation_pattern(pts.reshape(-1, *SHAPE))
    np.testing.assert_array_equal(got, want)
    assert tuple(want[0]) == (1, 0, 1, 1, 0)
