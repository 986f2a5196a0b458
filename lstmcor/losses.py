"""Training loss (paper Eq. 21-23): image similarity plus a smoothness penalty on the field.

``L = MSE(I_F, I_D) + lambda * Grad(D)``. The paper writes the smoothness term as a sum over
pixels of ``||grad D||^2`` (Eq. 22); like VoxelMorph we take the mean of squared forward
differences, averaged over the two axes, which only rescales ``lambda``.
"""
from __future__ import annotations

import keras
from keras import ops


def mse(fixed, moved):
    """Eq. 21: mean squared intensity difference per sample, shape ``[B]``."""
    diff = ops.convert_to_tensor(fixed) - ops.convert_to_tensor(moved)
    return ops.mean(ops.reshape(ops.square(diff), (ops.shape(diff)[0], -1)), axis=-1)


def grad_l2(flow):
    """Eq. 22 as a mean: average over the axes of the mean squared forward difference, shape ``[B]``."""
    flow = ops.convert_to_tensor(flow)
    batch = ops.shape(flow)[0]
    d_rows = flow[:, 1:, :, :] - flow[:, :-1, :, :]
    d_cols = flow[:, :, 1:, :] - flow[:, :, :-1, :]
    per_axis = [ops.mean(ops.reshape(ops.square(d), (batch, -1)), axis=-1) for d in (d_rows, d_cols)]
    return (per_axis[0] + per_axis[1]) / 2.0


def total_loss(fixed, moved, flow, lam: float = 0.01):
    """Eq. 23: ``MSE(fixed, moved) + lam * Grad(flow)``, averaged over the batch (a scalar)."""
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
