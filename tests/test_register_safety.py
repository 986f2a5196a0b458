"""`lstmcor register` loses nothing: outputs never overwrite inputs or each other, every output is
checked before anything is written and written all or none; label ids stay exact; a model that is
not a registration network is refused first; intensities are read and scaled robustly; other sizes
are resampled (not cropped); a slice keeps its own affine."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import lstmcor
from lstmcor.cli import main
from lstmcor.data import normalize_intensity, read_image
from lstmcor.data.arrays import label_dtype, resample_field
from lstmcor.models import build_voxelmorph
from lstmcor.transform import warp

ROOT = Path(__file__).resolve().parents[1]
SIZE = (32, 32)
SHIFT = (1.0, -2.0)
BIG_IDS = (40000, 2**24 + 1, 2**31 - 1)


def _model(shift) -> keras.Model:
    model = build_voxelmorph(SIZE)
    layer = model.get_layer("flow_conv")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.array(shift, np.float32)])  # a constant field
    return model


@pytest.fixture(scope="module")
def models():
    return {"shift": _model(SHIFT), "zero": _model((0.0, 0.0))}


@pytest.fixture(scope="module")
def weights(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.keras"
        model.save(paths[name])
    return paths


def _image(shape=SIZE, seed=0) -> np.ndarray:
    """A smooth, positive, MRI-like image (no zero background)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] / np.array(shape, float)[:, None, None]
    rng = np.random.default_rng(seed)
    return (300 + 200 * np.sin(5 * rows + rng.random()) * np.cos(4 * cols) + 10 * rng.random(shape)).astype(
        np.float32)


def _labels(shape=SIZE, ids=BIG_IDS) -> np.ndarray:
    labels = np.zeros(shape, np.int64)
    for k, value in enumerate(ids):
        labels[4 + 8 * k: 10 + 8 * k, 3:20 + k] = value
    labels[-3:, -5:] = ids[-1]  # at the border, where samples clamp
    return labels


def _save(path, array, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))
    return str(path)


@pytest.fixture()
def pair(tmp_path):
    files = {"moving": _save(tmp_path / "moving.nii.gz", _image(seed=1)),
             "fixed": _save(tmp_path / "fixed.nii.gz", _image(seed=2)),
             "labels": _save(tmp_path / "labels.nii.gz", _labels().astype(np.int32))}
    return tmp_path, files


def _shifted(labels, shift=SHIFT):
    """moved(p) = labels(p + shift), samples clamped at the border."""
    h, w = labels.shape
    rows = np.clip(np.arange(h) + int(shift[0]), 0, h - 1)
    cols = np.clip(np.arange(w) + int(shift[1]), 0, w - 1)
    return labels[rows][:, cols]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv, capsys, pattern, folder):
    before = _snapshot(folder)
    code = main(["register", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert pattern in err, err
    assert _snapshot(folder) == before  # nothing written, nothing overwritten, no temporary files left
    return err


# --------------------------------------------------------------------------- 1. output paths


def test_an_output_that_is_an_input_or_another_output_is_refused(pair, weights, capsys):
    folder, f = pair
    w = str(weights["shift"])
    base = [f["moving"], f["fixed"], "--weights", w]
    _refused([*base, "-o", f["moving"]], capsys, "is the moving image", folder)
    _refused([*base, "-o", str(folder / "m.nii.gz"), "--flow", f["fixed"]], capsys, "is the fixed image", folder)
    _refused([*base, "-o", str(folder / "same.nii.gz"), "--flow", str(folder / "same.nii.gz")], capsys,
             "are the same file", folder)
    _refused([*base, "-o", str(folder / "sub" / ".." / "same.nii.gz"), "--flow", str(folder / "same.nii.gz")],
             capsys, "are the same file", folder)  # compared as resolved paths
    _refused([*base, "-o", str(folder / "moved_labels.nii.gz"), "--moving-labels", f["labels"]], capsys,
             "the moved labels (default path", folder)
    _refused([*base, "-o", str(folder / "m.nii.gz"), "--moving-labels", f["labels"], "--moved-labels", f["labels"]],
             capsys, "is --moving-labels", folder)
    _refused([*base, "-o", str(folder / "m.nii.gz"), "--moving-labels", f["labels"],
              "--moved-labels", str(folder / "m.nii.gz")], capsys, "are the same file", folder)
    os.symlink(f["moving"], folder / "alias.nii.gz")
    _refused([*base, "-o", str(folder / "alias.nii.gz")], capsys, "is the moving image", folder)
    os.link(f["fixed"], folder / "hard.nii.gz")
    _refused([*base, "-o", str(folder / "m.nii.gz"), "--flow", str(folder / "hard.nii.gz")], capsys,
             "is the fixed image", folder)
    nii_weights = folder / "w.nii"
    nii_weights.write_bytes(b"")
    _refused([f["moving"], f["fixed"], "--weights", str(nii_weights), "-o", str(nii_weights)], capsys,
             "is --weights", folder)


def test_every_output_is_checked_before_the_first_is_written(pair, weights, capsys):
    folder, f = pair
    base = [f["moving"], f["fixed"], "--weights", str(weights["shift"]), "-o", str(folder / "moved.nii.gz")]
    _refused([*base, "--flow", str(folder / "flow.png")], capsys, "must end in .nii", folder)
    (folder / "plain.txt").write_text("a file")
    _refused([*base, "--flow", str(folder / "plain.txt" / "deeper" / "flow.nii.gz")], capsys,
             "is a file, not a folder", folder)
    (folder / "adir.nii.gz").mkdir()
    _refused([*base, "--flow", str(folder / "adir.nii.gz")], capsys, "is a folder", folder)
    _refused([*base, "--moving-labels", f["labels"], "--moved-labels", str(folder / "labels.png")], capsys,
             "must end in .nii", folder)
    assert not (folder / "moved.nii.gz").exists()


def test_a_failed_write_leaves_no_output_and_keeps_the_old_files(pair, weights, capsys, monkeypatch):
    from lstmcor.data import io

    folder, f = pair
    old = _save(folder / "moved.nii.gz", np.full(SIZE, 7.0, np.float32))
    real, calls = io._save_nifti, []

    def failing(path, array, affine):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half")  # a partial file, then the disk is full
            raise OSError(28, "No space left on device")
        real(path, array, affine)

    monkeypatch.setattr(io, "_save_nifti", failing)
    _refused([f["moving"], f["fixed"], "--weights", str(weights["shift"]), "-o", old,
              "--flow", str(folder / "new" / "flow.nii.gz")], capsys, "No space left", folder)
    assert len(calls) == 2 and not (folder / "new").exists()
    np.testing.assert_array_equal(nib.load(old).get_fdata(), 7.0)  # the old -o is untouched


def test_outputs_are_written_when_all_is_well(pair, weights, capsys):
    folder, f = pair
    out = folder / "out" / "deep"
    code = main(["register", f["moving"], f["fixed"], "--weights", str(weights["shift"]),
                 "-o", str(out / "moved.nii.gz"), "--flow", str(out / "flow.nii"), "--moving-labels", f["labels"]])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["flow.nii", "moved.nii.gz", "moved_labels.nii.gz"]
    assert nib.load(out / "flow.nii").shape == (*SIZE, 2)


# --------------------------------------------------------------------------- 2. exact labels


def test_warp_nearest_is_exact_for_integer_labels():
    labels = _labels(ids=(*BIG_IDS, 2**40 + 3))
    assert labels.dtype == np.int64
    zero = np.zeros((*SIZE, 2), np.float32)
    np.testing.assert_array_equal(warp(labels, zero, "nearest"), labels)
    moved = warp(labels, zero + np.array(SHIFT, np.float32), "nearest")
    assert moved.dtype == np.int64
    np.testing.assert_array_equal(moved, _shifted(labels))
    for dtype in (np.uint16, np.int32, np.uint32):
        small = _labels(ids=(1, 40000, int(np.iinfo(dtype).max))).astype(dtype)
        np.testing.assert_array_equal(warp(small, zero + 0.4, "nearest"), small)
    # the NumPy nearest path picks the same pixels as the network's transformer on a random field
    field = np.random.default_rng(0).normal(0, 3, (1, *SIZE, 2)).astype(np.float32)
    image = np.arange(np.prod(SIZE), dtype=np.float32).reshape(1, *SIZE, 1)
    from keras import ops

    from lstmcor.transform import spatial_transform

    np.testing.assert_array_equal(warp(image, field, "nearest"),
                                  ops.convert_to_numpy(spatial_transform(image, field, "nearest")))


def test_python_register_keeps_label_ids(models):
    moving = normalize_intensity(_image(seed=1))
    fixed = normalize_intensity(_image(seed=2))
    labels = _labels()
    same = lstmcor.register(models["zero"], moving, fixed, labels)["moved_labels"]
    assert same.dtype == labels.dtype
    np.testing.assert_array_equal(same, labels)
    moved = lstmcor.register(models["shift"], moving, fixed, labels)["moved_labels"]
    np.testing.assert_array_equal(moved, _shifted(labels))
    assert set(np.unique(moved)) == {0, *BIG_IDS}


def test_cli_keeps_label_ids(pair, weights):
    # the command line in a fresh process (both registrations in one, each through lstmcor.cli.main)
    folder, f = pair
    labels = _labels()
    runs = {name: ["register", f["moving"], f["fixed"], "--weights", str(weights[name]), "-o",
                   str(folder / name / "moved.nii.gz"), "--moving-labels", f["labels"]] for name in ("zero", "shift")}
    code = f"import sys\nfrom lstmcor.cli import main\nsys.exit(max(main(argv) for argv in {list(runs.values())!r}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name, expected in (("zero", labels), ("shift", _shifted(labels))):
        written = nib.load(folder / name / "moved_labels.nii.gz")
        assert written.get_data_dtype() == np.int32
        np.testing.assert_array_equal(np.asarray(written.dataobj), expected)


def test_label_type_holds_the_ids(pair, weights, capsys):
    assert [label_dtype(np.array([0, hi])) for hi in (255, 256, 40000, 70000, 2**31)] == [
        np.uint8, np.int16, np.uint16, np.int32, np.int64]
    folder, f = pair
    _save(folder / "seg.nii.gz", _labels(ids=(3, 40000, 7)).astype(np.int32))
    code = main(["register", f["moving"], f["fixed"], "--weights", str(weights["zero"]),
                 "-o", str(folder / "m.nii.gz"), "--moving-labels", str(folder / "seg.nii.gz")])
    assert code == 0, capsys.readouterr().err
    written = nib.load(folder / "moved_labels.nii.gz")
    assert written.get_data_dtype() == np.uint16  # not int16, where 40000 became -25536
    np.testing.assert_array_equal(np.asarray(written.dataobj), _labels(ids=(3, 40000, 7)))


# --------------------------------------------------------------------------- 3. not a registration network


def test_a_model_that_is_not_a_registration_network_is_refused_first(pair, capsys):
    folder, f = pair
    a = keras.Input((*SIZE, 1))
    b = keras.Input((*SIZE, 1))
    one_input = keras.Model(a, keras.layers.Conv2D(2, 3, padding="same")(a))
    one_output = keras.Model([a, b], keras.layers.Conv2D(1, 3, padding="same")(keras.layers.Concatenate()([a, b])))
    for name, model in (("one_input", one_input), ("one_output", one_output)):
        model.save(folder / f"{name}.keras")
        out = folder / name
        _refused([f["moving"], f["fixed"], "--weights", str(folder / f"{name}.keras"), "-o", str(out / "m.nii.gz"),
                  "--flow", str(out / "flow.nii.gz"), "--moving-labels", f["labels"]], capsys,
                 "not a registration network", folder)
        assert not out.exists()


# --------------------------------------------------------------------------- 4. intensities and grids


def test_normalize_intensity_is_robust_to_a_hot_pixel():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:64, 0:64]
    brain = (rows - 32) ** 2 + (cols - 32) ** 2 < 24**2
    image = np.zeros((64, 64), np.uint16)
    image[brain] = rng.integers(800, 1200, brain.sum())
    image[10, 10] = 65535  # one hot pixel
    scaled = normalize_intensity(image)
    assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0
    assert scaled[10, 10] == 1.0 and (scaled[~brain & (rows != 10)] == 0).all()  # background stays 0
    inside = scaled[brain]
    assert inside.min() > 0.6 and np.percentile(inside, 99) > 0.95  # not squashed into [0, 0.02]
    with pytest.raises(ValueError, match="NaN"):
        normalize_intensity(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="constant"):
        normalize_intensity(np.ones((4, 4)))


def test_python_register_checks_the_range(models):
    fixed = normalize_intensity(_image())
    pattern = r"moving has values in \[100\.3\d*, 508\.2\d*\], outside \[0, 1\].*lstmcor\.data\.normalize_intensity"
    with pytest.raises(ValueError, match=pattern) as info:
        lstmcor.register(models["zero"], _image(), fixed)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"fixed has values in \[-0\.5, 1\]"):
        lstmcor.register(models["zero"], fixed, fixed - 0.5 * (fixed == 0))
    lstmcor.register(models["zero"], fixed * (1 + 5e-4), fixed)  # within the tolerance


def test_palette_and_16_bit_pngs(tmp_path):
    index = np.tile(np.arange(0, 200, 4, dtype=np.uint8), (12, 1))
    palette = Image.fromarray(index, mode="P")
    palette.putpalette([v for k in range(256) for v in (255 - k,) * 3])  # index k is grey 255 - k
    palette.save(tmp_path / "palette.png")
    with Image.open(tmp_path / "palette.png") as im:
        assert im.mode == "P"
    image, _ = read_image(tmp_path / "palette.png")
    np.testing.assert_allclose(image, normalize_intensity(255.0 - index), atol=1e-6)  # intensities, not indices

    deep = (np.arange(40 * 50).reshape(40, 50) * 29 % 65000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    image, _ = read_image(tmp_path / "deep.png")
    np.testing.assert_allclose(image, normalize_intensity(deep), atol=1e-6)
    assert len(np.unique(image)) > 1000  # not truncated to 8 bits


def test_resample_field_scales_by_the_factors():
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float32)
    field = np.stack([0.1 * rows + 0.05 * cols, -0.2 * cols + 0.3], -1)
    big = resample_field(field, (64, 64))
    q_rows, q_cols = (np.mgrid[0:64, 0:64] + 0.5) / 2 - 0.5  # the big grid's pixels on the small grid
    expected = 2 * np.stack([0.1 * q_rows + 0.05 * q_cols, -0.2 * q_cols + 0.3], -1)
    np.testing.assert_allclose(big[1:-1, 1:-1], expected[1:-1, 1:-1], atol=1e-5)
    odd = resample_field(np.ones((32, 32, 2), np.float32), (50, 40))
    assert odd.shape == (50, 40, 2)
    np.testing.assert_allclose(odd[..., 0], 50 / 32, rtol=1e-6)
    np.testing.assert_allclose(odd[..., 1], 40 / 32, rtol=1e-6)


@pytest.mark.parametrize("shape", [(64, 64), (50, 40)])
def test_other_sizes_are_resampled_not_cropped(tmp_path, weights, capsys, shape):
    moving, fixed = _image(shape, seed=1), _image(shape, seed=2)
    labels = _labels(shape)
    files = [_save(tmp_path / "m.nii.gz", moving), _save(tmp_path / "f.nii.gz", fixed)]
    _save(tmp_path / "seg.nii.gz", labels.astype(np.int32))
    code = main(["register", *files, "--weights", str(weights["shift"]), "-o", str(tmp_path / "moved.nii.gz"),
                 "--flow", str(tmp_path / "flow.nii.gz"), "--moving-labels", str(tmp_path / "seg.nii.gz")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    notes = [line for line in captured.out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and f"from {shape[0]}x{shape[1]} to the model's 32x32" in notes[0]
    flow = nib.load(tmp_path / "flow.nii.gz").get_fdata()
    assert flow.shape == (*shape, 2)
    factors = np.array(shape) / np.array(SIZE)
    np.testing.assert_allclose(flow, np.broadcast_to(np.array(SHIFT) * factors, flow.shape), atol=1e-4)
    moved = nib.load(tmp_path / "moved.nii.gz").get_fdata()
    assert moved.shape == shape
    expected = warp(normalize_intensity(moving), flow.astype(np.float32))
    np.testing.assert_allclose(moved, expected, atol=1e-5)  # the original-resolution image, warped
    band = np.ones(shape, bool)
    band[8:-8, 8:-8] = False
    assert moved[band].mean() > 0.2 and not (moved == 0).all(axis=0).any() and not (moved == 0).all(axis=1).any()
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "moved_labels.nii.gz").dataobj),
                                  warp(labels, flow.astype(np.float32), "nearest"))
    if shape == (64, 64):  # an integer shift (2, -4): the labels move by exactly that
        np.testing.assert_array_equal(warp(labels, flow.astype(np.float32), "nearest"), _shifted(labels, (2, -4)))


def _oblique_affine():
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ tilt @ np.diag([0.9, 1.2, 2.5])
    affine[:3, 3] = [-40.5, 17.25, 8.0]
    return affine


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_a_slice_keeps_its_own_affine(tmp_path, axis):
    affine = _oblique_affine()
    volume = np.random.default_rng(0).random((12, 10, 8)).astype(np.float32)
    _save(tmp_path / "v.nii.gz", volume, affine)
    k = 3
    image, plane = read_image(tmp_path / "v.nii.gz", slice_index=k, axis=axis)
    np.testing.assert_allclose(image, normalize_intensity(np.take(volume, k, axis=axis)), atol=1e-6)
    sliced = nib.load(tmp_path / "v.nii.gz").slicer[tuple(slice(k, k + 1) if a == axis % 3 else slice(None)
                                                          for a in range(3))]
    for i, j in [(0, 0), (1, 2), (image.shape[0] - 1, image.shape[1] - 1), (5, 3)]:
        voxel = [i, j]
        voxel.insert(axis % 3, k)
        expected = affine @ [*voxel, 1]
        np.testing.assert_allclose(plane @ [i, j, 0, 1], expected, atol=1e-9)
        sliced_voxel = [i, j]
        sliced_voxel.insert(axis % 3, 0)
        np.testing.assert_allclose(nib.affines.apply_affine(sliced.affine, sliced_voxel), expected[:3], atol=1e-9)
    # columns 0 and 1 are the volume's columns of the two kept axes
    kept = [a for a in range(3) if a != axis % 3]
    np.testing.assert_allclose(plane[:3, :2], affine[:3, kept])


def test_cli_slice_outputs_carry_the_slice_affine(tmp_path, weights, capsys):
    affine = _oblique_affine()
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        _save(tmp_path / f"{name}.nii.gz", (rng.random((32, 6, 32)) * 500).astype(np.float32), affine)
    code = main(["register", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--slice", "4", "--axis", "1",
                 "--weights", str(weights["zero"]), "-o", str(tmp_path / "moved.nii.gz")])
    assert code == 0, capsys.readouterr().err
    moved = nib.load(tmp_path / "moved.nii.gz")
    assert moved.shape == SIZE
    for i, j in [(0, 0), (7, 30), (31, 2)]:
        np.testing.assert_allclose(moved.affine @ [i, j, 0, 1], affine @ [i, 4, j, 1], atol=1e-5)
