"""SqueezeExcitation (paper Eq. 3-5) against a NumPy evaluation with the layer's own weights."""
import keras
import numpy as np
import pytest
from keras import ops

from lstmcor import SqueezeExcitation


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _se_reference(x, w1, w2, b1=None, b2=None):
    """Eq. 3-5 in NumPy: z = spatial mean, s = sigmoid(W2 relu(W1 z)), out = s_c * x_c.

    Keras Dense kernels are stored as [in, out], so ``W1 z`` is ``z @ w1``.
    """
    spatial = tuple(range(1, x.ndim - 1))
    z = x.mean(axis=spatial)  # Eq. 3, [B, C]
    hidden = z @ w1 + (0.0 if b1 is None else b1)
    hidden = np.maximum(hidden, 0.0)  # delta = ReLU
    s = _sigmoid(hidden @ w2 + (0.0 if b2 is None else b2))  # Eq. 4
    s = s.reshape((x.shape[0],) + (1,) * len(spatial) + (x.shape[-1],))
    return x * s, s  # Eq. 5


def _built(layer, shape):
    layer.build(shape)
    return layer


@pytest.mark.parametrize(("channels", "ratio", "hidden"), [(2, 8, 1), (64, 8, 8), (16, 4, 4), (7, 2, 3), (3, 1, 3)])
def test_hidden_width_is_max_one_c_over_r(channels, ratio, hidden):
    layer = _built(SqueezeExcitation(ratio=ratio), (None, 8, 8, channels))
    assert layer.hidden == hidden
    assert tuple(layer.squeeze_dense.kernel.shape) == (channels, hidden)
    assert tuple(layer.excite_dense.kernel.shape) == (hidden, channels)


def _randomise(layer, rng):
    """Give every weight a random value (small enough that the sigmoid does not saturate)."""
    for w in layer.weights:
        w.assign(rng.normal(0.0, 0.4, size=tuple(w.shape)).astype("float32"))


@pytest.mark.parametrize(("channels", "ratio"), [(2, 8), (16, 8), (12, 4)])
def test_matches_numpy_eq3_to_5(channels, ratio):
    rng = np.random.default_rng(channels * 100 + ratio)
    # Different positive means per sample and channel, so the squeezed vectors z differ.
    offsets = rng.uniform(0.2, 2.0, size=(3, 1, 1, channels))
    x = (offsets + 0.3 * rng.normal(size=(3, 16, 20, channels))).astype("float32")
    layer = _built(SqueezeExcitation(ratio=ratio), x.shape)
    assert len(layer.weights) == 2  # Eq. 4 has no bias terms: use_bias=False by default
    _randomise(layer, rng)
    # A positive W1 keeps the ReLU active, so the gates really depend on z.
    layer.squeeze_dense.kernel.assign(np.abs(ops.convert_to_numpy(layer.squeeze_dense.kernel)))
    w1 = ops.convert_to_numpy(layer.squeeze_dense.kernel).astype("float64")
    w2 = ops.convert_to_numpy(layer.excite_dense.kernel).astype("float64")
    expected, s_expected = _se_reference(x.astype("float64"), w1, w2)
    out = ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    gates = ops.convert_to_numpy(layer.gates(x))
    np.testing.assert_allclose(gates, s_expected.reshape(3, channels), rtol=1e-5, atol=1e-6)
    # The gates are a real per-sample, per-channel weighting, not a constant.
    assert np.all((gates > 0) & (gates < 1))
    assert np.ptp(gates) > 1e-3


def test_matches_numpy_with_bias():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 8, 12, 16)).astype("float32")
    layer = _built(SqueezeExcitation(ratio=4, use_bias=True), x.shape)
    assert len(layer.weights) == 4
    _randomise(layer, rng)
    w1, b1 = (ops.convert_to_numpy(v).astype("float64") for v in (layer.squeeze_dense.kernel, layer.squeeze_dense.bias))
    w2, b2 = (ops.convert_to_numpy(v).astype("float64") for v in (layer.excite_dense.kernel, layer.excite_dense.bias))
    expected, _ = _se_reference(x.astype("float64"), w1, w2, b1, b2)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_rank5_input_pools_over_all_spatial_axes():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 6, 8, 8)).astype("float32")
    layer = _built(SqueezeExcitation(ratio=2), x.shape)
    _randomise(layer, rng)
    w1 = ops.convert_to_numpy(layer.squeeze_dense.kernel).astype("float64")
    w2 = ops.convert_to_numpy(layer.excite_dense.kernel).astype("float64")
    expected, _ = _se_reference(x.astype("float64"), w1, w2)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_output_shape_and_symbolic_use():
    inputs = keras.Input((16, 20, 5))
    out = SqueezeExcitation(ratio=2)(inputs)
    assert tuple(out.shape) == (None, 16, 20, 5)


@pytest.mark.parametrize("ratio", [0, -1])
def test_ratio_below_one_is_a_value_error(ratio):
    with pytest.raises(ValueError, match=r"ratio must be a positive integer"):
        SqueezeExcitation(ratio=ratio)
