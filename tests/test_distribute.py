"""Data-parallel training: a run on 2 (logical CPU) devices ends where a 1-device run ends.

JAX is made to show two CPU devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``;
the device count is fixed per process, so the runs share one fresh subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from lstmcor.distribute import parse_devices, setup

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jax")


@pytest.mark.parametrize(("value", "expected"), [("all", "all"), ("ALL", "all"), ("1", 1), (2, 2), ("4", 4)])
def test_parse_devices(value, expected):
    assert parse_devices(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "two", None])
def test_parse_devices_refuses(value):
    with pytest.raises(ValueError, match="--devices"):
        parse_devices(value)


def test_one_device_needs_no_setup():
    assert setup(1, batch_size=3) is None


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the message for the other backends")
def test_other_backends_say_what_to_use():
    with pytest.raises(ValueError, match="needs the JAX backend.*KERAS_BACKEND=jax"):
        setup(2, batch_size=8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """One fresh process (JAX showing two CPU devices) trains the same run on 1 device, then on 2, then
    tries a batch of 3 on 2; returns the histories, the weights' files, the device count the 2-device
    weights live on, and the refusal's message. Each run sets its distribution in its own scope."""
    tmp_path = tmp_path_factory.mktemp("distribute")
    code = textwrap.dedent(f"""
        import json, numpy as np
        from lstmcor.data import load_default
        from lstmcor.data.dataset import RegistrationSet
        from lstmcor.training import train
        full = load_default()
        small = RegistrationSet(np.ascontiguousarray(full.images[:, ::5, ::6]), None, full.subjects, full.splits,
                                [], "small")
        report = {{}}
        for devices in (1, 2):
            result = train("voxelmorph", "ci", small, {str(tmp_path)!r} + f"/run{{devices}}", epochs=2,
                           steps_per_epoch=2, batch_size=4, learning_rate=1e-3, devices=devices, verbose=0)
            np.savez({str(tmp_path)!r} + f"/w{{devices}}.npz", *result.model.get_weights())
            report[devices] = result.history
            report[f"placed{{devices}}"] = len(result.model.trainable_weights[0].value.sharding.device_set)
        try:
            train("voxelmorph", "ci", small, {str(tmp_path)!r} + "/odd", batch_size=3, devices=2, verbose=0)
        except ValueError as error:
            report["odd"] = str(error)
        print(json.dumps(report))
    """)
    # optimisation level 0: XLA compiles for the CPU in half the time; it changes speed, not results
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return {"folder": tmp_path, **json.loads(done.stdout.strip().splitlines()[-1])}


@pytest.mark.slow
def test_two_devices_end_where_one_device_ends(runs):
    tmp_path, h1, h2 = runs["folder"], runs["1"], runs["2"]
    assert (runs["placed1"], runs["placed2"]) == (1, 2)  # the second run was spread, the first was not
    # Same global batch, gradients averaged over the two halves: the same step up to the order of
    # floating-point sums (measured on LSTM-COR: losses equal to 7 digits, weights within 6e-7).
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-5)
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-5)
    w1, w2 = np.load(tmp_path / "w1.npz"), np.load(tmp_path / "w2.npz")
    assert len(w1.files) == len(w2.files)
    for key in w1.files:
        np.testing.assert_allclose(w2[key], w1[key], atol=1e-5, err_msg=key)
    # checkpoints and logs are written once, by the one process
    assert len((tmp_path / "run2" / "log.csv").read_text().strip().splitlines()) == 3


@pytest.mark.slow
def test_a_batch_that_does_not_divide_is_refused(runs):
    assert "does not divide evenly across 2 devices" in runs.get("odd", "no error")
    assert not (runs["folder"] / "odd").exists()
