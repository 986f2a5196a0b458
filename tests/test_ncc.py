"""Local normalised cross-correlation (lstmcor.losses.ncc, NCC) against a SciPy reference.

The reference takes local sums with scipy.ndimage.uniform_filter(mode="constant", cval=0): the
same zero padding as the convolution with "same" padding, which VoxelMorph uses.
"""
import keras
import numpy as np
import pytest
from keras import ops
from scipy import ndimage

from lstmcor import MSE, NCC, ncc
from autodiff import value_and_grad

H, W = 20, 24


def _np(x):
    return ops.convert_to_numpy(x)


def _reference(fixed, moved, window, eps=1e-5):
    """Per-sample mean of cross^2 / (I_var J_var + eps) in float64, window sums over all channels."""
    fixed, moved = fixed.astype("float64"), moved.astype("float64")
    channels = fixed.shape[-1]
    n = window * window * channels

    def box(x):  # sum over the window x window square (zeros outside) and over the channels
        return sum(ndimage.uniform_filter(x[..., c], size=window, mode="constant", cval=0.0)
                   for c in range(channels)) * window * window

    out = []
    for i, j in zip(fixed, moved):
        i_sum, j_sum = box(i), box(j)
        i2_sum, j2_sum, ij_sum = box(i * i), box(j * j), box(i * j)
        # Centred moments, written directly: sum (I - u_I)(J - u_J) over the padded window.
        u_i, u_j = i_sum / n, j_sum / n
        cross = ij_sum - n * u_i * u_j
        i_var = i2_sum - n * u_i * u_i
        j_var = j2_sum - n * u_j * u_j
        out.append(np.mean(cross**2 / (i_var * j_var + eps)))
    return np.asarray(out)


def _pair(rng, channels=1, batch=2):
    fixed = rng.uniform(size=(batch, H, W, channels)).astype("float32")
    # Related but not identical: part signal, part noise, a different contrast.
    moved = (0.6 * fixed + 0.4 * rng.uniform(size=fixed.shape) - 0.2).astype("float32")
    return fixed, moved


# ----------------------------------------------------------------------------- against SciPy
@pytest.mark.parametrize("window", [1, 3, 5, 9, 25])
@pytest.mark.parametrize("channels", [1, 3])
def test_matches_uniform_filter_reference(window, channels):
    # float32 sums of at most 25 * 25 * 3 products of values in [0, 1]: the relative rounding of
    # the moments is ~1e-6 and we measure at most 1.2e-6 on cc (in [0, 1]); the test allows 1e-5.
    # window 25 is wider than the image: every window reaches into the zero padding.
    fixed, moved = _pair(np.random.default_rng(window + 10 * channels), channels)
    got = _np(ncc(fixed, moved, window=window))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, _reference(fixed, moved, window), rtol=0, atol=1e-5)


def test_eps_is_used():
    fixed, moved = _pair(np.random.default_rng(1))
    np.testing.assert_allclose(_np(ncc(fixed, moved, window=3, eps=0.5)), _reference(fixed, moved, 3, eps=0.5),
                               rtol=0, atol=1e-4)


def test_identical_images_score_one():
    # cc = I_var^2 / (I_var^2 + eps); with I_var ~ 81 / 12 for uniform noise it is 1 - 2e-7.
    fixed, _ = _pair(np.random.default_rng(2))
    np.testing.assert_allclose(_np(ncc(fixed, fixed)), 1.0, rtol=0, atol=1e-4)
    # Local NCC ignores a change of contrast and (being squared) a sign flip. A change of
    # brightness is ignored only where the window stays inside the image: the zero padding does
    # not shift with it, so windows on the border lose and the mean drops below 1 (as in SciPy).
    for moved in (3.0 * fixed, -fixed):
        np.testing.assert_allclose(_np(ncc(fixed, moved)), 1.0, rtol=0, atol=1e-4)
    brighter = fixed + 1.0
    shifted = _np(ncc(fixed, brighter))
    np.testing.assert_allclose(shifted, _reference(fixed, brighter, 9), rtol=0, atol=1e-4)
    assert np.all(shifted < 0.999)
    # Unrelated noise scores far lower.
    noise = np.random.default_rng(3).uniform(size=fixed.shape).astype("float32")
    assert np.all(_np(ncc(fixed, noise)) < 0.3)


def test_constant_images_give_finite_values_and_gradients():
    # Inside a constant image both variances are 0 and cc = 0 / eps = 0; only windows that reach
    # into the zero padding vary. The value matches the reference and the gradient is finite.
    constant = np.full((2, H, W, 1), 0.5, "float32")
    value = _np(ncc(constant, constant))
    assert np.all(np.isfinite(value))
    np.testing.assert_allclose(value, _reference(constant, constant, 9), rtol=0, atol=1e-4)
    # A constant patch in the middle of an image far from the border contributes cc ~ 0.
    big = np.full((1, 40, 40, 1), 0.5, "float32")
    np.testing.assert_allclose(_np(ncc(big, big, window=3)), _reference(big, big, 3), rtol=0, atol=1e-4)
    assert _reference(big, big, 3)[0] < 0.15  # only the outer ring of 40 x 40 pixels scores

    _, grad = value_and_grad(lambda m: ops.sum(ncc(constant, m)), constant)
    assert np.all(np.isfinite(grad))
    value, grad = value_and_grad(lambda m: ops.mean(NCC()(constant, m)), constant)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_gradient_is_finite_on_random_images():
    fixed, moved = _pair(np.random.default_rng(4))
    value, grad = value_and_grad(lambda m: ops.sum(ncc(fixed, m)), moved)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


# ----------------------------------------------------------------------------- the loss
def test_loss_is_minus_ncc_and_lowest_for_a_match():
    fixed, moved = _pair(np.random.default_rng(5))
    loss = NCC(window=5)
    np.testing.assert_allclose(float(loss(fixed, moved)), -np.mean(_reference(fixed, moved, 5)), rtol=0, atol=1e-4)
    assert float(loss(fixed, fixed)) < float(loss(fixed, moved))
    assert float(loss(fixed, fixed)) == pytest.approx(-1.0, abs=1e-4)


def test_config_round_trip():
    loss = NCC(window=7, eps=1e-3, name="local_ncc")
    config = loss.get_config()
    assert config["window"] == 7 and config["eps"] == 1e-3 and config["name"] == "local_ncc"
    clone = NCC.from_config(config)
    assert (clone.window, clone.eps, clone.name) == (7, 1e-3, "local_ncc")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, NCC) and again.window == 7
    fixed, moved = _pair(np.random.default_rng(6))
    assert float(again(fixed, moved)) == pytest.approx(float(loss(fixed, moved)), abs=1e-6)


def test_mse_is_unchanged_by_the_addition():
    fixed, moved = _pair(np.random.default_rng(7))
    assert float(MSE()(fixed, moved)) == pytest.approx(float(np.mean((fixed - moved) ** 2)), rel=1e-5)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("window", [0, -3, 4, 2.0, "9", None, True])
def test_window_must_be_odd_and_positive(window):
    image = np.zeros((1, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match="window"):
        ncc(image, image, window=window)
    with pytest.raises(ValueError, match="window"):
        NCC(window=window)


def test_bad_shapes_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(8, 8, 1\)"):
        ncc(np.zeros((8, 8, 1), "float32"), np.zeros((8, 8, 1), "float32"))
    with pytest.raises(ValueError, match=r"\(1, 8, 9, 1\)"):
        ncc(np.zeros((1, 8, 8, 1), "float32"), np.zeros((1, 8, 9, 1), "float32"))


def test_loss_compiles_into_a_model_and_trains():
    # Under fit the loss runs traced (tf.function / jax.jit) with an unknown batch size.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((H, W, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=NCC(window=5))
    fixed, moved = _pair(np.random.default_rng(8), batch=4)
    history = model.fit(moved, fixed, batch_size=2, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert -1.0 <= history.history["loss"][-1] <= 0.0


@pytest.mark.parametrize("loss, lam, expected", [
    ("mse", None, 0.003),  # MSE's, measured on validation pairs (book/readings.md, "Weight lambda")
    ("ncc", None, 0.3),   # NCC's own, measured on validation pairs
    ("ncc", 1, 1.0),      # a weight given is kept
    ("mse", 0.0, 0.0),
])
def test_each_loss_has_its_own_default_lambda(loss, lam, expected):
    from lstmcor.training import compile_model, default_lambda

    assert default_lambda(loss, lam) == expected
    inputs = keras.Input((H, W, 1))
    model = keras.Model(inputs, [inputs, keras.layers.Conv2D(2, 3, padding="same")(inputs)])
    compile_model(model, lam=lam, loss=loss, jit_compile=False)
    assert model.get_compile_config()["loss_weights"] == [1.0, expected]
    assert type(model.loss[0]).__name__ == loss.upper()


def test_an_unknown_loss_is_named_before_its_lambda():
    from lstmcor.training import default_lambda

    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        default_lambda("l1")
