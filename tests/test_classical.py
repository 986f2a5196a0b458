"""SyN from DIPY: its field uses our convention and it registers a real pair."""
import numpy as np
import pytest

from lstmcor.classical import syn_register
from lstmcor.data import load_default, pair_indices
from lstmcor.metrics import mean_dice
from lstmcor.transform import warp


@pytest.mark.slow
def test_syn_field_follows_our_convention_and_improves_dice():
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import SSDMetric

    data = load_default()
    m, f = pair_indices(data, "test", 1, seed=5)[0]
    moving, fixed = data.images[m], data.images[f]
    mapping = SymmetricDiffeomorphicRegistration(SSDMetric(2), level_iters=[20, 10]).optimize(
        fixed.astype("float64"), moving.astype("float64"))
    np.testing.assert_allclose(warp(moving, mapping.get_forward_field().astype("float32")),
                               mapping.transform(moving.astype("float64")), atol=1e-4)
    flow = syn_register(moving, fixed, level_iters=(20, 10))
    assert flow.shape == moving.shape + (2,)
    before = mean_dice(data.labels[f], data.labels[m])
    after = mean_dice(data.labels[f], warp(data.labels[m], flow, "nearest"))
    assert after > before + 0.1


def test_syn_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        syn_register(np.zeros((16, 16)), np.zeros((16, 32)))
    with pytest.raises(ValueError, match="metric"):
        syn_register(np.zeros((16, 16)), np.zeros((16, 16)), metric="mi")


@pytest.mark.slow
def test_syn_ssd_registers_a_real_pair():
    data = load_default()
    m, f = pair_indices(data, "test", 1, seed=5)[0]
    moving, fixed = data.images[m], data.images[f]
    flow = syn_register(moving, fixed, metric="ssd", level_iters=(20, 10))
    assert flow.shape == moving.shape + (2,) and flow.dtype == np.float32
    assert np.mean((warp(moving, flow) - fixed) ** 2) < 0.5 * np.mean((moving - fixed) ** 2)
    before = mean_dice(data.labels[f], data.labels[m])
    after = mean_dice(data.labels[f], warp(data.labels[m], flow, "nearest"))
    assert after > before + 0.1
