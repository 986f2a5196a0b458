"""Value and gradient of a scalar function with the active Keras backend's own autodiff.

Keras 3 has no backend-neutral ``grad``; this module hides the three backends behind one call,
so that a chapter can differentiate a loss (e.g. with respect to a displacement field) in one line.
The backend is imported only when a gradient is asked for, never at module import.

Example:
    >>> import numpy as np
    >>> from keras import ops
    >>> value, grad = value_and_grad(lambda x: ops.sum(x ** 2), np.array([1.0, -2.0]))
    >>> float(value), grad.tolist()
    (5.0, [2.0, -4.0])
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def value_and_grad(fn: Callable, x) -> tuple[np.ndarray, np.ndarray]:
    """``(fn(x), d fn / d x)`` as NumPy arrays, for a function returning one scalar.

    Args:
        fn: a function of one tensor written with ``keras.ops``, returning a scalar.
        x: the point, an array of any shape (float32 or float64; the gradient has its shape
            and dtype). An input ``fn`` does not depend on gets a zero gradient.

    Returns:
        The value (a 0-d array) and the gradient (an array shaped like ``x``).

    Raises:
        ValueError: when ``x`` is not a floating-point array, ``fn`` does not return a scalar,
            or the Keras backend is not tensorflow, jax or torch.
    """
    import keras

    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ValueError(f"value_and_grad: x must be a floating-point array, got dtype {x.dtype}.")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(variable)
        _check_scalar(value)
        grad = tape.gradient(value, variable)
        return np.asarray(value), (np.zeros_like(x) if grad is None else np.asarray(grad))
    if backend == "jax":
        import jax

        def scalar(arg):
            out = fn(arg)
            _check_scalar(out)
            return out

        value, grad = jax.value_and_grad(scalar)(jax.numpy.asarray(x))
        return np.asarray(value), np.asarray(grad)
    if backend == "torch":
        import torch

        tensor = torch.tensor(x, requires_grad=True)
        value = fn(tensor)
        _check_scalar(value)
        if not value.requires_grad:
            return value.detach().cpu().numpy(), np.zeros_like(x)
        value.backward()
        return value.detach().cpu().numpy(), tensor.grad.cpu().numpy()
    raise ValueError(f"value_and_grad: no gradient for the Keras backend {backend!r} "
                     "(tensorflow, jax or torch).")


def gradient(fn: Callable, x) -> np.ndarray:
    """``d fn / d x`` as a NumPy array shaped like ``x``; see :func:`value_and_grad`.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> gradient(lambda x: ops.sum(3.0 * x), np.zeros((2, 2))).tolist()
        [[3.0, 3.0], [3.0, 3.0]]
    """
    return value_and_grad(fn, x)[1]


def _check_scalar(value) -> None:
    shape = tuple(getattr(value, "shape", ()))
    if int(np.prod(shape)) != 1:
        raise ValueError(f"value_and_grad: fn must return a scalar, got shape {shape}.")
