"""Scaling and squaring (lstmcor.transform.integrate) against exact cases and a SciPy reference.

Convention: a field is [B, H, W, 2] in pixels, channel 0 along rows, and the map is x -> x + d(x);
composing two maps samples the second field with map_coordinates order 1, border clamped.
"""
import keras
import numpy as np
import pytest
from keras import ops
from scipy import ndimage

from lstmcor import IntegrateVelocity, folding_fraction, integrate, jacobian_determinant, spatial_transform
from lstmcor.transform import integrate as integrate_from_module
from autodiff import value_and_grad

H, W = 40, 48


def _np(x):
    return ops.convert_to_numpy(x)


def _smooth_field(rng, batch=2, amplitude=3.0, sigma=5.0):
    """Gaussian-filtered noise scaled so that its largest component is ``amplitude`` pixels."""
    noise = rng.normal(size=(batch, H, W, 2))
    field = np.stack(
        [np.stack([ndimage.gaussian_filter(noise[b, ..., c], sigma) for c in range(2)], -1) for b in range(batch)]
    )
    return (field * amplitude / np.abs(field).max()).astype("float32")


def _compose(first, second):
    """Displacement of ``x -> phi_second(phi_first(x))``: ``d1(x) + d2(x + d1(x))``."""
    return first + _np(spatial_transform(second, first))


def _scipy_integrate(velocity, steps):
    """Independent scaling and squaring in float64 with scipy.ndimage.map_coordinates."""
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    disp = velocity.astype("float64") / 2.0**steps
    for _ in range(steps):
        new = np.empty_like(disp)
        for b in range(disp.shape[0]):
            coords = np.stack([rows + disp[b, ..., 0], cols + disp[b, ..., 1]])
            for c in range(2):
                new[b, ..., c] = disp[b, ..., c] + ndimage.map_coordinates(disp[b, ..., c], coords, order=1,
                                                                           mode="nearest")
        disp = new
    return disp


# ----------------------------------------------------------------------------- exact cases
def test_module_exports_the_same_function():
    assert integrate is integrate_from_module


@pytest.mark.parametrize("steps", [0, 1, 7])
@pytest.mark.parametrize(("dy", "dx"), [(2.5, -1.25), (-3.0, 4.0), (0.3, 0.0)])
def test_constant_velocity_integrates_to_the_same_translation(steps, dy, dx):
    # A constant field sampled anywhere, clamped or not, returns the constant, so each squaring
    # doubles it exactly: v / 2**steps doubled steps times is v, at the border too. Only float32
    # rounding of the bilinear blend (a few ulps of a few pixels) separates the result from v.
    velocity = np.zeros((2, H, W, 2), "float32")
    velocity[..., 0], velocity[..., 1] = dy, dx
    disp = _np(integrate(velocity, steps=steps))
    np.testing.assert_allclose(disp, velocity, rtol=1e-6, atol=1e-6)


def test_zero_steps_returns_the_velocity():
    velocity = _smooth_field(np.random.default_rng(0))
    np.testing.assert_array_equal(_np(integrate(velocity, steps=0)), velocity)


def test_zero_velocity_stays_zero():
    np.testing.assert_array_equal(_np(integrate(np.zeros((1, H, W, 2), "float32"))), 0.0)


# ----------------------------------------------------------------------------- against SciPy
@pytest.mark.parametrize("steps", [1, 4, 7])
def test_matches_scipy_scaling_and_squaring(steps):
    # The reference runs in float64; ours in float32. Each squaring adds rounding of order 1e-7
    # relative to fields of a few pixels; we measure at most 1.1e-6 px after 7 squarings, so the
    # test allows 1e-5 px.
    velocity = _smooth_field(np.random.default_rng(1), amplitude=4.0, sigma=4.0)
    expected = _scipy_integrate(velocity, steps)
    np.testing.assert_allclose(_np(integrate(velocity, steps=steps)), expected, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- properties
def test_integrating_v_and_minus_v_gives_inverse_maps():
    # exp(v) and exp(-v) are inverse maps in the continuous setting. Discretely, every squaring and
    # the final composition resample a field bilinearly, which errs by about |second derivative|;
    # for a field of 3 px varying over ~5 px (sigma 5) we measure a mean residual of 0.005 px and a
    # maximum of 0.018 px inside the image. The test allows 0.02 px mean and 0.1 px maximum. The
    # border is left out (5 px, more than the largest displacement): where a sample leaves the
    # image it is clamped, and clamped maps are not invertible.
    rng = np.random.default_rng(2)
    velocity = _smooth_field(rng, amplitude=3.0, sigma=5.0)
    forward, backward = _np(integrate(velocity)), _np(integrate(-velocity))
    inside = (slice(None), slice(5, H - 5), slice(5, W - 5))
    for first, second in ((forward, backward), (backward, forward)):
        residual = np.linalg.norm(_compose(first, second), axis=-1)[inside]
        assert residual.mean() < 0.02
        assert residual.max() < 0.1
    # For contrast: the plain fields v and -v are far from inverse (mean residual 0.15 px here).
    naive = np.linalg.norm(_compose(velocity, -velocity), axis=-1)[inside]
    assert naive.mean() > 5 * np.linalg.norm(_compose(forward, backward), axis=-1)[inside].mean()


def test_a_folding_displacement_does_not_fold_once_integrated():
    # A Gaussian bump of height A along rows, width s: its row derivative reaches -A / s * exp(-1/2),
    # so for A = 10, s = 4 the plain map x + v(x) has det J = 1 + dv/drow < 0 on a band.
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    velocity = np.zeros((1, H, W, 2), "float32")
    velocity[0, ..., 0] = 10.0 * np.exp(-((rows - H / 2) ** 2 + (cols - W / 2) ** 2) / (2 * 4.0**2))
    assert folding_fraction(velocity) > 0
    disp = _np(integrate(velocity, steps=7))
    assert folding_fraction(disp) == 0.0
    assert jacobian_determinant(disp).min() > 0.1
    # It still moves pixels by several pixels: integration did not just shrink the field.
    assert np.abs(disp).max() > 5.0


def test_gradient_wrt_velocity_is_finite():
    rng = np.random.default_rng(3)
    velocity = _smooth_field(rng, batch=1, amplitude=4.0)
    target = rng.normal(size=(1, H, W, 2)).astype("float32")

    def fn(v):
        return ops.sum(ops.square(integrate(v, steps=5) - target))

    value, grad = value_and_grad(fn, velocity)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 0


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("steps", [-1, 2.0, "7", None, True])
def test_bad_steps_raise(steps):
    velocity = np.zeros((1, 8, 8, 2), "float32")
    with pytest.raises(ValueError, match="steps"):
        integrate(velocity, steps=steps)
    with pytest.raises(ValueError, match="steps"):
        IntegrateVelocity(steps=steps)


@pytest.mark.parametrize("shape", [(8, 8, 2), (1, 8, 8, 3), (1, 8, 8)])
def test_bad_shapes_raise_and_name_the_shape(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        integrate(np.zeros(shape, "float32"))


# ----------------------------------------------------------------------------- the layer
def test_layer_matches_function_and_config_round_trips():
    layer = IntegrateVelocity(steps=5, name="integrate")
    config = layer.get_config()
    assert config["steps"] == 5
    clone = IntegrateVelocity.from_config(config)
    assert clone.steps == 5 and clone.name == "integrate"
    velocity = _smooth_field(np.random.default_rng(4))
    np.testing.assert_array_equal(_np(layer(velocity)), _np(integrate(velocity, steps=5)))
    with pytest.raises(ValueError, match=r"\[batch, height, width, 2\]"):
        IntegrateVelocity()(np.zeros((1, 8, 8, 3), "float32"))


def test_model_with_the_layer_saves_and_loads_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((H, W, 2))
    velocity = keras.layers.Conv2D(2, 3, padding="same", name="velocity")(inputs)
    disp = IntegrateVelocity(steps=4, name="integrate")(velocity)
    model = keras.Model(inputs, disp)
    x = _smooth_field(np.random.default_rng(5), amplitude=3.0)
    expected = _np(model(x))
    assert np.abs(expected).max() > 0.1
    # Traced (tf.function / jax.jit, unknown batch size) gives the same as eager.
    np.testing.assert_allclose(model.predict(x, batch_size=1, verbose=0), expected, rtol=0, atol=1e-5)
    path = tmp_path / "integrate.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("integrate"), IntegrateVelocity)
    assert loaded.get_layer("integrate").steps == 4
    np.testing.assert_allclose(_np(loaded(x)), expected, rtol=0, atol=1e-6)
