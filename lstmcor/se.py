"""Squeeze and excitation (paper Eq. 3-5; Hu et al., 2018).

A feature map ``X`` of shape ``[B, H, W, C]`` is squeezed to one number per channel by global
average pooling (Eq. 3), two small dense layers turn those ``C`` numbers into ``C`` gates in
``(0, 1)`` (Eq. 4), and each channel is multiplied by its gate (Eq. 5).
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmcor")
class SqueezeExcitation(keras.layers.Layer):
    """Channel attention by squeeze and excitation.

    Args:
        ratio: reduction ratio ``r``; the hidden width is ``max(1, C // r)``.
        use_bias: add biases to the two dense layers. Eq. 4 has none, so the default is False.

    Call arguments:
        inputs: ``[B, *spatial, C]``.

    Returns:
        The input with each channel scaled by its gate, same shape.
    """

    def __init__(self, ratio: int = 8, use_bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(ratio) < 1:
            raise ValueError(f"SqueezeExcitation ratio must be a positive integer, got {ratio}.")
        self.ratio = int(ratio)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("SqueezeExcitation needs a known channel count (last axis).")
        if len(input_shape) < 3:
            raise ValueError(f"SqueezeExcitation expects [batch, *spatial, channels], got shape {input_shape}.")
        self.channels = int(channels)
        self.hidden = max(1, self.channels // self.ratio)
        # W1 in R^{C/r x C} and W2 in R^{C x C/r} of Eq. 4, stored as Keras kernels (transposed).
        self.squeeze_dense = keras.layers.Dense(self.hidden, activation="relu", use_bias=self.use_bias, name="w1")
        self.excite_dense = keras.layers.Dense(self.channels, activation="sigmoid", use_bias=self.use_bias, name="w2")
        self.squeeze_dense.build((None, self.channels))
        self.excite_dense.build((None, self.hidden))

    def gates(self, inputs):
        """The channel gates ``s`` of Eq. 4, shape ``[B, C]``."""
        spatial_axes = tuple(range(1, len(inputs.shape) - 1))
        z = ops.mean(inputs, axis=spatial_axes)  # Eq. 3
        return self.excite_dense(self.squeeze_dense(z))  # Eq. 4

    def call(self, inputs):
        s = self.gates(inputs)
        for _ in range(len(inputs.shape) - 2):
            s = ops.expand_dims(s, axis=1)
        return inputs * s  # Eq. 5

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"ratio": self.ratio, "use_bias": self.use_bias})
        return config
