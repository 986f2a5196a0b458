"""The two registration networks: LSTM-COR (the paper's) and the VoxelMorph baseline.

Both take ``[moving, fixed]`` images ``[B, H, W, 1]`` and return ``[moved, flow]``: the moving
image warped by the predicted displacement field, and that field ``[B, H, W, 2]`` in pixels
(channel 0 along rows). Sizes follow ``DESIGN.md``.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from lstmcor.convlstm import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels
from lstmcor.se import SqueezeExcitation
from lstmcor.transform import SpatialTransformer, warp
from lstmcor.validate import check_image_batch, check_spatial_shape

ENC_FEATURES = (16, 32, 32, 32)
VXM_DEC_FEATURES = (32, 32, 32, 32, 32, 16, 16)
LSTMCOR_DEC_FEATURES = (32, 32, 32, 32, 32, 16)


def _conv(x, filters: int, name: str):
    """Conv 3x3 + LeakyReLU(0.2), VoxelMorph's convolution block."""
    x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def _flow_conv(x, name: str = "flow_conv"):
    """Conv 3x3 to the two field channels, initialised near zero as VoxelMorph does (Eq. 18)."""
    return keras.layers.Conv2D(
        2,
        3,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1e-5),
        bias_initializer="zeros",
        name=name,
    )(x)


def _inputs(input_shape: Sequence[int], levels: int):
    height, width = check_spatial_shape(tuple(input_shape), levels)
    moving = keras.Input((height, width, 1), name="moving")
    fixed = keras.Input((height, width, 1), name="fixed")
    return moving, fixed


def _unet(x, enc_features, dec_features, se_skips: bool = False, funnel: bool = False, se_ratio: int = 8):
    """VoxelMorph's U-Net body; optionally SE on the skips and the funnel connection (LSTM-COR).

    Encoder: conv, keep the skip, max-pool, per level. Decoder: conv, upsample, concatenate the
    matching skip, per level; then the full-resolution convolutions ``dec_features[levels:]``.
    """
    levels = len(enc_features)
    if len(dec_features) < levels:
        raise ValueError(f"dec_features needs at least {levels} entries (one per level), got {len(dec_features)}.")
    skips = []
    for level, features in enumerate(enc_features):
        x = _conv(x, features, f"enc{level}")
        skips.append(SqueezeExcitation(se_ratio, name=f"skip{level}_se")(x) if se_skips else x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    if funnel:
        # Funnel: the weighted highest-resolution skip, pooled to the bottleneck's size.
        top = keras.layers.AveragePooling2D(2**levels, name="funnel_pool")(skips[0])
        x = keras.layers.Concatenate(name="funnel")([x, top])
    for level in range(levels):
        x = _conv(x, dec_features[level], f"dec{level}")
        x = keras.layers.UpSampling2D(2, name=f"dec{level}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{level}_skip")([x, skips[levels - 1 - level]])
    for k, features in enumerate(dec_features[levels:]):
        x = _conv(x, features, f"full{k}")
    return x


def _registration_outputs(moving, flow):
    """Warp ``moving`` by ``flow``; name the two outputs ``moved`` and ``flow``."""
    moved = SpatialTransformer(name="transformer")([moving, flow])
    return [keras.layers.Identity(name="moved")(moved), keras.layers.Identity(name="flow")(flow)]


@keras.saving.register_keras_serializable(package="lstmcor")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` (Eq. 17), same weights and result, faster on JAX.

    XLA's CPU kernel for a grouped convolution is slow (about 40 ms for the 64-channel head at
    160 x 192, four times the whole VoxelMorph network). On JAX a stride-1, 'same', multiplier-1
    depthwise convolution is therefore written as the sum over the ``k x k`` taps of the shifted,
    zero-padded input times that tap's per-channel weight, which XLA fuses into one loop. The other
    backends keep the native kernel (oneDNN's is fast on TensorFlow).
    """

    def _shifted_sum_applies(self):
        return (
            keras.backend.backend() == "jax"
            and self.data_format == "channels_last"
            and self.padding == "same"
            and self.depth_multiplier == 1
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and all(k % 2 == 1 for k in self.kernel_size)
        )

    def call(self, inputs):
        if not self._shifted_sum_applies():
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


def build_voxelmorph(
    input_shape: Sequence[int] = (160, 192),
    enc_features: Sequence[int] = ENC_FEATURES,
    dec_features: Sequence[int] = VXM_DEC_FEATURES,
    name: str = "voxelmorph",
) -> keras.Model:
    """VoxelMorph's VxmDense for 2D without integration (Balakrishnan et al., 2019).

    Args:
        input_shape: ``(H, W)``, each divisible by ``2 ** len(enc_features)``.
        enc_features: features per encoder level.
        dec_features: decoder features; the first ``len(enc_features)`` upsample, the rest run at
            full resolution.
        name: model name.

    Returns:
        A Keras model ``[moving, fixed] -> [moved, flow]``.
    """
    moving, fixed = _inputs(input_shape, len(enc_features))
    x = keras.layers.Concatenate(name="pair")([moving, fixed])
    x = _unet(x, enc_features, dec_features)
    flow = _flow_conv(x)
    return keras.Model([moving, fixed], _registration_outputs(moving, flow), name=name)


def build_lstmcor(
    input_shape: Sequence[int] = (160, 192),
    enc_features: Sequence[int] = ENC_FEATURES,
    dec_features: Sequence[int] = LSTMCOR_DEC_FEATURES,
    n_seq: int = 16,
    lstm_filters: int = 4,
    se_ratio: int = 8,
    se_skips: bool = True,
    funnel: bool = True,
    recurrence: str = "convlstm",
    peepholes: bool = True,
    field_se: bool = True,
    name: str = "lstmcor",
) -> keras.Model:
    """LSTM-COR: SE U-Net sequence generator, ConvLSTM over channels, depthwise flow head, SE-weighted warp.

    Args:
        input_shape: ``(H, W)``, each divisible by ``2 ** len(enc_features)``.
        enc_features: features per encoder level (default ``[16, 32, 32, 32]``).
        dec_features: decoder features: one per level, then full-resolution convolutions; a last
            convolution to ``n_seq`` channels follows.
        n_seq: channels of the sequence generator's output, i.e. ConvLSTM time steps (Eq. 6).
        lstm_filters: hidden channels of the ConvLSTM.
        se_ratio: reduction ratio ``r`` of every SE block.
        se_skips: squeeze-and-excitation on the U-Net skip connections.
        funnel: connect the SE-weighted top skip to the bottleneck.
        recurrence: ``"convlstm"`` (the paper) or ``"conv"`` (a plain 3x3 convolution in its place).
        peepholes: use the peephole terms of Eq. 12, 13, 15.
        field_se: SE block on the registration field before warping (Eq. 20).
        name: model name.

    Returns:
        A Keras model ``[moving, fixed] -> [moved, flow]``.
    """
    if recurrence not in ("convlstm", "conv"):
        raise ValueError(f"recurrence must be 'convlstm' or 'conv', got {recurrence!r}.")
    if n_seq < 1 or lstm_filters < 1:
        raise ValueError(f"n_seq and lstm_filters must be >= 1, got {n_seq} and {lstm_filters}.")
    moving, fixed = _inputs(input_shape, len(enc_features))

    # 1. Sequence generator: a U-Net with channel attention on its skips (paper 2.5, Fig. 3).
    x = keras.layers.Concatenate(name="pair")([moving, fixed])
    x = _unet(x, enc_features, dec_features, se_skips=se_skips, funnel=funnel, se_ratio=se_ratio)
    sequence = _conv(x, n_seq, "sequence")

    # 2. Channels as a sequence through a ConvLSTM (Eq. 6, 12-16), or a plain conv for ablation.
    if recurrence == "convlstm":
        steps = ChannelsToSequence(name="to_sequence")(sequence)
        states = PeepholeConvLSTM2D(lstm_filters, 3, use_peepholes=peepholes, name="convlstm")(steps)
        features = SequenceToChannels(name="from_sequence")(states)
    else:
        features = _conv(sequence, n_seq * lstm_filters, "recurrence")

    # 3. Flow head: SE, depthwise conv (Eq. 17), conv to two channels (Eq. 18).
    features = SqueezeExcitation(se_ratio, name="head_se")(features)
    features = DepthwiseConv2D(3, padding="same", name="depthwise")(features)
    flow = _flow_conv(features)

    # 4. Weighted spatial transformer (Eq. 19-20): one SE gate per field channel, then warp.
    if field_se:
        flow = SqueezeExcitation(se_ratio, name="field_se")(flow)
    return keras.Model([moving, fixed], _registration_outputs(moving, flow), name=name)


def recommended_jit_compile(backend: str | None = None) -> bool:
    """The ``jit_compile`` setting for ``model.compile`` that ran these models fastest on a backend.

    Measured with ``benchmarks/inference.py`` on a 2-core CPU (see ``benchmarks/README.md``).
    TensorFlow: False; XLA's CPU convolutions are slower than oneDNN's, so ``jit_compile=True``
    made VoxelMorph about 2 times and LSTM-COR about 3.4 times slower per pair (and a LSTM-COR
    training step about 17 times slower). JAX: True, its normal mode (False runs the model op by
    op). PyTorch: False; ``torch.compile`` (True) made inference 2.6 (VoxelMorph) and 2.8
    (LSTM-COR) times faster but took about 3 minutes to compile on 2 cores, and made a VoxelMorph
    training step slower (333 against 254 ms), so eager mode is the better default for a course.
    On a GPU, time both settings with the benchmark before trusting this default.

    Args:
        backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``; default the active Keras backend.
    """
    backend = backend or keras.backend.backend()
    return {"tensorflow": False, "jax": True, "torch": False}.get(backend, False)


MODELS = {"lstmcor": build_lstmcor, "voxelmorph": build_voxelmorph}


def build_model(name: str, input_shape: Sequence[int] = (160, 192), **options) -> keras.Model:
    """Build ``"lstmcor"`` or ``"voxelmorph"`` by name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}.")
    return MODELS[name](input_shape=input_shape, **options)


def register(model: keras.Model, moving, fixed, moving_labels=None) -> dict:
    """Register ``moving`` to ``fixed`` with a trained model, and warp labels by the same field.

    Args:
        model: a model from :func:`build_lstmcor` or :func:`build_voxelmorph`.
        moving, fixed: ``[H, W]`` or ``[B, H, W, 1]`` images in [0, 1].
        moving_labels: optional integer label maps, warped by nearest neighbour.

    Returns:
        A dict with ``moved`` ``[B, H, W, 1]``, ``flow`` ``[B, H, W, 2]`` and, when labels were
        given, ``moved_labels`` shaped like them.
    """
    moving = check_image_batch(moving, "moving")
    fixed = check_image_batch(fixed, "fixed")
    if moving.shape != fixed.shape:
        raise ValueError(f"moving {moving.shape} and fixed {fixed.shape} differ in shape: register images of one size.")
    expected = tuple(model.inputs[0].shape[1:3])
    if moving.shape[1:3] != expected:
        raise ValueError(
            f"images are {moving.shape[1]} x {moving.shape[2]} but the model takes {expected[0]} x {expected[1]}: "
            "pad or crop them with lstmcor.data.pad_or_crop, or build a model of that size."
        )
    moved, flow = model.predict_on_batch([moving, fixed])
    result = {"moved": np.asarray(moved), "flow": np.asarray(flow)}
    if moving_labels is not None:
        labels = np.asarray(moving_labels)
        if labels.dtype.kind not in "iub":
            raise ValueError(f"moving_labels must be integers, got dtype {labels.dtype}.")
        batch = labels.reshape(moving.shape)
        result["moved_labels"] = warp(batch, result["flow"], "nearest").reshape(labels.shape)
    return result
