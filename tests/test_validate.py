"""Input checks: each bad input is one ValueError whose message names the problem."""
import numpy as np
import pytest

from lstmcor.validate import check_image_batch, check_spatial_shape


# ----------------------------------------------------------------------------- spatial shape
@pytest.mark.parametrize("shape", [(160, 192), (16, 16), (32, 48, 1), (160, 192, 2)])
def test_spatial_shape_accepts_multiples_of_16(shape):
    assert check_spatial_shape(shape) == (shape[0], shape[1])


@pytest.mark.parametrize(("shape", "text"), [((161, 192), "161 x 192"), ((160, 190), "160 x 190")])
def test_spatial_shape_rejects_sizes_the_model_cannot_take(shape, text):
    with pytest.raises(ValueError, match=rf"size {text} is not divisible by 16 \(2\*\*4 levels\)"):
        check_spatial_shape(shape)


def test_spatial_shape_levels_and_name():
    assert check_spatial_shape((24, 40), levels=3) == (24, 40)
    with pytest.raises(ValueError, match=r"moving size 24 x 40 is not divisible by 16"):
        check_spatial_shape((24, 40), what="moving")
    with pytest.raises(ValueError, match=r"not 2D"):
        check_spatial_shape((160,))
    with pytest.raises(ValueError, match=r"unknown size"):
        check_spatial_shape((None, 192))


# ----------------------------------------------------------------------------- image batches
def test_image_batch_converts_common_layouts():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(16, 20))
    out = check_image_batch(image)
    assert out.dtype == np.float32 and out.shape == (1, 16, 20, 1)
    np.testing.assert_array_equal(out[0, ..., 0], image.astype("float32"))
    assert check_image_batch(image[..., None]).shape == (1, 16, 20, 1)
    assert check_image_batch(rng.uniform(size=(3, 16, 20))).shape == (3, 16, 20, 1)
    assert check_image_batch(rng.uniform(size=(3, 16, 20, 1))).shape == (3, 16, 20, 1)
    assert check_image_batch(np.zeros((16, 20, 2)), channels=2).shape == (1, 16, 20, 2)
    assert check_image_batch(np.zeros((2, 16, 20, 5)), channels=None).shape == (2, 16, 20, 5)
    assert check_image_batch(np.arange(320, dtype="uint8").reshape(16, 20)).dtype == np.float32


def test_image_batch_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match=r"moving has 3 channels \(shape \(2, 16, 20, 3\)\); expected 1"):
        check_image_batch(np.zeros((2, 16, 20, 3)), name="moving", channels=1)
    with pytest.raises(ValueError, match=r"flow has 3 channels .*expected 2"):
        check_image_batch(np.zeros((1, 16, 20, 3)), name="flow", channels=2)


def test_image_batch_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"image has rank 5 .*expected \[batch, height, width, channels\]"):
        check_image_batch(np.zeros((1, 2, 16, 20, 1)))
    with pytest.raises(ValueError, match=r"rank 1"):
        check_image_batch(np.zeros(16))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_image_batch_rejects_nan_and_inf(bad):
    image = np.zeros((2, 16, 20, 1), "float32")
    image[1, 3, 4, 0] = bad
    image[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"fixed contains 2 NaN or infinite values"):
        check_image_batch(image, name="fixed")


def test_image_batch_rejects_non_numbers():
    with pytest.raises(ValueError, match=r"has dtype .*give numbers"):
        check_image_batch(np.array([["a", "b"], ["c", "d"]]))


def test_colour_image_is_not_read_as_a_batch():
    with pytest.raises(ValueError, match="looks like a colour image"):
        check_image_batch(np.zeros((16, 20, 3)), "moving", channels=1)
