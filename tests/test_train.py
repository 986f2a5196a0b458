"""Training: the ci preset learns, a resumed run equals an uninterrupted one, NaN stops cleanly."""
import json

import keras
import numpy as np
import pytest

from lstmcor.data import PairDataset, load_default
from lstmcor.losses import mse
from lstmcor.training import PRESETS, read_log, resolve_settings, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset():
    return load_default()


def _val_mse(model, dataset):
    (moving, fixed), _ = PairDataset(dataset, "val", batch_size=8, steps_per_epoch=1, seed=123)[0]
    moved, _ = model.predict_on_batch([moving, fixed])
    return float(np.mean(keras.ops.convert_to_numpy(mse(fixed, moved))))


def test_ci_training_lowers_the_loss(tmp_path, dataset):
    first = train("voxelmorph", "ci", dataset, tmp_path / "a", epochs=1, steps_per_epoch=1, verbose=0)
    before = _val_mse(first.model, dataset)
    result = train("voxelmorph", "ci", dataset, tmp_path / "b", verbose=0, epochs=4, steps_per_epoch=8,
                   learning_rate=1e-3)
    after = _val_mse(result.model, dataset)
    assert after < 0.97 * before, f"validation MSE {before:.5f} -> {after:.5f}"
    log = read_log(tmp_path / "b")
    assert log["loss"].shape == (4,)
    assert (tmp_path / "b" / "model.keras").exists()


def test_resumed_run_ends_with_the_same_weights(tmp_path, dataset):
    start = train("lstmcor", "ci", dataset, tmp_path / "start", epochs=1, steps_per_epoch=1, learning_rate=0.0,
                  verbose=0)  # the initial weights (same seed, no step taken)
    whole = train("lstmcor", "ci", dataset, tmp_path / "whole", epochs=2, verbose=0)
    train("lstmcor", "ci", dataset, tmp_path / "part", epochs=1, verbose=0)
    assert json.loads((tmp_path / "part" / "state.json").read_text())["epochs_done"] == 1
    resumed = train("lstmcor", "ci", dataset, tmp_path / "part", epochs=2, resume=True, verbose=0)
    assert resumed.epochs_done == 2

    def distance(a, b):
        return np.sqrt(sum(np.sum((x - y) ** 2) for x, y in zip(a.get_weights(), b.get_weights())))

    # Multithreaded CPU kernels sum in varying order, and Adam magnifies that on the tiny gradients
    # of the flow convolution, so the runs agree to a few per cent of the distance training moved
    # the weights (measured: 2.7 %), not bit for bit. Resuming with the first epoch's pairs again
    # measured 13.8 %; a lost optimizer state would be larger still.
    travelled = distance(whole.model, start.model)
    assert distance(resumed.model, whole.model) < 0.06 * travelled
    # optimizer state travelled with the checkpoint
    assert int(resumed.model.optimizer.iterations.numpy()) == int(whole.model.optimizer.iterations.numpy())
    assert read_log(tmp_path / "part")["loss"].shape == (2,)


def test_nan_loss_stops_with_a_clear_message(tmp_path, dataset):
    bad = load_default()
    bad.images = bad.images.copy()
    bad.images[bad.splits["train"]] = np.nan  # every training pair gives a NaN loss
    with pytest.raises(FloatingPointError, match="NaN or infinite at epoch 1, batch 1"):
        train("voxelmorph", "ci", bad, tmp_path / "nan", verbose=0)
    assert not (tmp_path / "nan" / "checkpoint.keras").exists()


def test_resume_without_checkpoint_and_bad_settings(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train("voxelmorph", "ci", out=tmp_path / "none", resume=True, verbose=0)
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_settings("fast")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        resolve_settings("ci", epochs=0)
    assert PRESETS["paper"]["epochs"] == 900 and PRESETS["paper"]["batch_size"] == 8
