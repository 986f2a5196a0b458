"""HD95 and Learn2Reg's SDlogJ on cases that can be checked by hand, and against direct references.

HD95 follows MONAI: surface = pixels removed by binary erosion, the larger of the two directed
95th percentiles. SDlogJ follows Learn2Reg: std(log(clip(det J + 3, 1e-9, 1e9))), 2-pixel border
dropped, inside a mask when one is given.
"""
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from lstmcor import hd95, jacobian_determinant, sdlogj

ROWS, COLS = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")


def _square(r0, c0, side, shape=(48, 48), label=1):
    out = np.zeros(shape, int)
    out[r0:r0 + side, c0:c0 + side] = label
    return out


def _disk(radius, center=(23.5, 23.5)):
    return (((ROWS - center[0]) ** 2 + (COLS - center[1]) ** 2) <= radius**2).astype(int)


def _brute_force_hd95(a, b):
    """MONAI's definition with explicit pairwise distances instead of a distance transform."""
    surface_a = np.argwhere(a & ~ndimage.binary_erosion(a))
    surface_b = np.argwhere(b & ~ndimage.binary_erosion(b))
    pairwise = cdist(surface_a, surface_b)
    return max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))


# ----------------------------------------------------------------------------- HD95 by hand
# A square shifted by k pixels: a quarter or more of each surface (the trailing side) is exactly
# k pixels from the other surface and nothing is farther, so the 95th percentile is k.
SHIFTS = [
    # (rows, cols, expected HD95)
    (0, 1, 1.0),
    (0, 3, 3.0),
    (5, 0, 5.0),
    (0, -2, 2.0),
    (-7, 0, 7.0),
    (0, 9, 9.0),  # nearly the side of the square (10)
]


@pytest.mark.parametrize(("dr", "dc", "expected"), SHIFTS)
def test_shifted_square(dr, dc, expected):
    a = _square(15, 15, 10)
    b = np.roll(a, (dr, dc), axis=(0, 1))
    assert hd95(a, b) == pytest.approx([expected], abs=1e-12)
    assert hd95(b, a) == pytest.approx([expected], abs=1e-12)


@pytest.mark.parametrize("radius", [6, 10, 15])
@pytest.mark.parametrize("gap", [1, 2, 4, 7])
def test_concentric_disks_differ_by_the_gap_within_a_pixel(radius, gap):
    # The surfaces of digital disks are staircases, so the distance between the two rings varies
    # by up to about one pixel around the true gap (we see up to +0.42 px).
    value = hd95(_disk(radius), _disk(radius + gap))[0]
    assert abs(value - gap) < 1.0


def test_identical_maps_give_zero():
    rng = np.random.default_rng(0)
    labels = ndimage.median_filter(rng.integers(0, 4, size=(48, 48)), size=5)
    np.testing.assert_array_equal(hd95(labels, labels), np.zeros(len(np.unique(labels[labels != 0]))))


def test_larger_of_the_directed_percentiles_not_the_pooled_percentile():
    # A: a 4 x 4 square, 12 surface pixels. B: the same square plus one pixel 10 px away.
    # A -> B: 12 zeros. B -> A: 12 zeros and one 10, whose 95th percentile (np.percentile,
    # linear) sits at rank 0.95 * 12 = 11.4: 0 + 0.4 * (10 - 0) = 4. Pooling the 25 distances
    # would put rank 22.8 between two zeros and give 0.
    a = _square(5, 5, 4, shape=(16, 24))
    b = a.copy()
    b[5, 18] = 1  # nearest surface pixel of the square: (5, 8), 10 px to the left
    assert hd95(a, b) == pytest.approx([4.0], abs=1e-12)
    assert hd95(b, a) == pytest.approx([4.0], abs=1e-12)


def test_per_label_and_absent_labels():
    a = _square(2, 2, 8, label=1) + _square(20, 20, 10, label=2)
    b = _square(2, 2, 8, label=1) + _square(23, 20, 10, label=2)  # label 2 moved 3 rows down
    np.testing.assert_allclose(hd95(a, b), [0.0, 3.0], atol=1e-12)
    only_a = a.copy()
    only_a[40:44, 40:44] = 7
    result = hd95(only_a, b, labels=[1, 2, 7, 9])
    np.testing.assert_allclose(result[:2], [0.0, 3.0], atol=1e-12)
    assert result[2] == np.inf  # present in one map only (MONAI's convention)
    assert np.isnan(result[3])  # present in neither
    assert np.isinf(hd95(np.zeros_like(b), b)[0])  # default labels: those of either map


def test_matches_brute_force_on_random_blobs():
    rng = np.random.default_rng(1)
    for _ in range(3):
        a = ndimage.gaussian_filter(rng.normal(size=(48, 48)), 4) > 0.02
        b = ndimage.gaussian_filter(rng.normal(size=(48, 48)), 4) > 0.02
        assert hd95(a.astype(int), b.astype(int))[0] == pytest.approx(_brute_force_hd95(a, b), abs=1e-12)


def test_hd95_validation():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        hd95(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="NaN"):
        hd95(np.full((4, 4), np.nan), np.zeros((4, 4)))


# ----------------------------------------------------------------------------- SDlogJ by hand
H, W = 16, 24


def _step_field():
    """Column displacement 0 left of column 11 and c - 11 from it: det J = 1 | 1.5 | 2."""
    flow = np.zeros((H, W, 2))
    flow[..., 1] = np.maximum(COLS[:H, :W] - 11, 0)
    return flow


def test_step_field_determinant_is_as_drawn():
    det = jacobian_determinant(_step_field())
    np.testing.assert_allclose(det[:, :11], 1.0)
    np.testing.assert_allclose(det[:, 11], 1.5)  # central difference across the kink
    np.testing.assert_allclose(det[:, 12:], 2.0)


def _two_value_std(a, b, count_a, count_b):
    p = count_a / (count_a + count_b)
    return abs(a - b) * np.sqrt(p * (1 - p))


SDLOGJ_CASES = [
    # (name, flow, kwargs, expected)
    ("identity", np.zeros((H, W, 2)), {}, 0.0),
    ("pure scaling", np.stack([0.3 * ROWS[:H, :W], -0.2 * COLS[:H, :W]], -1), {}, 0.0),
    ("pure scaling, plain log", np.stack([0.3 * ROWS[:H, :W], -0.2 * COLS[:H, :W]], -1), {"offset": 0.0}, 0.0),
    # Border 2 keeps columns 2..21: det 1 on 9 columns (log 4), 1.5 on one (log 4.5), 2 on 10 (log 5).
    ("step, Learn2Reg", _step_field(), {},
     float(np.std([np.log(4.0)] * 9 + [np.log(4.5)] + [np.log(5.0)] * 10))),
    ("step, plain log", _step_field(), {"offset": 0.0},
     float(np.std([0.0] * 9 + [np.log(1.5)] + [np.log(2.0)] * 10))),
    # Without the border: columns 0..23, 11 at det 1, one at 1.5, 12 at 2.
    ("step, no border", _step_field(), {"border": 0},
     float(np.std([np.log(4.0)] * 11 + [np.log(4.5)] + [np.log(5.0)] * 12))),
    # A mask dropping the kink column: a two-valued set, std = |log 5 - log 4| sqrt(p (1 - p)).
    ("step, masked", _step_field(), {"mask": COLS[:H, :W] != 11},
     _two_value_std(np.log(4.0), np.log(5.0), 9, 10)),
]


@pytest.mark.parametrize(("name", "flow", "kwargs", "expected"), SDLOGJ_CASES, ids=[c[0] for c in SDLOGJ_CASES])
def test_sdlogj_by_hand(name, flow, kwargs, expected):
    assert sdlogj(flow, **kwargs) == pytest.approx(expected, abs=1e-12)


def test_sdlogj_is_learn2reg_formula_in_2d():
    # A transcription of Learn2Reg's evaluation, one dimension down: zero-padded central
    # differences, identity added, 2-pixel crop, + 3, clip, log, std.
    rng = np.random.default_rng(2)
    flow = np.stack([ndimage.gaussian_filter(rng.normal(size=(H, W)), 2) * 6 for _ in range(2)], -1)
    kernel_r, kernel_c = np.array([-0.5, 0, 0.5]).reshape(3, 1), np.array([-0.5, 0, 0.5]).reshape(1, 3)
    grad = [[ndimage.correlate(flow[..., i], k, mode="constant", cval=0.0) for k in (kernel_r, kernel_c)]
            for i in range(2)]
    jac = np.array(grad) + np.eye(2).reshape(2, 2, 1, 1)
    det = (jac[0, 0] * jac[1, 1] - jac[0, 1] * jac[1, 0])[2:-2, 2:-2]
    log_det = np.log(np.clip(det + 3, 1e-9, 1e9))
    assert sdlogj(flow) == pytest.approx(log_det.std(), rel=1e-12)
    mask = rng.uniform(size=(H, W)) > 0.3
    expected = np.ma.MaskedArray(log_det, ~mask[2:-2, 2:-2]).std()
    assert sdlogj(flow, mask) == pytest.approx(expected, rel=1e-12)
    assert (det <= 0).any()  # the case includes folds, which + 3 keeps off the clip


def test_mask_restricts_and_batches():
    flow = _step_field()
    left = COLS[:H, :W] < 11
    assert sdlogj(flow, left) == pytest.approx(0.0, abs=1e-12)  # det 1 everywhere on the left
    assert sdlogj(flow, COLS[:H, :W] > 11) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(sdlogj(flow, np.zeros((H, W), bool)))
    # Only the border is kept: nothing left once the border is cropped.
    ring = np.ones((H, W), bool)
    ring[2:-2, 2:-2] = False
    assert np.isnan(sdlogj(flow, ring))
    # A batch pools its samples; a per-sample mask selects per sample.
    batch = np.stack([flow, np.zeros_like(flow)])
    masks = np.stack([left, np.ones((H, W), bool)])
    assert sdlogj(batch, masks) == pytest.approx(0.0, abs=1e-12)  # det 1 on both selections
    assert sdlogj(batch) > 0


def test_sdlogj_validation():
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        sdlogj(np.zeros((H, W, 2)), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="border"):
        sdlogj(np.zeros((4, 4, 2)), border=2)
    with pytest.raises(ValueError, match="border"):
        sdlogj(np.zeros((H, W, 2)), border=-1)
