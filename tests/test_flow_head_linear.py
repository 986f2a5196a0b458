"""The reading "the flow head is linear after its SE block" (book/readings.md): the depthwise 3x3
layer of Eq. (17) followed by the 3x3 field convolution of Eq. (18) equals one 5x5 convolution,
away from the one-pixel border. Checked against SciPy with the composed kernel built in NumPy."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate
from scipy.signal import convolve2d

from lstmcor.flow_head import FlowDepthwiseConv2D, flow_field


def composed_5x5(depthwise: np.ndarray, dw_bias: np.ndarray, field: np.ndarray, field_bias: np.ndarray):
    """One 5x5 cross-correlation kernel [5, 5, C, 2] and bias [2] equal to the two layers in a row.

    Cross-correlating with ``a`` then with ``b`` is cross-correlating with their full convolution
    ``K[u] = sum_{s + t = u} a[s] b[t]``; the depthwise bias passes through the field kernel.
    """
    channels, outputs = field.shape[2], field.shape[3]
    kernel = np.zeros((5, 5, channels, outputs))
    for c in range(channels):
        for o in range(outputs):
            kernel[:, :, c, o] = convolve2d(depthwise[:, :, c, 0], field[:, :, c, o], mode="full")
    bias = field_bias + np.einsum("c,ijco->o", dw_bias, field)
    return kernel, bias


def test_depthwise_then_field_conv_is_one_5x5_convolution():
    import keras

    rng = np.random.default_rng(0)
    channels, size = 6, 14
    inputs = keras.Input((size, size, channels))
    depthwise = FlowDepthwiseConv2D(3, padding="same", name="depthwise")
    outputs = flow_field(depthwise(inputs))
    model = keras.Model(inputs, outputs)
    for layer in model.layers:  # random weights everywhere, biases included (the field conv starts near 0)
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    a, a_bias = model.get_layer("depthwise").get_weights()
    b, b_bias = model.get_layer("flow_conv").get_weights()
    x = rng.normal(size=(1, size, size, channels)).astype("float32")
    got = np.asarray(model(x))[0]

    kernel, bias = composed_5x5(a, a_bias, b, b_bias)
    want = np.stack([sum(correlate(x[0, :, :, c].astype(np.float64), kernel[:, :, c, o], mode="constant")
                         for c in range(channels)) + bias[o] for o in range(2)], axis=-1)
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(got[inner], want[inner], rtol=1e-4, atol=1e-4)
    # at the border the zero padding between the two layers makes them differ from one convolution
    assert not np.allclose(got[0], want[0], atol=1e-3)
