"""Spatial transformer: warp an image by a dense displacement field (paper Eq. 19-20).

Convention (``book/readings.md``): a field ``D`` of shape ``[B, H, W, 2]`` in pixels, channel 0 along rows
and channel 1 along columns, and ``moved(p) = moving(p + D(p))``. This is the convention of
``scipy.ndimage.map_coordinates``, which the tests use as the reference. Samples that fall outside
the image take the value of the nearest border pixel (SciPy's ``mode="nearest"``).

Eq. 19 writes bilinear sampling as a sum over all pixels with the tent kernel
``max(0, 1 - |x - m|)``; only the four pixels around the sample point have a non-zero weight,
so the layer gathers those four and blends them.

:func:`integrate` turns a stationary velocity field into a displacement by scaling and squaring,
composing the map with itself through the same transformer; :class:`IntegrateVelocity` wraps it.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

INTERPOLATIONS = ("linear", "nearest")


def _sample_grid(flow):
    """Absolute sample coordinates ``p + D(p)``, clamped to the image: two ``[B, H, W]`` tensors."""
    shape = ops.shape(flow)
    height, width = shape[1], shape[2]
    rows = ops.cast(ops.arange(height), flow.dtype)[None, :, None]
    cols = ops.cast(ops.arange(width), flow.dtype)[None, None, :]
    y = rows + flow[..., 0]
    x = cols + flow[..., 1]
    # A diverging network can emit NaN; sample pixel 0 there instead of gathering out of bounds
    # (the NaN still reaches the loss through the field, so training stops with a clear message).
    y = ops.clip(ops.where(ops.isfinite(y), y, 0.0), 0.0, ops.cast(height - 1, flow.dtype))
    x = ops.clip(ops.where(ops.isfinite(x), x, 0.0), 0.0, ops.cast(width - 1, flow.dtype))
    return y, x


def _gather(image, y_index, x_index):
    """Pixels ``image[b, y, x]`` for integer index tensors ``[B, H, W]``; returns ``[B, H, W, C]``.

    Each sample gathers from its own image (``take_along_axis`` over the pixels of one sample),
    so a batch split across devices (data parallel) is gathered where it lives, with no
    all-gather of the whole batch.
    """
    shape = ops.shape(image)
    height, width, channels = shape[1], shape[2], shape[3]
    flat = ops.reshape(image, (-1, height * width, channels))
    index = ops.cast(y_index, "int32") * width + ops.cast(x_index, "int32")
    index = ops.reshape(index, (-1, height * width, 1))
    return ops.reshape(ops.take_along_axis(flat, index, axis=1), (-1, height, width, channels))


def spatial_transform(image, flow, interpolation: str = "linear"):
    """Warp ``image`` ``[B, H, W, C]`` by ``flow`` ``[B, H, W, 2]`` (pixels, rows first).

    Args:
        image: the moving image(s).
        flow: displacement field; ``moved(p) = image(p + flow(p))``.
        interpolation: ``"linear"`` (Eq. 19, differentiable in ``flow``) or ``"nearest"`` (label maps).

    Returns:
        The moved image, ``[B, H, W, C]``.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    image = ops.convert_to_tensor(image)
    flow = ops.cast(ops.convert_to_tensor(flow), image.dtype if "float" in str(image.dtype) else "float32")
    if "float" not in str(image.dtype):
        image = ops.cast(image, flow.dtype)
    shape = ops.shape(image)
    height, width = shape[1], shape[2]
    y, x = _sample_grid(flow)
    if interpolation == "nearest":
        return _gather(image, ops.round(y), ops.round(x))

    y0, x0 = ops.floor(y), ops.floor(x)
    y1 = ops.minimum(y0 + 1.0, ops.cast(height - 1, y.dtype))
    x1 = ops.minimum(x0 + 1.0, ops.cast(width - 1, x.dtype))
    # Tent weights of Eq. 19: max(0, 1 - |y - n|) is (1 - dy) at n = y0 and dy at n = y0 + 1.
    dy = ops.expand_dims(y - y0, -1)
    dx = ops.expand_dims(x - x0, -1)
    top = _gather(image, y0, x0) * (1.0 - dx) + _gather(image, y0, x1) * dx
    bottom = _gather(image, y1, x0) * (1.0 - dx) + _gather(image, y1, x1) * dx
    return top * (1.0 - dy) + bottom * dy


@keras.saving.register_keras_serializable(package="lstmcor")
class SpatialTransformer(keras.layers.Layer):
    """Keras layer around :func:`spatial_transform`, called on ``[image, flow]``.

    Args:
        interpolation: ``"linear"`` for images, ``"nearest"`` for label maps.
    """

    def __init__(self, interpolation: str = "linear", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
        self.interpolation = interpolation

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("SpatialTransformer is called on [image, flow].")
        image_shape, flow_shape = input_shape
        if len(image_shape) != 4:
            raise ValueError(f"SpatialTransformer: image must be [batch, height, width, channels], got {image_shape}.")
        if len(flow_shape) != 4 or flow_shape[-1] != 2:
            raise ValueError(f"SpatialTransformer: flow must be [batch, height, width, 2], got {flow_shape}.")
        for axis, name in ((1, "height"), (2, "width")):
            if None not in (image_shape[axis], flow_shape[axis]) and image_shape[axis] != flow_shape[axis]:
                raise ValueError(
                    f"SpatialTransformer: image {name} {image_shape[axis]} differs from flow {name} {flow_shape[axis]}."
                )

    def call(self, inputs):
        image, flow = inputs
        return spatial_transform(image, flow, self.interpolation)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"interpolation": self.interpolation})
        return config


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}.")
    return int(steps)


def integrate(velocity, steps: int = 7):
    """Displacement of the map ``exp(v)`` by scaling and squaring a stationary velocity ``v``.

    The velocity is divided by ``2**steps``, small enough for ``x -> x + v(x) / 2**steps`` to be
    close to the identity and fold-free; then the map is composed with itself ``steps`` times. With
    ``phi(x) = x + d(x)``, ``phi(phi(x)) = x + d(x) + d(x + d(x))``, so one squaring is
    ``d <- d + spatial_transform(d, d)``: the same bilinear sampling and border clamping as the
    transformer, in the same convention (pixels, channel 0 along rows).

    Args:
        velocity: ``[B, H, W, 2]`` stationary velocity field in pixels.
        steps: number of squarings, an integer >= 0; ``0`` returns ``velocity`` unchanged.

    Returns:
        The displacement field ``[B, H, W, 2]``.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> v = np.full((1, 8, 8, 2), 1.5, "float32")  # a constant velocity is a translation
        >>> d = ops.convert_to_numpy(integrate(v, steps=4))
        >>> bool(np.allclose(d, 1.5))
        True
    """
    steps = _check_steps(steps)
    velocity = ops.convert_to_tensor(velocity)
    if "float" not in str(velocity.dtype):
        velocity = ops.cast(velocity, "float32")
    shape = tuple(velocity.shape)
    if len(shape) != 4 or shape[-1] != 2:
        raise ValueError(f"integrate: velocity must be [batch, height, width, 2], got shape {shape}.")
    if steps == 0:
        return velocity
    disp = velocity / float(2**steps)
    for _ in range(steps):
        disp = disp + spatial_transform(disp, disp)
    return disp


@keras.saving.register_keras_serializable(package="lstmcor")
class IntegrateVelocity(keras.layers.Layer):
    """Keras layer around :func:`integrate`: velocity ``[B, H, W, 2]`` in, displacement out.

    Args:
        steps: number of squarings (integer >= 0); 7 divides the velocity by 128.

    Example:
        >>> import numpy as np
        >>> layer = IntegrateVelocity(steps=5)
        >>> tuple(layer(np.zeros((2, 16, 16, 2), "float32")).shape)
        (2, 16, 16, 2)
    """

    def __init__(self, steps: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.steps = _check_steps(steps)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] != 2:
            raise ValueError(f"IntegrateVelocity: velocity must be [batch, height, width, 2], got {input_shape}.")

    def call(self, velocity):
        return integrate(velocity, self.steps)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"steps": self.steps})
        return config


def _nearest_numpy(batch: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``batch[b, round(p + flow)]`` for ``[B, H, W, C]``: the nearest path of :func:`spatial_transform`, in NumPy."""
    height, width = batch.shape[1:3]
    rows = np.arange(height, dtype=np.float32)[None, :, None]
    cols = np.arange(width, dtype=np.float32)[None, None, :]
    y = np.clip(np.rint(rows + flow[..., 0]), 0, height - 1).astype(np.intp)
    x = np.clip(np.rint(cols + flow[..., 1]), 0, width - 1).astype(np.intp)
    b = np.arange(batch.shape[0])[:, None, None]
    return batch[b, y, x]


def warp(image: np.ndarray, flow: np.ndarray, interpolation: str = "linear") -> np.ndarray:
    """NumPy convenience: warp one image ``[H, W]`` or a batch ``[B, H, W, C]`` by ``flow``.

    Integer label maps are warped with ``"nearest"`` and come back with their dtype, exactly: the
    nearest path rounds the sample points ``p + flow(p)`` as :func:`spatial_transform` does (float32,
    half to even, clamped to the image) and gathers the array itself in NumPy, with no float32
    round trip, so ids above 2**24 (and up to int64) survive unchanged.

    Args:
        image: ``[H, W]``, ``[H, W, C]`` or ``[B, H, W, C]``.
        flow: ``[H, W, 2]`` or ``[B, H, W, 2]``.
        interpolation: ``"linear"`` or ``"nearest"``.

    Returns:
        The moved image as a NumPy array shaped like ``image``.
    """
    image = np.asarray(image)
    flow = np.asarray(flow, dtype="float32")
    original_shape, dtype = image.shape, image.dtype
    if image.ndim == 2:
        batch = image[None, :, :, None]
    elif image.ndim == 3:
        batch = image[None]
    elif image.ndim == 4:
        batch = image
    else:
        raise ValueError(f"warp: image must be [H, W], [H, W, C] or [B, H, W, C], got shape {image.shape}.")
    if flow.ndim == 3:
        flow = flow[None]
    if flow.ndim != 4 or flow.shape[-1] != 2 or flow.shape[1:3] != batch.shape[1:3]:
        raise ValueError(f"warp: flow shape {flow.shape} does not fit image shape {image.shape}; "
                         "expected [B, H, W, 2].")
    if not np.all(np.isfinite(flow)):
        raise ValueError("warp: flow contains NaN or infinite values.")
    if flow.shape[0] != batch.shape[0]:
        flow = np.broadcast_to(flow, (batch.shape[0],) + flow.shape[1:])
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    if interpolation == "nearest":
        return _nearest_numpy(batch, flow).reshape(original_shape)
    moved = ops.convert_to_numpy(spatial_transform(batch.astype("float32"), flow, interpolation))
    if dtype.kind in "iub":
        moved = np.rint(moved).astype(dtype)
    return moved.reshape(original_shape)
