"""Losses (Eq. 21-23) and evaluation metrics against NumPy and analytic cases."""
import numpy as np
import pytest
from keras import ops

from lstmcor import (
    MSE,
    Grad,
    dice,
    endpoint_error,
    folding_fraction,
    grad_l2,
    jacobian_determinant,
    mean_dice,
    mse,
    sdlogj,
    total_loss,
)

H, W = 16, 20
ROWS, COLS = np.meshgrid(np.arange(H, dtype="float64"), np.arange(W, dtype="float64"), indexing="ij")


def _np(x):
    return ops.convert_to_numpy(x)


# ----------------------------------------------------------------------------- losses
def test_mse_matches_numpy_per_sample():
    rng = np.random.default_rng(0)
    fixed = rng.uniform(size=(3, H, W, 1)).astype("float32")
    moved = rng.uniform(size=(3, H, W, 1)).astype("float32")
    got = _np(mse(fixed, moved))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, ((fixed.astype("float64") - moved) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(_np(mse(fixed, fixed)), 0.0, atol=0)


def _linear_field(a, b):
    """D_c(r, s) = a_c r + b_c s for c = 0, 1: a [B, H, W, 2] field."""
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return (a[:, None, None, :] * ROWS[None, ..., None] + b[:, None, None, :] * COLS[None, ..., None]).astype(
        "float32"
    )


def test_grad_l2_of_linear_field_is_analytic():
    a = np.array([[0.3, -0.7], [1.5, 0.0], [0.0, 0.0]])
    b = np.array([[-0.2, 0.4], [0.0, 2.0], [0.0, 0.0]])
    flow = _linear_field(a, b)
    # Forward differences are a_c along rows and b_c along columns everywhere:
    # mean over axes of the mean squared difference = (mean_c a_c^2 + mean_c b_c^2) / 2.
    expected = ((a**2).mean(axis=1) + (b**2).mean(axis=1)) / 2.0
    got = _np(grad_l2(flow))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert got[2] == 0.0


def test_grad_l2_matches_numpy_on_random_field():
    rng = np.random.default_rng(1)
    flow = rng.normal(size=(2, H, W, 2)).astype("float32")
    f = flow.astype("float64")
    d_rows = np.diff(f, axis=1) ** 2
    d_cols = np.diff(f, axis=2) ** 2
    expected = (d_rows.mean(axis=(1, 2, 3)) + d_cols.mean(axis=(1, 2, 3))) / 2.0
    np.testing.assert_allclose(_np(grad_l2(flow)), expected, rtol=1e-5)


def test_grad_l2_is_not_a_sum_of_different_sized_axes():
    """Only rows vary: the row term is W unit steps among (H-1)*W*2 squared differences, halved."""
    flow = np.zeros((1, H, W, 2), "float32")
    flow[0, 5:, :, 0] = 1.0  # one unit step between rows 4 and 5
    expected = (W / ((H - 1) * W * 2)) / 2.0  # = 1 / (4 (H - 1))
    np.testing.assert_allclose(_np(grad_l2(flow)), [expected], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.01, 1.0])
def test_total_loss_is_mse_plus_lambda_grad(lam):
    rng = np.random.default_rng(2)
    fixed = rng.uniform(size=(4, H, W, 1)).astype("float32")
    moved = rng.uniform(size=(4, H, W, 1)).astype("float32")
    flow = rng.normal(size=(4, H, W, 2)).astype("float32")
    f64 = flow.astype("float64")
    sim = ((fixed.astype("float64") - moved) ** 2).mean(axis=(1, 2, 3))
    smooth = ((np.diff(f64, axis=1) ** 2).mean(axis=(1, 2, 3)) + (np.diff(f64, axis=2) ** 2).mean(axis=(1, 2, 3))) / 2
    expected = np.mean(sim + lam * smooth)
    got = float(_np(total_loss(fixed, moved, flow, lam=lam)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert got == pytest.approx(float(np.mean(_np(mse(fixed, moved)) + lam * _np(grad_l2(flow)))), rel=1e-6)


def test_total_loss_default_lambda_is_0_003():
    rng = np.random.default_rng(3)
    fixed, moved = rng.uniform(size=(2, 2, H, W, 1)).astype("float32")
    flow = rng.normal(size=(2, H, W, 2)).astype("float32")
    assert float(_np(total_loss(fixed, moved, flow))) == pytest.approx(
        float(_np(total_loss(fixed, moved, flow, lam=0.003))), rel=1e-7
    )


def test_keras_losses_average_the_functions_over_the_batch():
    rng = np.random.default_rng(4)
    fixed = rng.uniform(size=(3, H, W, 1)).astype("float32")
    moved = rng.uniform(size=(3, H, W, 1)).astype("float32")
    flow = rng.normal(size=(3, H, W, 2)).astype("float32")
    expected_mse = ((fixed.astype("float64") - moved) ** 2).mean()
    assert float(_np(MSE()(fixed, moved))) == pytest.approx(expected_mse, rel=1e-5)
    assert float(_np(MSE()(fixed, moved))) == pytest.approx(float(np.mean(_np(mse(fixed, moved)))), rel=1e-6)
    expected_grad = float(np.mean(_np(grad_l2(flow))))
    # y_true is ignored by Grad.
    assert float(_np(Grad()(np.zeros_like(flow), flow))) == pytest.approx(expected_grad, rel=1e-6)
    assert float(_np(Grad()(flow * 7.0, flow))) == pytest.approx(expected_grad, rel=1e-6)
    a = np.array([[0.5, -1.0], [2.0, 0.25], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [-0.5, 0.5], [0.0, 0.0]])
    lin = _linear_field(a, b)
    analytic = np.mean(((a**2).mean(axis=1) + (b**2).mean(axis=1)) / 2.0)
    assert float(_np(Grad()(np.zeros_like(lin), lin))) == pytest.approx(analytic, rel=1e-5)


def test_keras_losses_round_trip_config():
    for cls in (MSE, Grad):
        loss = cls()
        again = cls.from_config(loss.get_config())
        assert again.get_config() == loss.get_config()


# ----------------------------------------------------------------------------- Jacobian
def _affine_field(matrix, translation):
    """D(x) = (A - I) x + t on pixel coordinates x = (row, col): [H, W, 2]."""
    a = np.asarray(matrix, "float64") - np.eye(2)
    x = np.stack([ROWS, COLS], -1)
    return x @ a.T + np.asarray(translation, "float64")


@pytest.mark.parametrize("seed", range(6))
def test_jacobian_of_affine_map_is_det_a_everywhere(seed):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 0.8, size=(2, 2)) + np.eye(2) * (1 if seed % 2 == 0 else 0)
    if seed % 2 == 1:
        matrix[0] *= -1 if np.linalg.det(matrix) > 0 else 1  # some with negative determinant
    flow = _affine_field(matrix, rng.normal(size=2) * 3)
    det = jacobian_determinant(flow)
    assert det.shape == (H, W)
    np.testing.assert_allclose(det, np.linalg.det(matrix), rtol=1e-9, atol=1e-9)
    # Batched form too.
    batch = jacobian_determinant(np.stack([flow, np.zeros_like(flow)]))
    assert batch.shape == (2, H, W)
    np.testing.assert_allclose(batch[0], np.linalg.det(matrix), atol=1e-9)
    np.testing.assert_allclose(batch[1], 1.0, atol=0)


def test_affine_signs_are_covered():
    signs = set()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        matrix = rng.normal(0.0, 0.8, size=(2, 2)) + np.eye(2) * (1 if seed % 2 == 0 else 0)
        if seed % 2 == 1:
            matrix[0] *= -1 if np.linalg.det(matrix) > 0 else 1
        signs.add(np.sign(np.linalg.det(matrix)))
    assert signs == {-1.0, 1.0}


def test_jacobian_asymmetric_shear_uses_the_right_axes():
    """A shear along columns by rows: D_1 = k r. det = 1 regardless; scaling rows by 2: det 2."""
    flow = np.zeros((H, W, 2))
    flow[..., 1] = 0.7 * ROWS
    np.testing.assert_allclose(jacobian_determinant(flow), 1.0, atol=1e-12)
    flow = np.zeros((H, W, 2))
    flow[..., 0] = ROWS  # rows doubled
    flow[..., 1] = -0.5 * COLS  # columns halved
    np.testing.assert_allclose(jacobian_determinant(flow), 2.0 * 0.5, atol=1e-12)
    # Mixed: D_0 = 0.5 c, D_1 = 0.5 r: det = 1 - 0.25.
    flow = np.stack([0.5 * COLS, 0.5 * ROWS], -1)
    np.testing.assert_allclose(jacobian_determinant(flow), 0.75, atol=1e-12)


def test_jacobian_of_nonlinear_field_matches_central_differences():
    rng = np.random.default_rng(7)
    flow = rng.normal(size=(H, W, 2))
    det = jacobian_determinant(flow)
    r, c = 5, 9
    d0r = (flow[r + 1, c, 0] - flow[r - 1, c, 0]) / 2
    d0c = (flow[r, c + 1, 0] - flow[r, c - 1, 0]) / 2
    d1r = (flow[r + 1, c, 1] - flow[r - 1, c, 1]) / 2
    d1c = (flow[r, c + 1, 1] - flow[r, c - 1, 1]) / 2
    assert det[r, c] == pytest.approx((1 + d0r) * (1 + d1c) - d0c * d1r, rel=1e-12)


def test_folding_fraction_identity_and_reflection():
    assert folding_fraction(np.zeros((H, W, 2))) == 0.0
    reflection = _affine_field(np.diag([1.0, -1.0]), [0.0, W - 1.0])  # x -> (r, W-1-c)
    assert folding_fraction(reflection) == 1.0
    # A collapse (all columns onto one) has det exactly 0, which counts as folding.
    collapse = np.zeros((H, W, 2))
    collapse[..., 1] = -COLS
    np.testing.assert_array_equal(jacobian_determinant(collapse), 0.0)
    assert folding_fraction(collapse) == 1.0
    # Half folded: reflect the left half only ... a field whose det <= 0 on a known set.
    flow = np.zeros((H, W, 2))
    flow[..., 1] = np.where(COLS < W // 2, -2.0 * COLS, 0.0)  # d/dc (c + D_1) = -1 on the left
    det = jacobian_determinant(flow)
    assert folding_fraction(flow) == pytest.approx(np.mean(det <= 0))
    assert 0.3 < folding_fraction(flow) < 0.7


def test_sdlogj_is_zero_for_affine_and_positive_otherwise():
    flow = _affine_field([[1.2, 0.3], [-0.1, 0.9]], [1.0, -2.0])
    assert sdlogj(flow) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(8)
    noisy = rng.normal(0.0, 0.1, size=(H, W, 2))
    expected = np.std(np.log(np.clip(jacobian_determinant(noisy), 1e-9, None)))
    assert sdlogj(noisy, offset=0.0, border=0) == pytest.approx(expected, rel=1e-12)
    assert sdlogj(noisy) > 0.01


# ----------------------------------------------------------------------------- Dice
def test_dice_identical_and_disjoint():
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 4, size=(H, W))
    np.testing.assert_array_equal(dice(labels, labels), np.ones(3))
    a = np.zeros((H, W), int)
    b = np.zeros((H, W), int)
    a[:4, :4] = 1
    b[8:, 8:] = 1
    np.testing.assert_array_equal(dice(a, b), [0.0])
    assert mean_dice(a, b) == 0.0


def test_dice_partial_overlap_by_hand():
    a = np.zeros((H, W), int)
    b = np.zeros((H, W), int)
    a[0:4, 0:4] = 1  # 16 pixels
    b[2:6, 0:4] = 1  # 16 pixels, overlap rows 2-3: 8 pixels
    a[10:12, 0:5] = 2  # 10 pixels
    b[10:12, 0:10] = 2  # 20 pixels, overlap 10
    scores = dice(a, b)
    np.testing.assert_allclose(scores, [2 * 8 / 32, 2 * 10 / 30])
    np.testing.assert_allclose(dice(a, b, labels=[2]), [2 * 10 / 30])
    assert mean_dice(a, b) == pytest.approx((0.5 + 2 / 3) / 2)


def test_dice_label_absent_from_both_is_nan():
    a = np.ones((4, 4), int)
    out = dice(a, a, labels=[1, 5])
    assert out[0] == 1.0 and np.isnan(out[1])


def test_mean_dice_uses_labels_present_in_fixed():
    fixed = np.zeros((H, W), int)
    moved = np.zeros((H, W), int)
    fixed[:4, :4] = 1
    moved[:4, :4] = 1  # label 1: Dice 1
    fixed[8:10, 8:10] = 3
    moved[12:14, 12:14] = 3  # label 3 present in fixed, misplaced: Dice 0
    moved[0:2, 10:12] = 7  # label 7 only in moved: ignored
    assert mean_dice(fixed, moved) == pytest.approx(0.5)
    # Had label 7 counted, the mean would be 1/3.
    assert np.nanmean(dice(fixed, moved)) == pytest.approx(1 / 3)
    assert np.isnan(mean_dice(np.zeros((4, 4), int), np.ones((4, 4), int)))


# ----------------------------------------------------------------------------- endpoint error
def test_endpoint_error_analytic():
    zero = np.zeros((H, W, 2))
    shifted = np.zeros((H, W, 2))
    shifted[..., 0], shifted[..., 1] = 3.0, 4.0
    assert endpoint_error(shifted, zero) == pytest.approx(5.0)
    assert endpoint_error(zero, zero) == 0.0
    # Error 5 on half the image, 0 elsewhere: mean 2.5; inside the mask only: 5.
    half = zero.copy()
    half[: H // 2] = shifted[: H // 2]
    assert endpoint_error(half, zero) == pytest.approx(2.5)
    mask = np.zeros((H, W), bool)
    mask[: H // 2] = True
    assert endpoint_error(half, zero, mask=mask) == pytest.approx(5.0)
    assert endpoint_error(half, zero, mask=~mask) == pytest.approx(0.0)
    # Batched
    assert endpoint_error(np.stack([shifted, zero]), np.zeros((2, H, W, 2))) == pytest.approx(2.5)


# ----------------------------------------------------------------------------- bad input
def test_jacobian_rejects_nan():
    flow = np.zeros((H, W, 2))
    flow[2, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        jacobian_determinant(flow)
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        folding_fraction(flow)


def test_metrics_reject_wrong_channel_count_and_shape_mismatch():
    with pytest.raises(ValueError, match=r"\[H, W, 2\] or \[B, H, W, 2\], got shape \(16, 20, 3\)"):
        jacobian_determinant(np.zeros((H, W, 3)))
    with pytest.raises(ValueError, match=r"fields differ in shape"):
        endpoint_error(np.zeros((H, W, 2)), np.zeros((H, W + 1, 2)))
    with pytest.raises(ValueError, match=r"label maps differ in shape"):
        dice(np.zeros((H, W), int), np.zeros((H, W + 1), int))
    with pytest.raises(ValueError, match=r"labels_b contains NaN"):
        dice(np.zeros((2, 2)), np.array([[0.0, np.nan], [1.0, 1.0]]))
