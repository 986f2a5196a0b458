"""Training: the ci preset learns, a resumed run equals an uninterrupted one, NaN stops cleanly.

On the embedded set at 32 x 32 (``tiny``, tests/conftest.py): what is checked holds at any size.
"""
import copy
import json

import keras
import numpy as np
import pytest

from lstmcor.data import PairDataset
from lstmcor.losses import mse
from lstmcor.training import PRESETS, read_log, resolve_settings, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tiny):
    return tiny


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
    whole = train("lstmcor", "ci", dataset, tmp_path / "whole", epochs=2, verbose=0)
    train("lstmcor", "ci", dataset, tmp_path / "part", epochs=1, verbose=0)
    assert json.loads((tmp_path / "part" / "state.json").read_text())["epochs_done"] == 1
    resumed = train("lstmcor", "ci", dataset, tmp_path / "part", epochs=2, resume=True, verbose=0)
    assert resumed.epochs_done == 2
    # Bit for bit on the TensorFlow CPU backend: every batch, training and validation, is drawn
    # from (seed, epoch, batch) with the epoch taken from fit's epoch number, fit does not shuffle,
    # and the optimizer state travels with the checkpoint. (The earlier 2.7 % gap came from fit's
    # shuffle, re-seeded on resume, not from thread order: two uninterrupted runs were identical.)
    weights = zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True)
    assert all(np.array_equal(a, b) for a, b in weights)
    assert int(resumed.model.optimizer.iterations.numpy()) == int(whole.model.optimizer.iterations.numpy())
    assert (tmp_path / "part" / "log.csv").read_text() == (tmp_path / "whole" / "log.csv").read_text()
    assert read_log(tmp_path / "part")["val_loss"].shape == (2,)


def test_nan_loss_stops_with_a_clear_message(tmp_path, dataset):
    bad = copy.copy(dataset)
    bad.images = bad.images.copy()
    bad.images[bad.splits["train"]] = np.nan  # every training pair gives a NaN loss
    with pytest.raises(FloatingPointError, match="NaN or infinite at epoch 1, batch 1"):
        train("voxelmorph", "ci", bad, tmp_path / "nan", verbose=0)
    assert not (tmp_path / "nan" / "checkpoint.keras").exists()


def test_resume_without_checkpoint_and_bad_settings(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume: no checkpoint.keras and state.json"):
        train("voxelmorph", "ci", out=tmp_path / "none", resume=True, verbose=0)
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_settings("fast")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        resolve_settings("ci", epochs=0)
    assert PRESETS["paper"]["epochs"] == 900 and PRESETS["paper"]["batch_size"] == 8


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="PyTorch runs the step eagerly: no trace")
def test_the_training_step_is_traced_once(dataset):
    """compile_model builds Adam's moments and the loss trackers up front: Keras's TensorFlow trainer
    would otherwise create them inside the first step's trace and trace it again (seconds for LSTM-COR)."""
    from lstmcor.models import build_model
    from lstmcor.training import compile_model

    net = compile_model(build_model("voxelmorph", input_shape=dataset.images.shape[1:3]))
    assert net.optimizer.built
    traces = []
    step = net.train_step

    def counting_step(data):
        traces.append(len(net.metrics_variables))
        return step(data)

    net.train_step = counting_step
    net.fit(PairDataset(dataset, "train", batch_size=2, steps_per_epoch=3, seed=0), epochs=2, verbose=0,
            shuffle=False)
    assert len(traces) == 1, f"the training step was traced {len(traces)} times"
