"""The flow head of LSTM-COR (paper 2.5, Eq. 17-18): SE, a depthwise convolution, a conv to the field.

:class:`FlowDepthwiseConv2D` is the depthwise layer of Eq. 17. It computes exactly what
``keras.layers.DepthwiseConv2D`` computes, with the same weights, and only differs in how: on
JAX a stride-1, 'same', multiplier-1 depthwise convolution is written as the sum over the
``k x k`` taps of the shifted, zero-padded input times that tap's per-channel weight, which XLA
fuses into one loop. XLA's CPU kernel for a grouped convolution is slow (about 40 ms for the
64-channel head at 160 x 192, four times the whole VoxelMorph network). The other backends keep
the native kernel (oneDNN's is fast on TensorFlow).

Example:
    >>> import numpy as np
    >>> layer = FlowDepthwiseConv2D(3, padding="same")
    >>> layer(np.zeros((1, 16, 16, 4), "float32")).shape
    (1, 16, 16, 4)
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="lstmcor")
class FlowDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Eq. 17: one ``k x k`` filter per channel; ``keras.layers.DepthwiseConv2D``'s weights and result.

    Args:
        shifted_sum: ``"auto"`` (the shifted sum on JAX where it applies, the native kernel
            elsewhere), ``True`` (the shifted sum wherever it applies, any backend) or ``False``.
        other arguments: those of ``keras.layers.DepthwiseConv2D``.

    Input ``[B, H, W, C]``; output ``[B, H, W, C * depth_multiplier]``.
    """

    def __init__(self, *args, shifted_sum="auto", **kwargs):
        super().__init__(*args, **kwargs)
        if shifted_sum not in ("auto", True, False):
            raise ValueError(f"shifted_sum must be 'auto', True or False, got {shifted_sum!r}.")
        self.shifted_sum = shifted_sum

    def shifted_sum_applies(self) -> bool:
        """Whether :meth:`call` takes the shifted-sum path for this layer on this backend."""
        if self.shifted_sum is False or (self.shifted_sum == "auto" and keras.backend.backend() != "jax"):
            return False
        return (
            self.data_format == "channels_last"
            and self.padding == "same"
            and self.depth_multiplier == 1
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and all(k % 2 == 1 for k in self.kernel_size)
        )

    def call(self, inputs):
        if not self.shifted_sum_applies():
            return super().call(inputs)
        kh, kw = self.kernel_size
        height, width = inputs.shape[1], inputs.shape[2]
        padded = keras.ops.pad(inputs, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        outputs = None
        for i in range(kh):
            for j in range(kw):
                term = padded[:, i : i + height, j : j + width, :] * self.kernel[i, j, :, 0]
                outputs = term if outputs is None else outputs + term
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["shifted_sum"] = self.shifted_sum
        return config


@keras.saving.register_keras_serializable(package="lstmcor")
class DepthwiseConv2D(FlowDepthwiseConv2D):
    """The layer under its old name, so that ``.keras`` files saved before it had its own load.

    Keras finds a layer's weights in a saved file by the snake-case name of its class, so the
    class keeps that name. New models use :class:`FlowDepthwiseConv2D`; ``lstmcor`` does not
    export this one.
    """


def flow_field(features, name: str = "flow_conv"):
    """Eq. 18: a 3x3 convolution to the two field channels, initialised near zero (as VoxelMorph)."""
    return keras.layers.Conv2D(
        2,
        3,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1e-5),
        bias_initializer="zeros",
        name=name,
    )(features)
