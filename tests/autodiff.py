"""Value and gradient with the active backend's own autodiff, for the tests.

A thin wrapper of :func:`lstmcor.autodiff.value_and_grad` that skips a test on a backend without
a gradient, instead of failing it.
"""
from __future__ import annotations

import keras
import pytest

from lstmcor import autodiff


def value_and_grad(fn, x):
    """``(fn(x), d fn / d x)`` as NumPy arrays, for a scalar ``fn``; skips on an unknown backend."""
    if keras.backend.backend() not in ("tensorflow", "jax", "torch"):
        pytest.skip(f"no gradient helper for backend {keras.backend.backend()}")
    return autodiff.value_and_grad(fn, x)
