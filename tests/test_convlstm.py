"""Channels as a sequence (Eq. 6) and the peephole ConvLSTM (Eq. 12-16).

References: ``keras.layers.ConvLSTM2D`` (peepholes at zero) and a NumPy loop over Eq. 12-16
with a hand-written 'same' cross-correlation (peepholes non-zero).
"""
import keras
import numpy as np
import pytest
from keras import ops
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from lstmcor import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels


# ----------------------------------------------------------------------------- NumPy reference
def conv_same(x, kernel):
    """'same' zero-padded cross-correlation (what Keras calls convolution), stride 1.

    x: [B, H, W, Cin]; kernel: [k, k, Cin, Cout] -> [B, H, W, Cout].
    """
    k = kernel.shape[0]
    p = k // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    windows = sliding_window_view(padded, (k, k), axis=(1, 2))  # [B, H, W, Cin, k, k]
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def convlstm_reference(x, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co, output_reads_new_cell=True):
    """Eq. 12-16, one step at a time, gate order i, f, c, o in the fused kernels.

    x: [B, T, H, W, C]. Returns all hidden states [B, T, H, W, F].
    ``output_reads_new_cell=False`` is the wrong reading of Eq. 15 (C_{t-1}), for a negative check.
    """
    f = recurrent_kernel.shape[2]
    batch, steps, height, width, _ = x.shape
    h = np.zeros((batch, height, width, f))
    c = np.zeros_like(h)
    k_i, k_f, k_c, k_o = np.split(kernel, 4, axis=-1)
    r_i, r_f, r_c, r_o = np.split(recurrent_kernel, 4, axis=-1)
    b_i, b_f, b_c, b_o = np.split(bias, 4)
    states = []
    for t in range(steps):
        xt = x[:, t]
        c_prev = c
        i = _sigmoid(conv_same(xt, k_i) + conv_same(h, r_i) + w_ci * c + b_i)  # Eq. 12, C_{t-1}
        fg = _sigmoid(conv_same(xt, k_f) + conv_same(h, r_f) + w_cf * c + b_f)  # Eq. 13, C_{t-1}
        c = fg * c + i * np.tanh(conv_same(xt, k_c) + conv_same(h, r_c) + b_c)  # Eq. 14
        c_out = c if output_reads_new_cell else c_prev
        o = _sigmoid(conv_same(xt, k_o) + conv_same(h, r_o) + w_co * c_out + b_o)  # Eq. 15, C_t
        h = o * np.tanh(c)  # Eq. 16
        states.append(h)
    return np.stack(states, axis=1)


def test_reference_conv_is_scipy_correlate():
    """The hand-written conv is the cross-correlation of scipy.signal (not a flipped convolution)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 7, 9, 2))
    kernel = rng.normal(size=(3, 3, 2, 1))
    ours = conv_same(x, kernel)[0, :, :, 0]
    expected = sum(signal.correlate(x[0, :, :, c], kernel[:, :, c, 0], mode="same") for c in range(2))
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_reference_conv_matches_keras_conv():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 10, 3)).astype("float32")
    kernel = rng.normal(size=(5, 5, 3, 4)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.conv(x, kernel, padding="same")), conv_same(x, kernel), rtol=1e-4, atol=1e-4
    )


# ----------------------------------------------------------------------------- helpers
# Most tests share one set of shapes: the JAX backend compiles each op once per shape.
FILTERS, STEPS = 3, 4

def _build_pair(filters, kernel_size, channels, steps, height, width, rng, peephole_scale=0.0, **kwargs):
    layer = PeepholeConvLSTM2D(filters, kernel_size, **kwargs)
    layer.build((None, steps, height, width, channels))
    # Random biases (not Keras's unit-forget init) so that every term is exercised.
    layer.bias.assign(rng.normal(0.0, 0.5, size=(4 * filters,)).astype("float32"))
    if layer.use_peepholes:
        for w in (layer.peephole_i, layer.peephole_f, layer.peephole_o):
            w.assign((peephole_scale * rng.normal(size=(filters,))).astype("float32"))
    return layer


def _weights(layer):
    names = ["kernel", "recurrent_kernel", "bias"]
    if layer.use_peepholes:
        names += ["peephole_i", "peephole_f", "peephole_o"]
    return {n: ops.convert_to_numpy(getattr(layer, n)).astype("float64") for n in names}


# ----------------------------------------------------------------------------- Keras ConvLSTM2D
@pytest.mark.parametrize("use_peepholes", [True, False])
def test_zero_peepholes_equal_keras_convlstm2d(use_peepholes):
    rng = np.random.default_rng(10 + use_peepholes)
    filters, kernel_size, channels = FILTERS, 3, 1
    steps, height, width = STEPS, 8, 10
    x = rng.normal(size=(2, steps, height, width, channels)).astype("float32")
    ours = _build_pair(filters, kernel_size, channels, steps, height, width, rng, use_peepholes=use_peepholes)
    if use_peepholes:
        # Zero peepholes are the default initialisation.
        for name in ("peephole_i", "peephole_f", "peephole_o"):
            np.testing.assert_array_equal(ops.convert_to_numpy(getattr(ours, name)), 0.0)
    else:
        assert len(ours.weights) == 3

    ref = keras.layers.ConvLSTM2D(filters, kernel_size, padding="same", return_sequences=True)
    ref.build(x.shape)
    ref.set_weights([ops.convert_to_numpy(ours.kernel), ops.convert_to_numpy(ours.recurrent_kernel),
                     ops.convert_to_numpy(ours.bias)])
    expected = ops.convert_to_numpy(ref(x))
    got = ops.convert_to_numpy(ours(x))
    assert got.shape == (2, steps, height, width, filters)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_unit_forget_bias_matches_keras_initial_bias():
    ours = PeepholeConvLSTM2D(3)
    ours.build((None, 2, 4, 4, 1))
    ref = keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    ref.build((None, 2, 4, 4, 1))
    expected = np.concatenate([np.zeros(3), np.ones(3), np.zeros(6)])
    np.testing.assert_array_equal(ops.convert_to_numpy(ours.bias), expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(ref.cell.bias), expected)
    plain = PeepholeConvLSTM2D(3, unit_forget_bias=False)
    plain.build((None, 2, 4, 4, 1))
    np.testing.assert_array_equal(ops.convert_to_numpy(plain.bias), 0.0)


# ----------------------------------------------------------------------------- NumPy Eq. 12-16
@pytest.mark.parametrize(("filters", "kernel_size", "channels", "steps"), [(FILTERS, 3, 1, STEPS), (2, 5, 2, 3)])
def test_peepholes_match_numpy_eq12_to_16(filters, kernel_size, channels, steps):
    rng = np.random.default_rng(100 + filters)
    height, width = 8, 10
    x = rng.normal(size=(2, steps, height, width, channels)).astype("float32")
    layer = _build_pair(filters, kernel_size, channels, steps, height, width, rng, peephole_scale=1.5)
    w = _weights(layer)
    expected = convlstm_reference(
        x.astype("float64"), w["kernel"], w["recurrent_kernel"], w["bias"],
        w["peephole_i"], w["peephole_f"], w["peephole_o"],
    )
    got = ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    # The peepholes matter: the same weights without them give a clearly different answer, and
    # Eq. 15 uses the new cell C_t (not C_{t-1}) for the output gate.
    zero = np.zeros(filters)
    without = convlstm_reference(x.astype("float64"), w["kernel"], w["recurrent_kernel"], w["bias"], zero, zero, zero)
    assert np.max(np.abs(got - without)) > 1e-2


def test_output_gate_peephole_reads_the_new_cell():
    """Only W_co non-zero: Eq. 15 uses C_t; the C_{t-1} reading gives a clearly different answer."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, STEPS, 8, 10, 1)).astype("float32")
    layer = _build_pair(FILTERS, 3, 1, STEPS, 8, 10, rng)
    layer.peephole_o.assign(np.array([3.0, -3.0, 2.0], "float32"))
    w = _weights(layer)
    zero = np.zeros(FILTERS)
    args = (x.astype("float64"), w["kernel"], w["recurrent_kernel"], w["bias"], zero, zero, w["peephole_o"])
    got = ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, convlstm_reference(*args), rtol=1e-4, atol=1e-5)
    wrong = convlstm_reference(*args, output_reads_new_cell=False)
    assert np.max(np.abs(got - wrong)) > 1e-2


def test_return_sequences_false_is_the_last_state():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, STEPS, 8, 10, 1)).astype("float32")
    seq = _build_pair(FILTERS, 3, 1, STEPS, 8, 10, rng, peephole_scale=1.0)
    last = PeepholeConvLSTM2D(FILTERS, 3, return_sequences=False)
    last.build(x.shape)
    last.set_weights(seq.get_weights())
    full = ops.convert_to_numpy(seq(x))
    out = ops.convert_to_numpy(last(x))
    assert out.shape == (2, 8, 10, FILTERS)
    np.testing.assert_allclose(out, full[:, -1], rtol=1e-6, atol=1e-6)
    symbolic = last(keras.Input((STEPS, 8, 10, 1)))
    assert tuple(symbolic.shape) == (None, 8, 10, FILTERS)


def test_works_at_another_image_size_and_symbolically():
    layer = PeepholeConvLSTM2D(2)
    out = layer(keras.Input((5, 16, 20, 1)))
    assert tuple(out.shape) == (None, 5, 16, 20, 2)
    # Peephole weights are one value per hidden channel, independent of the image size.
    assert tuple(layer.peephole_i.shape) == (2,)


# ----------------------------------------------------------------------------- Eq. 6 and back
def test_channels_to_sequence_shape_and_order():
    rng = np.random.default_rng(20)
    x = rng.normal(size=(2, 6, 7, 5)).astype("float32")
    seq = ops.convert_to_numpy(ChannelsToSequence()(x))
    assert seq.shape == (2, 5, 6, 7, 1)  # steps == channels
    for t in range(5):
        np.testing.assert_array_equal(seq[:, t, :, :, 0], x[..., t])
    symbolic = ChannelsToSequence()(keras.Input((16, 20, 9)))
    assert tuple(symbolic.shape) == (None, 9, 16, 20, 1)


def test_sequence_to_channels_order_is_step_major():
    steps, features = 3, 4
    x = np.zeros((2, steps, 5, 6, features), "float32")
    for t in range(steps):
        for f in range(features):
            x[:, t, :, :, f] = 10 * t + f + np.arange(2)[:, None, None] * 100
    out = ops.convert_to_numpy(SequenceToChannels()(x))
    assert out.shape == (2, 5, 6, steps * features)
    for t in range(steps):
        for f in range(features):
            np.testing.assert_array_equal(out[..., t * features + f], x[:, t, :, :, f])
    symbolic = SequenceToChannels()(keras.Input((steps, 16, 20, features)))
    assert tuple(symbolic.shape) == (None, 16, 20, steps * features)


def test_round_trip_channels_sequence_channels():
    rng = np.random.default_rng(21)
    x = rng.normal(size=(3, 4, 8, 6)).astype("float32")
    back = SequenceToChannels()(ChannelsToSequence()(x))
    np.testing.assert_array_equal(ops.convert_to_numpy(back), x)


# ----------------------------------------------------------------------------- bad input
def test_rank4_input_is_a_value_error():
    layer = PeepholeConvLSTM2D(2)
    with pytest.raises(ValueError, match=r"expects \[batch, steps, height, width, channels\]"):
        layer(np.zeros((1, 8, 8, 1), "float32"))


@pytest.mark.parametrize("kernel_size", [2, 4, (3, 5)])
def test_even_or_non_square_kernel_is_a_value_error(kernel_size):
    with pytest.raises(ValueError, match=r"odd kernel_size|square kernel"):
        PeepholeConvLSTM2D(2, kernel_size)


def test_even_kernel_message_names_the_size():
    with pytest.raises(ValueError, match=r"odd kernel_size, got 4"):
        PeepholeConvLSTM2D(2, 4)


def test_zero_filters_is_a_value_error():
    with pytest.raises(ValueError, match=r"filters >= 1"):
        PeepholeConvLSTM2D(0)


def test_sequence_layers_reject_wrong_rank():
    with pytest.raises(ValueError, match=r"ChannelsToSequence expects \[batch, height, width, channels\]"):
        ChannelsToSequence()(np.zeros((2, 4, 4, 1, 1), "float32"))
    with pytest.raises(ValueError, match=r"SequenceToChannels expects \[batch, steps, height, width, features\]"):
        SequenceToChannels()(np.zeros((2, 4, 4, 3), "float32"))
