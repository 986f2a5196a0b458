"""Value and gradient with the active backend's own autodiff, for the tests only.

The package never calls a backend directly; the tests may, to check gradients against finite
differences or for finiteness.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest


def value_and_grad(fn, x):
    """``(fn(x), d fn / d x)`` as NumPy arrays, for a scalar ``fn``; skips on an unknown backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        var = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(var)
        return np.asarray(value), tape.gradient(value, var).numpy()
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(jax.numpy.asarray(x))
        return np.asarray(value), np.asarray(grad)
    if backend == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        value = fn(t)
        value.backward()
        return value.detach().cpu().numpy(), t.grad.cpu().numpy()
    pytest.skip(f"no gradient helper for backend {backend}")
