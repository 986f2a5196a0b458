"""The command line: end to end on the default data and on NIfTI files; clean failures."""
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from cli_helpers import fails

from lstmcor.cli import main
from lstmcor.data import load_default
from lstmcor.models import build_voxelmorph


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "model.keras"
    model = build_voxelmorph()
    layer = model.get_layer("flow_conv")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.array([1.0, -2.0], np.float32)])  # a known shift
    model.save(path)
    return path


@pytest.fixture(scope="module")
def nifti_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nii")
    data = load_default()
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-80.0, -96.0, 4.0]
    i, j = data.splits["test"][:2]
    nib.save(nib.Nifti1Image(data.images[i] * 900.0, affine), folder / "moving.nii.gz")  # any intensity range
    nib.save(nib.Nifti1Image(data.images[j] * 900.0, affine), folder / "fixed.nii.gz")
    nib.save(nib.Nifti1Image(data.labels[i].astype(np.int16), affine), folder / "moving_seg.nii.gz")
    return folder, affine, data.images[i]


def test_help_is_fast_and_helpful():
    out = subprocess.run([sys.executable, "-m", "lstmcor", "register", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    assert "fixed image's affine" in out.stdout and "--weights" in out.stdout


def test_register_nifti_end_to_end(tmp_path, weights, nifti_pair, capsys):
    folder, affine, moving = nifti_pair
    code = main(["register", str(folder / "moving.nii.gz"), str(folder / "fixed.nii.gz"), "--weights", str(weights),
                 "-o", str(tmp_path / "moved.nii.gz"), "--flow", str(tmp_path / "flow.nii.gz"),
                 "--moving-labels", str(folder / "moving_seg.nii.gz"),
                 "--moved-labels", str(tmp_path / "moved_seg.nii.gz")])
    assert code == 0, capsys.readouterr().err
    moved = nib.load(tmp_path / "moved.nii.gz")
    flow = nib.load(tmp_path / "flow.nii.gz").get_fdata()
    np.testing.assert_allclose(moved.affine, affine)
    assert moved.shape == (160, 192) and flow.shape == (160, 192, 2)
    np.testing.assert_allclose(flow[..., 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(flow[..., 1], -2.0, atol=1e-5)
    # the shift moves content: moved(p) = moving(p + (1, -2)), moving rescaled to [0, 1]
    expected = (moving - moving.min()) / (moving.max() - moving.min())
    np.testing.assert_allclose(moved.get_fdata()[:-1, 2:], expected[1:, :-2], atol=1e-5)
    labels = nib.load(tmp_path / "moved_seg.nii.gz")
    assert np.issubdtype(labels.get_data_dtype(), np.integer)


def test_register_png(tmp_path, weights):
    from PIL import Image

    data = load_default()
    for name, k in (("a.png", 0), ("b.png", 1)):
        Image.fromarray((data.images[k] * 255).astype(np.uint8)).save(tmp_path / name)
    code = main(["register", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--weights", str(weights),
                 "-o", str(tmp_path / "moved.nii")])
    assert code == 0
    assert nib.load(tmp_path / "moved.nii").shape == (160, 192)


@pytest.mark.slow
def test_train_and_evaluate_on_default_data(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "voxelmorph", "--preset", "ci", "--out", str(run)]) == 0
    assert (run / "model.keras").exists() and (run / "log.csv").exists()
    assert main(["evaluate", "--weights", str(run / "model.keras"), "--pairs", "3", "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "| identity |" in out and "| run |" in out
    assert (tmp_path / "ev" / "summary.json").exists()


def test_clean_failures(tmp_path, weights, nifti_pair, capsys):
    folder, affine, _ = nifti_pair
    moving, fixed = str(folder / "moving.nii.gz"), str(folder / "fixed.nii.gz")
    out = str(tmp_path / "o.nii.gz")
    fails(["register", str(tmp_path / "nope.nii.gz"), fixed, "--weights", str(weights), "-o", out], capsys,
           "does not exist")
    (tmp_path / "text.nii.gz").write_text("hello")
    fails(["register", str(tmp_path / "text.nii.gz"), fixed, "--weights", str(weights), "-o", out], capsys,
           "cannot read")
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64)).astype(np.float32), affine),
             tmp_path / "small.nii.gz")
    fails(["register", str(tmp_path / "small.nii.gz"), fixed, "--weights", str(weights), "-o", out], capsys,
           "resample them to one grid")
    nan = np.ones((160, 192), np.float32)
    nan[5, 5] = np.nan
    nib.save(nib.Nifti1Image(nan, affine), tmp_path / "nan.nii.gz")
    fails(["register", str(tmp_path / "nan.nii.gz"), fixed, "--weights", str(weights), "-o", out], capsys, "NaN")
    (tmp_path / "bad.keras").write_bytes(b"PK\x03\x04garbage")
    fails(["register", moving, fixed, "--weights", str(tmp_path / "bad.keras"), "-o", out], capsys,
           "not a model saved by lstmcor")
    fails(["register", moving, fixed, "--weights", str(weights), "-o", str(tmp_path / "o.png")], capsys,
           "must end in .nii")
    nib.save(nib.Nifti1Image(np.zeros((160, 192), np.float32), affine), tmp_path / "flat.nii.gz")
    fails(["register", str(tmp_path / "flat.nii.gz"), fixed, "--weights", str(weights), "-o", out], capsys,
           "flat.nii.gz': image is constant")
    vol = np.zeros((160, 192, 5), np.float32)
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "vol.nii.gz")
    fails(["register", str(tmp_path / "vol.nii.gz"), fixed, "--weights", str(weights), "-o", out], capsys,
           "3D volume")
    fails(["train", "--model", "voxelmorph", "--no-funnel", "--out", str(tmp_path / "r")], capsys,
           "apply to --model lstmcor only")
    fails(["evaluate", "--weights", str(tmp_path / "missing.keras")], capsys, "no weights")
    fails(["train", "--preset", "ci", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "r2")], capsys,
           "does not exist")
