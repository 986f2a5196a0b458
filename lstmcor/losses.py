"""Training loss (paper Eq. 21-23): image similarity plus a smoothness penalty on the field.

``L = MSE(I_F, I_D) + lambda * Grad(D)``. The paper writes the smoothness term as a sum over
pixels of ``||grad D||^2`` (Eq. 22); like VoxelMorph we take the mean of squared forward
differences, averaged over the two axes, which only rescales ``lambda``.

Beside the paper's MSE, :func:`ncc` is VoxelMorph's local normalised cross-correlation, a
similarity that ignores local changes of brightness and contrast; :class:`NCC` is its loss.
"""
from __future__ import annotations

from numbers import Integral

import keras
from keras import ops

from lstmcor.settings import LAMBDA


def mse(fixed, moved):
    """Eq. 21: mean squared intensity difference per sample, shape ``[B]``."""
    diff = ops.convert_to_tensor(fixed) - ops.convert_to_tensor(moved)
    return ops.mean(ops.reshape(ops.square(diff), (ops.shape(diff)[0], -1)), axis=-1)


def _check_window(window) -> int:
    if isinstance(window, bool) or not isinstance(window, Integral) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer, got {window!r}.")
    return int(window)


def ncc(fixed, moved, window: int = 9, eps: float = 1e-5):
    """Local normalised cross-correlation per sample, shape ``[B]``; 1 where the images agree.

    Follows VoxelMorph's TensorFlow ``NCC`` (``voxelmorph/tf/losses.py``): sums over a
    ``window x window`` square, taken by convolving with a box of ones with ``"same"`` zero padding
    (pixels outside the image count as zeros) and summed over the channels too, so
    ``n = window**2 * C`` values enter each window. With ``u_I = I_sum / n`` and ``u_J = J_sum / n``::

        cross = IJ_sum - u_J * I_sum - u_I * J_sum + u_I * u_J * n
        I_var = I2_sum - 2 * u_I * I_sum + u_I * u_I * n      (J_var likewise)
        cc    = cross**2 / (I_var * J_var + eps)

    and the result is the mean of ``cc`` over the pixels of each sample. ``cc`` is a squared
    correlation, in ``[0, 1]``: an inverted contrast scores as high as a match. ``eps`` keeps it
    finite (near 0) on constant patches, where both variances vanish. Because of the zero padding,
    windows that overlap the border are never constant, so even a constant image scores above 0.

    Args:
        fixed, moved: ``[B, H, W, C]`` images of the same shape.
        window: side of the square window, an odd positive integer (VoxelMorph uses 9).
        eps: added to the denominator.

    Returns:
        Mean ``cc`` per sample, ``[B]``. The loss :class:`NCC` is its negative.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> image = np.random.default_rng(0).uniform(size=(1, 32, 32, 1)).astype("float32")
        >>> round(float(ops.convert_to_numpy(ncc(image, image))[0]), 3)
        1.0
    """
    window = _check_window(window)
    fixed, moved = ops.convert_to_tensor(fixed), ops.convert_to_tensor(moved)
    shape, other = tuple(fixed.shape), tuple(moved.shape)
    if len(shape) != 4 or len(other) != 4:
        raise ValueError(f"ncc: images must be [batch, height, width, channels], got shapes {shape} and {other}.")
    if any(a is not None and b is not None and a != b for a, b in zip(shape[1:], other[1:])):
        raise ValueError(f"ncc: fixed and moved differ in shape, {shape} against {other}.")
    dtype = fixed.dtype if "float" in str(fixed.dtype) else "float32"
    fixed, moved = ops.cast(fixed, dtype), ops.cast(moved, dtype)
    channels = shape[-1]
    kernel = ops.ones((window, window, channels, 1), dtype=dtype)

    def box_sum(x):
        return ops.conv(x, kernel, strides=1, padding="same")

    n = float(window * window * channels)
    i_sum, j_sum = box_sum(fixed), box_sum(moved)
    i2_sum, j2_sum, ij_sum = box_sum(fixed * fixed), box_sum(moved * moved), box_sum(fixed * moved)
    u_i, u_j = i_sum / n, j_sum / n
    cross = ij_sum - u_j * i_sum - u_i * j_sum + u_i * u_j * n
    i_var = i2_sum - 2.0 * u_i * i_sum + u_i * u_i * n
    j_var = j2_sum - 2.0 * u_j * j_sum + u_j * u_j * n
    cc = cross * cross / (i_var * j_var + eps)
    return ops.mean(ops.reshape(cc, (ops.shape(cc)[0], -1)), axis=-1)


def grad_l2(flow):
    """Eq. 22 as a mean: average over the axes of the mean squared forward difference, shape ``[B]``."""
    flow = ops.convert_to_tensor(flow)
    batch = ops.shape(flow)[0]
    d_rows = flow[:, 1:, :, :] - flow[:, :-1, :, :]
    d_cols = flow[:, :, 1:, :] - flow[:, :, :-1, :]
    per_axis = [ops.mean(ops.reshape(ops.square(d), (batch, -1)), axis=-1) for d in (d_rows, d_cols)]
    return (per_axis[0] + per_axis[1]) / 2.0


def total_loss(fixed, moved, flow, lam: float = LAMBDA):
    """Eq. 23: ``MSE(fixed, moved) + lam * Grad(flow)``, averaged over the batch (a scalar).

    ``lam`` defaults to the course's weight for MSE, :data:`lstmcor.settings.LAMBDA`.
    """
    return ops.mean(mse(fixed, moved) + lam * grad_l2(flow))


@keras.saving.register_keras_serializable(package="lstmcor")
class MSE(keras.losses.Loss):
    """Keras loss for Eq. 21; ``y_true`` is the fixed image, ``y_pred`` the moved image."""

    def __init__(self, name: str = "mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return mse(y_true, y_pred)


@keras.saving.register_keras_serializable(package="lstmcor")
class Grad(keras.losses.Loss):
    """Keras loss for Eq. 22 (diffusion regulariser); ``y_true`` is ignored, ``y_pred`` is the field."""

    def __init__(self, name: str = "grad", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return grad_l2(y_pred)


@keras.saving.register_keras_serializable(package="lstmcor")
class NCC(keras.losses.Loss):
    """Keras loss ``-ncc(y_true, y_pred)``: the fixed image first, the moved image second.

    The sign follows VoxelMorph: the loss lies in ``[-1, 0]`` and is lowest (``-1``) when the
    images are perfectly correlated in every window, so minimising it maximises the similarity.
    :class:`MSE` stays the default similarity of the package; this is an alternative.

    Args:
        window: side of the square window, an odd positive integer.
        eps: added to the denominator of :func:`ncc`.

    Example:
        >>> import numpy as np
        >>> image = np.random.default_rng(0).uniform(size=(2, 32, 32, 1)).astype("float32")
        >>> round(float(NCC(window=5)(image, image)), 3)
        -1.0
    """

    def __init__(self, window: int = 9, eps: float = 1e-5, name: str = "ncc", **kwargs):
        super().__init__(name=name, **kwargs)
        self.window = _check_window(window)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        return -ncc(y_true, y_pred, self.window, self.eps)

    def get_config(self):
        config = super().get_config()
        config.update({"window": self.window, "eps": self.eps})
        return config
