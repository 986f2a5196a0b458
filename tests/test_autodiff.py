"""lstmcor.autodiff against central finite differences and analytic gradients."""
from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from lstmcor.autodiff import gradient, value_and_grad
from lstmcor.transform import spatial_transform


def _finite_difference(fn, x, eps=1e-6):
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        plus, minus = (float(ops.convert_to_numpy(fn(x + sign * step))) for sign in (1, -1))
        numeric[index] = (plus - minus) / (2 * eps)
    return numeric


def test_gradient_of_a_polynomial_is_analytic():
    x = np.array([[0.5, -1.5], [2.0, 3.0]])
    value, grad = value_and_grad(lambda t: ops.sum(t ** 3 - 2.0 * t), x)
    assert np.isclose(float(value), np.sum(x ** 3 - 2 * x))
    assert np.allclose(grad, 3 * x ** 2 - 2)
    assert grad.shape == x.shape


def test_gradient_of_a_warp_matches_finite_differences():
    rng = np.random.default_rng(0)
    image = rng.random((1, 6, 7, 1))
    weights = rng.normal(size=(1, 6, 7, 1))
    flow = rng.integers(-1, 2, (1, 6, 7, 2)) + rng.uniform(0.2, 0.8, (1, 6, 7, 2))   # away from whole pixels

    def loss(f):
        return ops.sum(ops.multiply(spatial_transform(image, f), weights))

    auto = gradient(loss, flow)
    assert np.abs(auto).max() > 0.01
    assert np.allclose(auto, _finite_difference(loss, flow), atol=1e-6)


def test_an_input_the_function_ignores_gets_zero_gradient():
    assert np.array_equal(gradient(lambda t: ops.sum(ops.zeros((2,))), np.ones(3)), np.zeros(3))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="floating-point"):
        gradient(lambda t: ops.sum(t), np.arange(3))
    with pytest.raises(ValueError, match="scalar"):
        gradient(lambda t: t * 2.0, np.ones(3))
