"""Feature channels read as a sequence, and a ConvLSTM with peepholes (paper Eq. 6, 12-16).

The U-Net emits ``n`` feature maps. Eq. 6 reads them as a sequence of ``n`` one-channel images,
``[B, H, W, n] -> [B, n, H, W, 1]``, which a convolutional LSTM (Shi et al., 2015) walks through
one channel at a time. Keras's own ``ConvLSTM2D`` has no peephole terms (the ``W_c* o C`` of
Eq. 12, 13 and 15), so this module has its own layer.

Speed: the four gates share one fused kernel, and the input-to-state and state-to-state
convolutions of a step are one convolution of ``[X_t, H_{t-1}]`` (channels side by side) with the
two kernels stacked along the input-channel axis: ``W_x * X_t + W_h * H_{t-1}`` is exactly that
convolution, so each step costs one convolution (and TensorFlow fuses the bias into it).
Computing ``W_x * X_t`` of all steps in one batched convolution beforehand, then adding it step
by step, was no faster on TensorFlow, slower to train, and three times slower on JAX: with one
input channel the batched convolution is a poor fit for the CPU kernels, and the extra addition
and the ``[B, T, H, W, 4F]`` intermediate cost more than one more input channel per step. The
first step starts from ``H_0 = C_0 = 0``, so it skips the recurrent terms and the forget gate.
See ``benchmarks/README.md`` for the figures.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmcor")
class ChannelsToSequence(keras.layers.Layer):
    """Eq. 6: ``[B, H, W, n] -> [B, n, H, W, 1]`` (channel ``k`` becomes time step ``k``)."""

    def call(self, inputs):
        if len(inputs.shape) != 4:
            raise ValueError(f"ChannelsToSequence expects [batch, height, width, channels], got {inputs.shape}.")
        return ops.expand_dims(ops.transpose(inputs, (0, 3, 1, 2)), axis=-1)

    def compute_output_shape(self, input_shape):
        batch, height, width, steps = input_shape
        return (batch, steps, height, width, 1)


@keras.saving.register_keras_serializable(package="lstmcor")
class SequenceToChannels(keras.layers.Layer):
    """Inverse of Eq. 6 for ``F`` features a step: ``[B, n, H, W, F] -> [B, H, W, n * F]``.

    Output channel ``t * F + f`` holds feature ``f`` of step ``t``.
    """

    def call(self, inputs):
        if len(inputs.shape) != 5:
            raise ValueError(f"SequenceToChannels expects [batch, steps, height, width, features], got {inputs.shape}.")
        steps, features = inputs.shape[1], inputs.shape[4]
        moved = ops.transpose(inputs, (0, 2, 3, 1, 4))
        shape = ops.shape(moved)
        return ops.reshape(moved, (shape[0], shape[1], shape[2], steps * features))

    def compute_output_shape(self, input_shape):
        batch, steps, height, width, features = input_shape
        return (batch, height, width, steps * features)


@keras.saving.register_keras_serializable(package="lstmcor")
class PeepholeConvLSTM2D(keras.layers.Layer):
    """Convolutional LSTM with peephole connections, Eq. 12-16.

    Gate order in the fused kernels is ``i, f, c, o``, the order of ``keras.layers.ConvLSTM2D``,
    so weights can be copied between the two. Peephole weights ``W_ci, W_cf, W_co`` are one value
    per hidden channel, broadcast over space (Shi et al. use full spatial tensors; one value per
    channel keeps the layer independent of the image size).

    Args:
        filters: hidden channels ``F``.
        kernel_size: odd size of the square convolution kernels.
        return_sequences: return ``[B, T, H, W, F]`` (True) or the last state ``[B, H, W, F]``.
        use_peepholes: False drops the peephole terms (then this is ``ConvLSTM2D``).
        unit_forget_bias: start the forget-gate bias at 1, as Keras does.

    Call arguments:
        inputs: ``[B, T, H, W, C]`` with a known number of steps ``T``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        return_sequences: bool = True,
        use_peepholes: bool = True,
        unit_forget_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"PeepholeConvLSTM2D needs filters >= 1, got {filters}.")
        if isinstance(kernel_size, (tuple, list)):
            if len(set(kernel_size)) != 1:
                raise ValueError(f"PeepholeConvLSTM2D needs a square kernel, got {kernel_size}.")
            kernel_size = kernel_size[0]
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"PeepholeConvLSTM2D needs an odd kernel_size, got {kernel_size}.")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.return_sequences = bool(return_sequences)
        self.use_peepholes = bool(use_peepholes)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)

    def build(self, input_shape):
        if len(input_shape) != 5:
            raise ValueError(
                f"PeepholeConvLSTM2D expects [batch, steps, height, width, channels], got {input_shape}."
            )
        if input_shape[1] is None:
            raise ValueError("PeepholeConvLSTM2D needs a fixed number of steps (axis 1), got None.")
        if input_shape[-1] is None:
            raise ValueError("PeepholeConvLSTM2D needs a known channel count (last axis).")
        channels, k, f = int(input_shape[-1]), self.kernel_size, self.filters
        self.kernel = self.add_weight(shape=(k, k, channels, 4 * f), initializer=self.kernel_initializer, name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(k, k, f, 4 * f), initializer=self.recurrent_initializer, name="recurrent_kernel"
        )

        def bias_init(shape, dtype=None):
            forget = ops.ones((f,)) if self.unit_forget_bias else ops.zeros((f,))
            values = [ops.zeros((f,)), forget, ops.zeros((2 * f,))]
            return ops.cast(ops.concatenate(values), dtype or "float32")

        self.bias = self.add_weight(shape=(4 * f,), initializer=bias_init, name="bias")
        if self.use_peepholes:
            # W_ci, W_cf, W_co of Eq. 12, 13, 15 (one value per hidden channel).
            self.peephole_i = self.add_weight(shape=(f,), initializer="zeros", name="peephole_i")
            self.peephole_f = self.add_weight(shape=(f,), initializer="zeros", name="peephole_f")
            self.peephole_o = self.add_weight(shape=(f,), initializer="zeros", name="peephole_o")

    def fused_kernel(self):
        """``[W_x; W_h]``: ``conv([X_t, H_{t-1}], fused) = W_x * X_t + W_h * H_{t-1}``, all four gates."""
        return ops.concatenate([self.kernel, self.recurrent_kernel], axis=2)

    def gate_inputs(self, x_t, h, fused):
        """The four gates' pre-activations ``W_x * X_t + W_h * H_{t-1} + b``, ``[B, H, W, 4F]``.

        Args:
            x_t: the step's input ``[B, H, W, C]``.
            h: the previous hidden state ``[B, H, W, F]``, or None at the first step (``H_0 = 0``:
                no recurrent term).
            fused: :meth:`fused_kernel`, computed once per call.
        """
        if h is None:
            return ops.conv(x_t, self.kernel, padding="same") + self.bias
        return ops.conv(ops.concatenate([x_t, h], axis=-1), fused, padding="same") + self.bias

    def call(self, inputs):
        steps = inputs.shape[1]
        fused = self.fused_kernel()
        # unstack/split (not slicing): their gradients are stack/concat, where a slice's gradient
        # would write a full-size tensor of zeros for every step and gate.
        x_steps = ops.unstack(inputs, num=steps, axis=1)
        outputs = []
        h = c = None
        for x_t in x_steps:
            z = self.gate_inputs(x_t, h, fused)
            if h is None:
                # H_0 = C_0 = 0: no peephole on C_0, and f * C_0 = 0.
                z_i, _, z_c, z_o = ops.split(z, 4, axis=-1)
                c = ops.sigmoid(z_i) * ops.tanh(z_c)  # Eq. 12, 14
            else:
                z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
                if self.use_peepholes:
                    i = ops.sigmoid(z_i + self.peephole_i * c)  # Eq. 12
                    fg = ops.sigmoid(z_f + self.peephole_f * c)  # Eq. 13
                else:
                    i, fg = ops.sigmoid(z_i), ops.sigmoid(z_f)
                c = fg * c + i * ops.tanh(z_c)  # Eq. 14
            o = ops.sigmoid(z_o + self.peephole_o * c) if self.use_peepholes else ops.sigmoid(z_o)  # Eq. 15
            h = o * ops.tanh(c)  # Eq. 16
            outputs.append(h)
        if not self.return_sequences:
            return h
        return ops.stack(outputs, axis=1)

    def compute_output_shape(self, input_shape):
        batch, steps, height, width, _ = input_shape
        if self.return_sequences:
            return (batch, steps, height, width, self.filters)
        return (batch, height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "return_sequences": self.return_sequences,
                "use_peepholes": self.use_peepholes,
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            }
        )
        return config
