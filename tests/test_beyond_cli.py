"""The options beyond the paper from the command line: --loss, --integration-steps, then
evaluate and register with the model they make, and resume refusing a changed loss."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "lstmcor", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_ncc_and_integration_from_train_to_register(tmp_path):
    run = tmp_path / "run"
    done = _cli("train", "--model", "voxelmorph", "--preset", "ci", "--loss", "ncc", "--lam", "1",
                "--integration-steps", "7", "--out", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    state = json.loads((run / "state.json").read_text())
    assert state["loss"] == "ncc" and state["lambda"] == 1.0
    assert state["model_options"] == {"integration_steps": 7}

    import lstmcor

    model = lstmcor.load_model(run / "model.keras")
    assert "integrate" in [layer.name for layer in model.layers]

    refused = _cli("train", "--out", str(run), "--resume", "--loss", "mse", "--epochs", "3", cwd=tmp_path)
    assert refused.returncode == 2 and "loss 'ncc' -> 'mse'" in refused.stderr.replace('"', "'")

    ds = lstmcor.load_default()
    np.save(tmp_path / "m.npy", ds.images[0])
    np.save(tmp_path / "f.npy", ds.images[1])
    registered = _cli("register", str(tmp_path / "m.npy"), str(tmp_path / "f.npy"), "--weights",
                      str(run / "model.keras"), "-o", str(tmp_path / "moved.nii.gz"), "--flow",
                      str(tmp_path / "flow.nii.gz"), cwd=tmp_path)
    assert registered.returncode == 0, registered.stderr
    import nibabel as nib

    flow = np.asarray(nib.load(tmp_path / "flow.nii.gz").dataobj)
    assert flow.shape == (160, 192, 2) and np.isfinite(flow).all()
    assert lstmcor.folding_fraction(flow) == 0.0
    scored = _cli("evaluate", "--weights", str(run / "model.keras"), "--pairs", "2", "--out",
                  str(tmp_path / "eval"), cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert "HD95" in (tmp_path / "eval" / "table.md").read_text()


def test_negative_integration_steps_is_refused(tmp_path):
    done = _cli("train", "--integration-steps", "-1", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 2 and "--integration-steps must be 0 or more" in done.stderr
