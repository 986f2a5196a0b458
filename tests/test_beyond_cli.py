"""The options beyond the paper from the command line: --loss, --integration-steps, then
evaluate and register with the model they make, and resume refusing a changed loss.

The commands run in this process (``main``) on a tiny data folder (32 x 32 images with labels):
the flags' path from the command line to the run and back is the same at any image size.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import fails

from lstmcor.cli import main


@pytest.mark.slow
def test_ncc_and_integration_from_train_to_register(tmp_path, tiny_folder, capsys):
    import nibabel as nib

    import lstmcor

    run = tmp_path / "run"
    assert main(["train", "--model", "voxelmorph", "--preset", "ci", "--loss", "ncc", "--lam", "1",
                 "--integration-steps", "7", "--data", str(tiny_folder), "--out", str(run)]) == 0, \
        capsys.readouterr().err
    state = json.loads((run / "state.json").read_text())
    assert state["loss"] == "ncc" and state["lambda"] == 1.0
    assert state["model_options"] == {"integration_steps": 7}
    model = lstmcor.load_model(run / "model.keras")
    assert "integrate" in [layer.name for layer in model.layers]

    fails(["train", "--out", str(run), "--resume", "--loss", "mse", "--epochs", "3"], capsys, "loss 'ncc' -> 'mse'")

    moving, fixed = tiny_folder / "s00.nii.gz", tiny_folder / "s01.nii.gz"
    assert main(["register", str(moving), str(fixed), "--weights", str(run / "model.keras"), "-o",
                 str(tmp_path / "moved.nii.gz"), "--flow", str(tmp_path / "flow.nii.gz")]) == 0, \
        capsys.readouterr().err
    flow = np.asarray(nib.load(tmp_path / "flow.nii.gz").dataobj)
    assert flow.shape == (*nib.load(fixed).shape, 2) and np.isfinite(flow).all()
    assert lstmcor.folding_fraction(flow) == 0.0
    assert main(["evaluate", "--weights", str(run / "model.keras"), "--data", str(tiny_folder), "--pairs", "2",
                 "--out", str(tmp_path / "eval")]) == 0, capsys.readouterr().err
    assert "HD95" in (tmp_path / "eval" / "table.md").read_text()


def test_negative_integration_steps_is_refused(tmp_path, capsys):
    fails(["train", "--integration-steps", "-1", "--out", str(tmp_path / "r")], capsys,
          "--integration-steps must be 0 or more")
    assert not (tmp_path / "r").exists()
