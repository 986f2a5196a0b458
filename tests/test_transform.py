"""Spatial transformer (Eq. 19-20) against exact cases and scipy.ndimage.map_coordinates.

Convention: moved(p) = moving(p + D(p)), channel 0 along rows, border samples clamp ("nearest").
"""
import keras
import numpy as np
import pytest
from keras import ops
from scipy import ndimage

from lstmcor import SpatialTransformer, spatial_transform, warp
from autodiff import value_and_grad

H, W = 16, 20


def _image(rng, batch=2, channels=1):
    return rng.uniform(0.0, 1.0, size=(batch, H, W, channels)).astype("float32")


def _smooth_field(rng, batch=2, amplitude=4.0, sigma=3.0):
    """Gaussian-filtered noise scaled to ``amplitude`` pixels; some samples land outside the image."""
    noise = rng.normal(size=(batch, H, W, 2))
    field = np.stack(
        [np.stack([ndimage.gaussian_filter(noise[b, ..., c], sigma) for c in range(2)], -1) for b in range(batch)]
    )
    field *= amplitude / np.abs(field).max()
    return field.astype("float32")


def _map_coordinates(image, flow, order):
    """SciPy reference, one sample and channel at a time, in float64."""
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    out = np.empty(image.shape, "float64")
    for b in range(image.shape[0]):
        coords = np.stack([rows + flow[b, ..., 0].astype("float64"), cols + flow[b, ..., 1].astype("float64")])
        for c in range(image.shape[-1]):
            out[b, ..., c] = ndimage.map_coordinates(image[b, ..., c].astype("float64"), coords, order=order,
                                                     mode="nearest")
    return out


def _np(x):
    return ops.convert_to_numpy(x)


# ----------------------------------------------------------------------------- exact cases
@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_zero_field_is_identity(interpolation):
    rng = np.random.default_rng(0)
    image = _image(rng, channels=3)
    flow = np.zeros((2, H, W, 2), "float32")
    np.testing.assert_array_equal(_np(spatial_transform(image, flow, interpolation)), image)
    np.testing.assert_array_equal(_np(SpatialTransformer(interpolation)([image, flow])), image)


@pytest.mark.parametrize(("dy", "dx"), [(2, 3), (-1, 4), (3, -2), (0, -5)])
@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_integer_shift_is_a_shifted_array(dy, dx, interpolation):
    rng = np.random.default_rng(1)
    image = _image(rng)
    flow = np.zeros((2, H, W, 2), "float32")
    flow[..., 0], flow[..., 1] = dy, dx
    moved = _np(spatial_transform(image, flow, interpolation))
    # moved[i, j] = image[i + dy, j + dx] wherever that pixel exists.
    rows = slice(max(0, -dy), H - max(0, dy))
    cols = slice(max(0, -dx), W - max(0, dx))
    src_rows = slice(max(0, dy), H + min(0, dy))
    src_cols = slice(max(0, dx), W + min(0, dx))
    np.testing.assert_allclose(moved[:, rows, cols], image[:, src_rows, src_cols], rtol=0, atol=1e-6)
    # Same thing with np.roll on the valid region.
    rolled = np.roll(image, shift=(-dy, -dx), axis=(1, 2))
    np.testing.assert_allclose(moved[:, rows, cols], rolled[:, rows, cols], rtol=0, atol=1e-6)


def test_shift_beyond_border_takes_the_border_value():
    rng = np.random.default_rng(2)
    image = _image(rng)
    flow = np.zeros((2, H, W, 2), "float32")
    flow[..., 1] = 100.0  # every sample far right of the image
    moved = _np(spatial_transform(image, flow))
    np.testing.assert_allclose(moved, np.repeat(image[:, :, -1:], W, axis=2), atol=1e-6)


def test_half_pixel_shift_averages_neighbours():
    """Eq. 19 by hand: a shift of 0.5 along columns is the mean of two neighbours."""
    rng = np.random.default_rng(3)
    image = _image(rng)
    flow = np.zeros((2, H, W, 2), "float32")
    flow[..., 1] = 0.5
    moved = _np(spatial_transform(image, flow))
    np.testing.assert_allclose(moved[:, :, :-1], 0.5 * (image[:, :, :-1] + image[:, :, 1:]), atol=1e-6)


def test_axis_convention_channel0_is_rows():
    image = np.zeros((1, H, W, 1), "float32")
    image[0, 5, 7, 0] = 1.0
    flow = np.zeros((1, H, W, 2), "float32")
    flow[..., 0] = 2.0  # moved(p) = image(p + (2, 0)): the bright pixel appears 2 rows up
    moved = _np(spatial_transform(image, flow))
    assert moved[0, 3, 7, 0] == pytest.approx(1.0)
    assert moved.sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- SciPy reference
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smooth_field_matches_map_coordinates_linear(seed):
    rng = np.random.default_rng(10 + seed)
    image = _image(rng, channels=2)
    flow = _smooth_field(rng, amplitude=5.0)
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    y, x = rows + flow[..., 0], cols + flow[..., 1]
    outside = (y < 0) | (y > H - 1) | (x < 0) | (x > W - 1)
    assert outside.any() and not outside.all()  # the border rule is exercised
    expected = _map_coordinates(image, flow, order=1)
    np.testing.assert_allclose(_np(spatial_transform(image, flow)), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(_np(SpatialTransformer()([image, flow])), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(warp(image, flow), expected, rtol=0, atol=1e-5)


def test_single_image_warp_matches_map_coordinates():
    rng = np.random.default_rng(4)
    image = _image(rng, batch=1)
    flow = _smooth_field(rng, batch=1)
    expected = _map_coordinates(image, flow, order=1)[0, ..., 0]
    out = warp(image[0, ..., 0], flow[0])
    assert out.shape == (H, W)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def _away_from_ties(flow, margin=0.05):
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    y, x = rows + flow[..., 0], cols + flow[..., 1]
    frac_y, frac_x = y - np.floor(y), x - np.floor(x)
    return (np.abs(frac_y - 0.5) > margin) & (np.abs(frac_x - 0.5) > margin)


@pytest.mark.parametrize("seed", [0, 1])
def test_nearest_on_labels_matches_map_coordinates_order0(seed):
    rng = np.random.default_rng(20 + seed)
    labels = rng.integers(0, 7, size=(2, H, W, 1)).astype("int32")
    flow = _smooth_field(rng, amplitude=4.0)
    ok = _away_from_ties(flow)
    assert ok.mean() > 0.5
    expected = _map_coordinates(labels, flow, order=0)
    moved = _np(spatial_transform(labels, flow, "nearest"))
    np.testing.assert_array_equal(moved[ok], expected[ok])
    # ... and through warp, with the label dtype kept.
    warped = warp(labels, flow, interpolation="nearest")
    assert warped.dtype == labels.dtype
    assert warped.shape == labels.shape
    np.testing.assert_array_equal(warped[ok], expected[ok].astype("int32"))
    assert set(np.unique(warped)) <= set(np.unique(labels))
    # A 2D uint8 map too.
    one = warp(labels[0, ..., 0].astype("uint8"), flow[0], interpolation="nearest")
    assert one.dtype == np.uint8 and one.shape == (H, W)
    np.testing.assert_array_equal(one[ok[0]], expected[0, ..., 0][ok[0]])


# ----------------------------------------------------------------------------- gradients
def _float64_context():
    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    import contextlib

    return contextlib.nullcontext()


def test_gradient_wrt_flow_matches_central_differences():
    rng = np.random.default_rng(30)
    with _float64_context():
        image = rng.uniform(size=(2, H, W, 2))
        weights = rng.normal(size=(2, H, W, 2))
        flow = _smooth_field(rng, amplitude=3.0).astype("float64") + 0.37  # mostly non-integer samples
        dtype = str(ops.convert_to_tensor(flow).dtype)
        use64 = "float64" in dtype
        if not use64:
            image, weights, flow = (a.astype("float32") for a in (image, weights, flow))
        image_t, weights_t = ops.convert_to_tensor(image), ops.convert_to_tensor(weights)

        def objective(f):
            return ops.sum(spatial_transform(image_t, f) * weights_t)

        _, grad = value_and_grad(objective, flow)

        # moved(p) depends on D(p) only, so perturbing one field channel everywhere at once gives
        # every pixel's partial derivative; bilinear sampling is linear along one coordinate inside
        # a cell, so the central difference is exact up to rounding away from grid lines.
        eps = 1e-4 if use64 else 1e-2
        rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        coords = (rows + flow[..., 0], cols + flow[..., 1])
        limits = (H - 1, W - 1)
        numeric = np.empty_like(grad)
        for c in range(2):
            step = np.zeros_like(flow)
            step[..., c] = eps
            plus = _np(spatial_transform(image_t, ops.convert_to_tensor(flow + step)))
            minus = _np(spatial_transform(image_t, ops.convert_to_tensor(flow - step)))
            numeric[..., c] = ((plus - minus) * weights).sum(-1) / (2 * eps)
            # Keep samples inside the image and at least 2 eps from the grid lines (kinks).
            s = coords[c]
            dist = np.abs(s - np.round(s))
            ok = (dist > 2 * eps) & (s > 2 * eps) & (s < limits[c] - 2 * eps)
            assert ok.mean() > 0.5
            assert np.all(np.isfinite(grad[..., c]))
            tol = 1e-6 if use64 else 1e-2
            np.testing.assert_allclose(grad[..., c][ok], numeric[..., c][ok], rtol=tol, atol=tol)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).max() > 1e-3  # not a vacuous zero gradient


def test_gradient_is_finite_at_integer_points_and_border():
    rng = np.random.default_rng(31)
    image = ops.convert_to_tensor(_image(rng))
    flow = np.zeros((2, H, W, 2), "float32")
    flow[0, ..., 1] = 1.0  # integer sample points
    flow[1, ..., 0] = 50.0  # outside the image: clamped, gradient 0 along rows
    _, grad = value_and_grad(lambda f: ops.sum(spatial_transform(image, f)), flow)
    assert np.all(np.isfinite(grad))


# ----------------------------------------------------------------------------- layer behaviour
def test_layer_symbolic_output_shape():
    image = keras.Input((H, W, 3))
    flow = keras.Input((H, W, 2))
    out = SpatialTransformer()([image, flow])
    assert tuple(out.shape) == (None, H, W, 3)


def test_layer_rejects_rank3_image():
    with pytest.raises(ValueError, match=r"image must be \[batch, height, width, channels\]"):
        SpatialTransformer()([np.zeros((H, W, 1), "float32"), np.zeros((1, H, W, 2), "float32")])


def test_layer_rejects_flow_with_three_channels():
    with pytest.raises(ValueError, match=r"flow must be \[batch, height, width, 2\]"):
        SpatialTransformer()([np.zeros((1, H, W, 1), "float32"), np.zeros((1, H, W, 3), "float32")])


def test_layer_rejects_size_mismatch():
    with pytest.raises(ValueError, match=r"image height 16 differs from flow height 8"):
        SpatialTransformer()([keras.Input((H, W, 1)), keras.Input((8, W, 2))])


def test_unknown_interpolation_is_a_value_error():
    with pytest.raises(ValueError, match=r"interpolation must be one of"):
        SpatialTransformer("cubic")
    with pytest.raises(ValueError, match=r"interpolation must be one of"):
        spatial_transform(np.zeros((1, H, W, 1), "float32"), np.zeros((1, H, W, 2), "float32"), "bicubic")


def test_warp_rejects_nan_flow():
    flow = np.zeros((H, W, 2), "float32")
    flow[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match=r"flow contains NaN"):
        warp(np.zeros((H, W), "float32"), flow)


def test_warp_rejects_flow_with_three_channels():
    with pytest.raises(ValueError, match=r"flow shape .* does not fit image shape"):
        warp(np.zeros((H, W), "float32"), np.zeros((H, W, 3), "float32"))
