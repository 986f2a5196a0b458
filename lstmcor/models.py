"""The two registration networks: LSTM-COR (the paper's) and the VoxelMorph baseline.

Both take ``[moving, fixed]`` images ``[B, H, W, 1]`` and return ``[moved, flow]``: the moving
image warped by the predicted displacement field, and that field ``[B, H, W, 2]`` in pixels
(channel 0 along rows). Sizes follow ``book/readings.md``.

With ``integration_steps=N > 0`` (both builders) the head's field is read as a stationary
velocity and integrated by scaling and squaring (:class:`lstmcor.transform.IntegrateVelocity`)
before the warp; ``flow`` is then the integrated displacement, the field that moved the image and
the one the Grad loss sees, and the velocity is the output of the layer named ``"velocity"``
(:func:`velocity_model`). ``book/readings.md`` ("Diffeomorphic variant") gives the reasons.
"""
from __future__ import annotations

import numbers
from typing import Sequence

import keras

from lstmcor.convlstm import ChannelsToSequence, PeepholeConvLSTM2D, SequenceToChannels
from lstmcor.flow_head import FlowDepthwiseConv2D, flow_field
from lstmcor.runtime import recommended_jit_compile  # noqa: F401  (its old import path)
from lstmcor.se import SqueezeExcitation
from lstmcor.settings import MODEL_NAMES
from lstmcor.registration import register  # noqa: F401  (its old import path)
from lstmcor.transform import IntegrateVelocity, SpatialTransformer
from lstmcor.validate import check_spatial_shape

ENC_FEATURES = (16, 32, 32, 32)
VXM_DEC_FEATURES = (32, 32, 32, 32, 32, 16, 16)
LSTMCOR_DEC_FEATURES = (32, 32, 32, 32, 32, 16)
#: Squarings of the diffeomorphic variant when one is asked for (VoxelMorph's ``int_steps`` default);
#: the builders' default stays 0, the paper's plain displacement.
DIFFEOMORPHIC_STEPS = 7
#: Initialisations of LSTM-COR's head (readings, not the paper's equations; book/readings.md,
#: "Initialisation"). Keras's Glorot default for a depthwise kernel ``[3, 3, C, 1]`` counts all C
#: channels in its fan-in although each output sees 9 inputs; ``fan_out`` (9) is the per-channel
#: fan, so the layer starts with unit gain. The ConvLSTM reads one-channel images: He's fan-in
#: scale for its input kernel, instead of Glorot's over the four fused gates.
DEPTHWISE_INITIALIZER = {"class_name": "VarianceScaling",
                         "config": {"scale": 1.0, "mode": "fan_out", "distribution": "uniform"}}
CONVLSTM_INITIALIZER = "he_uniform"


def conv_block(x, filters: int, name: str):
    """Conv 3x3 + LeakyReLU(0.2), VoxelMorph's convolution block: layers ``{name}_conv``, ``{name}_act``.

    Example:
        >>> y = conv_block(keras.Input((32, 32, 2)), 16, "enc0")   # [None, 32, 32, 16]
    """
    x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return keras.layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def _inputs(input_shape: Sequence[int], levels: int):
    height, width = check_spatial_shape(tuple(input_shape), levels)
    moving = keras.Input((height, width, 1), name="moving")
    fixed = keras.Input((height, width, 1), name="fixed")
    return moving, fixed


def unet_features(x, enc_features, dec_features, se_skips: bool = False, funnel: bool = False, se_ratio: int = 8):
    """VoxelMorph's U-Net body; optionally SE on the skips and the funnel connection (LSTM-COR).

    Encoder: conv, keep the skip, max-pool, per level. Decoder: conv, upsample, concatenate the
    matching skip, per level; then the full-resolution convolutions ``dec_features[levels:]``.
    Layer names are those of the package's models (``enc0_conv``, ``skip0_se``, ``funnel``, ...).

    Args:
        x: the stacked pair ``[B, H, W, 2]`` (H, W divisible by ``2 ** len(enc_features)``).

    Returns:
        ``[B, H, W, dec_features[-1]]``.

    Example:
        >>> pair = keras.Input((32, 32, 2))
        >>> unet_features(pair, ENC_FEATURES, LSTMCOR_DEC_FEATURES, se_skips=True, funnel=True).shape
        (None, 32, 32, 16)
    """
    levels = len(enc_features)
    if len(dec_features) < levels:
        raise ValueError(f"dec_features needs at least {levels} entries (one per level), got {len(dec_features)}.")
    skips = []
    for level, features in enumerate(enc_features):
        x = conv_block(x, features, f"enc{level}")
        skips.append(SqueezeExcitation(se_ratio, name=f"skip{level}_se")(x) if se_skips else x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    if funnel:
        # Funnel: the weighted highest-resolution skip, pooled to the bottleneck's size.
        top = keras.layers.AveragePooling2D(2**levels, name="funnel_pool")(skips[0])
        x = keras.layers.Concatenate(name="funnel")([x, top])
    for level in range(levels):
        x = conv_block(x, dec_features[level], f"dec{level}")
        x = keras.layers.UpSampling2D(2, name=f"dec{level}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{level}_skip")([x, skips[levels - 1 - level]])
    for k, features in enumerate(dec_features[levels:]):
        x = conv_block(x, features, f"full{k}")
    return x


_conv, _unet = conv_block, unet_features  # their old private names


def _check_integration_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"integration_steps must be an integer >= 0 (0: plain displacement), got {steps!r}.")
    return int(steps)


def _displacement(field, integration_steps: int):
    """The head's ``field`` as is (0 steps), or read as a velocity and integrated (layers ``velocity``,
    ``integrate``)."""
    if integration_steps == 0:
        return field
    velocity = keras.layers.Identity(name="velocity")(field)
    return IntegrateVelocity(integration_steps, name="integrate")(velocity)


def velocity_model(model: keras.Model) -> keras.Model:
    """``[moving, fixed] -> velocity`` of a model built with ``integration_steps > 0``.

    The model's own ``flow`` output is the integrated displacement; this returns the stationary
    velocity before integration (after LSTM-COR's field SE), sharing the model's weights.

    Raises:
        ValueError: the model has no layer named ``"velocity"`` (it was built with 0 steps).
    """
    names = {layer.name for layer in model.layers}
    if "velocity" not in names:
        raise ValueError(f"model {model.name!r} has no velocity: it was built with integration_steps=0, so its "
                         "flow output is the head's displacement itself.")
    return keras.Model(model.inputs, model.get_layer("velocity").output, name=f"{model.name}_velocity")


def _registration_outputs(moving, flow):
    """Warp ``moving`` by ``flow``; name the two outputs ``moved`` and ``flow``."""
    moved = SpatialTransformer(name="transformer")([moving, flow])
    return [keras.layers.Identity(name="moved")(moved), keras.layers.Identity(name="flow")(flow)]


def build_voxelmorph(
    input_shape: Sequence[int] = (160, 192),
    enc_features: Sequence[int] = ENC_FEATURES,
    dec_features: Sequence[int] = VXM_DEC_FEATURES,
    integration_steps: int = 0,
    name: str = "voxelmorph",
) -> keras.Model:
    """VoxelMorph's VxmDense for 2D (Balakrishnan et al., 2019), without integration by default.

    Args:
        input_shape: ``(H, W)``, each divisible by ``2 ** len(enc_features)``.
        enc_features: features per encoder level.
        dec_features: decoder features; the first ``len(enc_features)`` upsample, the rest run at
            full resolution.
        integration_steps: 0 (default) for a plain displacement; ``N > 0`` reads the field as a
            stationary velocity integrated by ``N`` squarings (Dalca et al., 2019; VxmDense's
            ``int_steps``, at full resolution here) and ``flow`` is the integrated displacement.
        name: model name.

    Returns:
        A Keras model ``[moving, fixed] -> [moved, flow]``.
    """
    integration_steps = _check_integration_steps(integration_steps)
    moving, fixed = _inputs(input_shape, len(enc_features))
    x = keras.layers.Concatenate(name="pair")([moving, fixed])
    x = unet_features(x, enc_features, dec_features)
    flow = _displacement(flow_field(x), integration_steps)
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
    integration_steps: int = 0,
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
        integration_steps: 0 (default, the paper) for a plain displacement; ``N > 0`` reads the
            SE-weighted field as a stationary velocity and integrates it by ``N`` squarings, so
            ``flow`` is the integrated displacement (the SE gates the velocity, before integration).
        name: model name.

    Returns:
        A Keras model ``[moving, fixed] -> [moved, flow]``.
    """
    if recurrence not in ("convlstm", "conv"):
        raise ValueError(f"recurrence must be 'convlstm' or 'conv', got {recurrence!r}.")
    if n_seq < 1 or lstm_filters < 1:
        raise ValueError(f"n_seq and lstm_filters must be >= 1, got {n_seq} and {lstm_filters}.")
    integration_steps = _check_integration_steps(integration_steps)
    moving, fixed = _inputs(input_shape, len(enc_features))

    # 1. Sequence generator: a U-Net with channel attention on its skips (paper 2.5, Fig. 3).
    x = keras.layers.Concatenate(name="pair")([moving, fixed])
    x = unet_features(x, enc_features, dec_features, se_skips=se_skips, funnel=funnel, se_ratio=se_ratio)
    sequence = conv_block(x, n_seq, "sequence")

    # 2. Channels as a sequence through a ConvLSTM (Eq. 6, 12-16), or a plain conv for ablation.
    if recurrence == "convlstm":
        steps = ChannelsToSequence(name="to_sequence")(sequence)
        states = PeepholeConvLSTM2D(
            lstm_filters, 3, use_peepholes=peepholes, kernel_initializer=CONVLSTM_INITIALIZER, name="convlstm"
        )(steps)
        features = SequenceToChannels(name="from_sequence")(states)
    else:
        features = conv_block(sequence, n_seq * lstm_filters, "recurrence")

    # 3. Flow head: SE, depthwise conv (Eq. 17), conv to two channels (Eq. 18).
    features = SqueezeExcitation(se_ratio, name="head_se")(features)
    features = FlowDepthwiseConv2D(
        3, padding="same", depthwise_initializer=DEPTHWISE_INITIALIZER, name="depthwise"
    )(features)
    flow = flow_field(features)

    # 4. Weighted spatial transformer (Eq. 19-20): one SE gate per field channel, then warp.
    #    With integration, the gated field is the velocity: SE first, then integrate, so the warp
    #    stays diffeomorphic (book/readings.md, "Diffeomorphic variant").
    if field_se:
        flow = SqueezeExcitation(se_ratio, name="field_se")(flow)
    flow = _displacement(flow, integration_steps)
    return keras.Model([moving, fixed], _registration_outputs(moving, flow), name=name)


MODELS = {"lstmcor": build_lstmcor, "voxelmorph": build_voxelmorph}
assert tuple(MODELS) == MODEL_NAMES, "lstmcor.settings.MODEL_NAMES and MODELS disagree"


def build_model(name: str, input_shape: Sequence[int] = (160, 192), **options) -> keras.Model:
    """Build ``"lstmcor"`` or ``"voxelmorph"`` by name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}.")
    return MODELS[name](input_shape=input_shape, **options)

