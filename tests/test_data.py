"""Tests of lstmcor.data: the embedded set, the folder loaders, bad inputs and pair batches."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from lstmcor import data as D
from lstmcor.metrics import jacobian_determinant, mean_dice

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ds():
    return D.load_default()


# ------------------------------------------------------------------------------ embedded set


def test_default_loads_with_right_types(ds):
    again = D.load_dataset("default")
    assert again.name == "default" and np.array_equal(again.images, ds.images)
    assert ds.images.shape == (216, 160, 192) and ds.images.dtype == np.float32
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert ds.labels.shape == ds.images.shape and ds.labels.dtype == np.int32
    assert set(np.unique(ds.labels)) == {0, 1, 2, 3}
    assert ds.label_names == ["background", "CSF", "grey matter", "white matter"]
    assert len(ds.subjects) == len(ds) == 216
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 160, "val": 24, "test": 32}
    # both real brains in every split, half each
    for split, idx in ds.splits.items():
        bases = [ds.base_of(i) for i in idx]
        assert bases.count("icbm152") == bases.count("colin27") == len(idx) // 2


def test_default_splits_disjoint_by_subject(ds):
    seen = {}
    for split, idx in ds.splits.items():
        subj = {ds.subjects[i] for i in idx}
        assert len(subj) == len(idx)
        for other, s in seen.items():
            assert not subj & s, (split, other)
        seen[split] = subj
    assert sorted(np.concatenate(list(ds.splits.values()))) == list(range(len(ds)))


def test_deformations_are_folding_free_and_sized(ds):
    for i in range(0, len(ds), 27):
        d = ds.subject_displacement(i)
        assert jacobian_determinant(d).min() > 0
        mag = np.linalg.norm(d, axis=-1)[ds.labels[i] > 0]
        assert 0.5 < mag.mean() < 8 and mag.max() < 20


def _same_brain_pair(ds, split="test"):
    idx = ds.splits[split]
    m = int(idx[0])
    f = next(int(j) for j in idx[1:] if ds.base_of(j) == ds.base_of(m))
    return m, f


def test_true_displacement_aligns_the_pair(ds):
    m, f = _same_brain_pair(ds)
    d = ds.true_displacement(m, f)
    assert d.shape == (160, 192, 2) and d.dtype == np.float32
    assert jacobian_determinant(d).min() > 0
    before = mean_dice(ds.labels[f], ds.labels[m])
    after = mean_dice(ds.labels[f], D.warp_array(ds.labels[m], d, order=0))
    assert after > before + 0.15, (before, after)
    mae_before = np.abs(ds.images[m] - ds.images[f]).mean()
    mae_after = np.abs(D.warp_array(ds.images[m], d, order=1) - ds.images[f]).mean()
    assert mae_after < 0.7 * mae_before
    # the identity pair needs no motion, and two different people have no known answer
    assert np.abs(ds.true_displacement(m, m)).max() < 0.5
    other = next(int(j) for j in ds.splits["test"] if ds.base_of(j) != ds.base_of(m))
    assert ds.true_displacement(m, other) is None
    # a subset keeps the ground truth of its images
    sub = ds.subset("test")
    sm, sf = list(ds.splits["test"]).index(m), list(ds.splits["test"]).index(f)
    np.testing.assert_array_equal(sub.true_displacement(sm, sf), d)
    assert list(sub.splits) == ["test"] and len(sub) == 32


@pytest.mark.slow
def test_rebuild_reproduces_shipped_arrays(tmp_path):
    spec = importlib.util.spec_from_file_location("make_dataset", REPO / "data" / "make_dataset.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    try:
        src = mk.find_sources(fetch=True)
    except (FileNotFoundError, SystemExit) as exc:  # only where nilearn 0.14.1 or apt is absent
        pytest.skip(f"source files unavailable: {exc}")
    arrays, _ = mk.build(src, verbose=False)
    shipped_path = REPO / "data" / D.DEFAULT_FILENAME
    with np.load(shipped_path, allow_pickle=False) as shipped:
        assert sorted(shipped.files) == sorted(f"{k}" for k in arrays)
        for k in arrays:
            np.testing.assert_array_equal(shipped[k], np.asarray(arrays[k]).reshape(shipped[k].shape),
                                          err_msg=k)
    out = tmp_path / "rebuilt.npz"
    mk.write_npz(out, arrays)
    assert out.read_bytes() == shipped_path.read_bytes()


# ------------------------------------------------------------------------------ helpers


def test_normalize_intensity():
    x = D.normalize_intensity(np.array([[2.0, 4.0], [6.0, 10.0]]))
    assert x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    with pytest.raises(ValueError, match="NaN"):
        D.normalize_intensity(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="constant"):
        D.normalize_intensity(np.ones((4, 4)))


def test_pad_or_crop_keeps_labels_integer_and_aligned():
    lab = np.zeros((150, 170), np.int32)
    lab[10, 20] = 7
    out = D.pad_or_crop(lab, 16)
    assert out.shape == (160, 176) and out.dtype == np.int32
    assert out[15, 23] == 7 and out.sum() == 7          # centred: 5 rows and 3 columns before
    img = np.zeros((150, 170), np.float32)
    img[10, 20] = 1.0
    assert D.pad_or_crop(img, 16)[15, 23] == 1.0        # image moved exactly like its labels
    stack = D.pad_or_crop(np.stack([lab, lab]), target_shape=(140, 160))
    assert stack.shape == (2, 140, 160) and stack.dtype == np.int32 and stack[0, 5, 15] == 7
    assert D.pad_or_crop(np.zeros((32, 48), np.uint8)).shape == (32, 48)


def test_pair_indices(ds):
    pairs = D.pair_indices(ds, "val")
    assert len(pairs) == 24 * 23 and len(set(pairs)) == len(pairs)
    val = set(ds.splits["val"].tolist())
    assert all(m != f and m in val and f in val for m, f in pairs)
    few = D.pair_indices(ds, "test", n_pairs=50, seed=3)
    assert few == D.pair_indices(ds, "test", n_pairs=50, seed=3) and len(set(few)) == 50
    assert few != D.pair_indices(ds, "test", n_pairs=50, seed=4)


def test_pair_dataset_batches(ds):
    pd = D.PairDataset(ds, "train", batch_size=4, seed=1)
    assert len(pd) == 40
    (mov, fix), (target, zeros) = pd[0]
    assert mov.shape == fix.shape == target.shape == (4, 160, 192, 1)
    assert zeros.shape == (4, 160, 192, 2) and not zeros.any()
    assert all(a.dtype == np.float32 for a in (mov, fix, target, zeros))
    np.testing.assert_array_equal(target, fix)
    train = set(ds.splits["train"].tolist())
    for i in range(len(pd)):
        for m, f in pd.pairs_for_batch(i):
            assert m != f and ds.subjects[m] != ds.subjects[f] and m in train and f in train
    again = D.PairDataset(ds, "train", batch_size=4, seed=1)
    np.testing.assert_array_equal(again[5][0][0], pd[5][0][0])
    assert pd.pairs_for_batch(0) != pd.pairs_for_batch(1)
    first = pd.pairs_for_batch(0)
    pd.on_epoch_end()
    assert pd.pairs_for_batch(0) != first
    aug = D.PairDataset(ds, "train", batch_size=4, seed=1, augment=True, steps_per_epoch=3)
    (am, af), _ = aug[0]
    assert len(aug) == 3 and 0 <= am.min() and am.max() <= 1 and af.dtype == np.float32


def test_pair_dataset_feeds_fit(ds):
    import keras

    a = keras.Input((160, 192, 1))
    b = keras.Input((160, 192, 1))
    x = keras.layers.Concatenate()([a, b])
    moved = keras.layers.Conv2D(1, 3, padding="same", name="moved")(x)
    flow = keras.layers.Conv2D(2, 3, padding="same", name="flow")(x)
    model = keras.Model([a, b], [moved, flow])
    model.compile(optimizer="adam", loss=["mse", "mse"])
    hist = model.fit(D.PairDataset(ds, "train", batch_size=2, steps_per_epoch=2), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


# ------------------------------------------------------------------------------ user folders


def _save_nii(path, arr):
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))


def _oasis_fixture(root: Path, n=5):
    """A tiny copy of the neurite-OASIS 2D release layout (adalca/medical-datasets, neurite-oasis.md)."""
    rng = np.random.default_rng(0)
    subjects, seg4, seg24 = [], [], []
    for k in range(1, n + 1):
        name = f"OASIS_OAS1_{k:04d}_MR1"
        d = root / name
        d.mkdir(parents=True)
        img = rng.random((160, 192, 1)).astype(np.float32)
        s4 = rng.integers(0, 5, size=(160, 192, 1)).astype(np.int32)
        s24 = rng.integers(0, 25, size=(160, 192, 1)).astype(np.int32)
        _save_nii(d / "slice_norm.nii.gz", img)
        _save_nii(d / "slice_orig.nii.gz", img * 0.8)
        _save_nii(d / "slice_seg4.nii.gz", s4)
        _save_nii(d / "slice_seg24.nii.gz", s24)
        subjects.append(name)
        seg4.append(s4[..., 0])
        seg24.append(s24[..., 0])
    (root / "subjects.txt").write_text("\n".join(subjects) + "\n")
    (root / "seg4_labels.txt").write_text(
        "0 Unknown 0 0 0 0\n1 Cortical-GM 1 1 1 0\n2 Subcortical-GM 2 2 2 0\n3 White-Matter 3 3 3 0\n"
        "4 CSF 4 4 4 0\n")
    return subjects, np.stack(seg4), np.stack(seg24)


def test_oasis2d_layout(tmp_path):
    subjects, seg4, seg24 = _oasis_fixture(tmp_path / "oasis")
    got = D.load_dataset(tmp_path / "oasis")
    assert got.meta["layout"] == "oasis2d"
    assert got.images.shape == (5, 160, 192) and got.images.dtype == np.float32
    assert got.labels.dtype == np.int32
    np.testing.assert_array_equal(got.labels, seg4)
    assert got.subjects == subjects
    assert got.label_names == ["Unknown", "Cortical-GM", "Subcortical-GM", "White-Matter", "CSF"]
    assert np.isclose(got.images.min(axis=(1, 2)), 0).all() and np.isclose(got.images.max(axis=(1, 2)), 1).all()
    g24 = D.load_dataset(tmp_path / "oasis", layout="oasis2d", label_set="seg24")
    np.testing.assert_array_equal(g24.labels, seg24)
    assert len(g24.label_names) == int(seg24.max()) + 1
    # splits by subject, disjoint, covering everything, fixed by the seed
    all_idx = np.concatenate([got.splits[s] for s in D.SPLITS])
    assert sorted(all_idx) == list(range(5)) and all(len(got.splits[s]) >= 1 for s in D.SPLITS)
    again = D.load_dataset(tmp_path / "oasis", seed=0)
    assert all(np.array_equal(again.splits[s], got.splits[s]) for s in D.SPLITS)


def test_nifti_3d_volumes_with_slice(tmp_path):
    folder = tmp_path / "vols"
    folder.mkdir()
    rng = np.random.default_rng(1)
    vols = {}
    for name in ("a", "b", "c"):
        v = rng.random((20, 30, 10)).astype(np.float32)
        lab = rng.integers(0, 3, size=(20, 30, 10)).astype(np.int16)
        _save_nii(folder / f"{name}.nii.gz", v)
        _save_nii(folder / f"{name}_seg.nii.gz", lab)
        vols[name] = (v, lab)
    got = D.load_dataset(folder, slice_index=4, axis=2)
    assert got.images.shape == (3, 32, 32) and got.labels.dtype == np.int32
    v, lab = vols["a"]
    np.testing.assert_allclose(got.images[0], D.pad_or_crop(D.normalize_intensity(v[:, :, 4]), 16), atol=1e-6)
    np.testing.assert_array_equal(got.labels[0], D.pad_or_crop(lab[:, :, 4].astype(np.int32), 16))
    along0 = D.load_dataset(folder, slice_index=7, axis=0, multiple=8)
    assert along0.images.shape == (3, 32, 16)
    with pytest.raises(ValueError, match=r"a\.nii\.gz.*3D volume.*slice_index"):
        D.load_dataset(folder)
    with pytest.raises(ValueError, match="outside"):
        D.load_dataset(folder, slice_index=99, axis=2)


def test_png_and_npy_folders(tmp_path):
    rng = np.random.default_rng(2)
    png = tmp_path / "png"
    png.mkdir()
    labs = []
    for k in range(4):
        Image.fromarray((rng.random((40, 50)) * 255).astype(np.uint8)).save(png / f"s{k}.png")
        lab = rng.integers(0, 4, size=(40, 50)).astype(np.uint8)
        Image.fromarray(lab).save(png / f"s{k}_seg.png")
        labs.append(lab)
    got = D.load_dataset(png)
    assert got.meta["layout"] == "png" and got.images.shape == (4, 48, 64)
    assert got.labels.dtype == np.int32
    np.testing.assert_array_equal(got.labels[2], D.pad_or_crop(labs[2].astype(np.int32), 16))
    npy = tmp_path / "npy"
    (npy / "images").mkdir(parents=True)
    (npy / "labels").mkdir()
    for k in range(3):
        np.save(npy / "images" / f"x{k}.npy", rng.random((64, 64)))
        np.save(npy / "labels" / f"x{k}.npy", rng.integers(0, 2, size=(64, 64)))
    got = D.load_dataset(npy)
    assert got.meta["layout"] == "npy" and got.images.shape == (3, 64, 64) and got.subjects == ["x0", "x1", "x2"]
    assert got.labels.dtype == np.int32 and got.label_names == ["background", "label_1"]
    no_labels = tmp_path / "plain"
    no_labels.mkdir()
    for k in range(3):
        np.save(no_labels / f"p{k}.npy", rng.random((16, 16)))
    assert D.load_dataset(no_labels).labels is None


# ------------------------------------------------------------------------------ bad input


def _good_npy_folder(root: Path, n=3):
    root.mkdir()
    rng = np.random.default_rng(3)
    for k in range(n):
        np.save(root / f"im{k}.npy", rng.random((32, 32)))
    return root


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist.*'default'"):
        D.load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*is empty"):
        D.load_dataset(tmp_path / "empty")
    f = tmp_path / "file.npy"
    np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="is a file, not a folder"):
        D.load_dataset(f)


def test_non_image_and_unreadable_files(tmp_path):
    folder = _good_npy_folder(tmp_path / "a")
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*not a npy file.*skip_bad=True"):
        D.load_dataset(folder)
    with pytest.warns(UserWarning, match=r"skipped 1 bad file.*notes\.txt"):
        got = D.load_dataset(folder, skip_bad=True)
    assert len(got) == 3 and len(got.meta["skipped"]) == 1
    nii = tmp_path / "b"
    nii.mkdir()
    _save_nii(nii / "ok.nii.gz", np.random.default_rng(0).random((16, 16)).astype(np.float32))
    (nii / "broken.nii.gz").write_bytes(b"this is not a nifti file")
    with pytest.raises(ValueError, match=r"cannot read .*broken\.nii\.gz"):
        D.load_dataset(nii)
    png = tmp_path / "c"
    png.mkdir()
    (png / "fake.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"fake\.png"):
        D.load_dataset(png)


def test_shape_mismatch_nan_and_3d(tmp_path):
    folder = _good_npy_folder(tmp_path / "a")
    np.save(folder / "im0_seg.npy", np.zeros((30, 32), np.int32))
    np.save(folder / "im1_seg.npy", np.zeros((32, 32), np.int32))
    np.save(folder / "im2_seg.npy", np.zeros((32, 32), np.int32))
    with pytest.raises(ValueError, match=r"im0_seg\.npy.*shape \(30, 32\).*im0\.npy"):
        D.load_dataset(folder)
    nan = _good_npy_folder(tmp_path / "b")
    bad = np.ones((32, 32))
    bad[3, 3] = np.nan
    bad[0, 0] = 0
    np.save(nan / "im1.npy", bad)
    with pytest.raises(ValueError, match=r"im1\.npy.*NaN"):
        D.load_dataset(nan)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(D.load_dataset(nan, skip_bad=True)) == 2
    vol = _good_npy_folder(tmp_path / "c")
    np.save(vol / "im2.npy", np.random.default_rng(0).random((32, 32, 5)))
    with pytest.raises(ValueError, match=r"im2\.npy.*3D volume.*slice_index"):
        D.load_dataset(vol)
    lab = _good_npy_folder(tmp_path / "d")
    np.save(lab / "im0_seg.npy", np.full((32, 32), 0.5))
    with pytest.raises(ValueError, match=r"im0_seg\.npy.*non-integer"):
        D.load_dataset(lab)


def test_not_divisible_is_padded_and_partial_labels_refused(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    rng = np.random.default_rng(4)
    np.save(folder / "a.npy", rng.random((37, 45)))
    np.save(folder / "b.npy", rng.random((40, 41)))
    got = D.load_dataset(folder)
    assert got.images.shape == (2, 48, 48) and got.meta["padded_to"] == (48, 48)
    np.save(folder / "a_seg.npy", rng.integers(0, 2, size=(37, 45)))
    with pytest.raises(ValueError, match="label maps were found for 1 of 2"):
        D.load_dataset(folder)


def test_split_without_pairs_is_refused(tmp_path):
    folder = _good_npy_folder(tmp_path / "two", n=2)
    got = D.load_dataset(folder)
    with pytest.raises(ValueError, match="fewer than two subjects"):
        D.PairDataset(got, "val")
    assert len(got.splits["train"]) == 2 and len(D.pair_indices(got, "train")) == 2


def test_read_image_png_nifti_and_labels(tmp_path):
    gray = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (6, 1))  # 6 x 25, values 0..240
    Image.fromarray(gray).save(tmp_path / "a.png")
    image, affine = D.read_image(tmp_path / "a.png")
    assert image.dtype == np.float32 and image.shape == gray.shape
    np.testing.assert_allclose(image, D.normalize_intensity(gray.astype(np.float32)))
    np.testing.assert_array_equal(affine, np.eye(4))

    volume = np.random.default_rng(0).random((8, 9, 5)).astype(np.float32)
    scaled = np.diag([2.0, 3.0, 4.0, 1.0])
    scaled[:3, 3] = (-10, 5, 7)
    nib.save(nib.Nifti1Image(volume, scaled), str(tmp_path / "v.nii.gz"))
    image, affine = D.read_image(tmp_path / "v.nii.gz", slice_index=3, axis=2)
    np.testing.assert_allclose(image, D.normalize_intensity(volume[:, :, 3]), rtol=1e-6)
    slice_affine = scaled.copy()
    slice_affine[2, 3] += 3 * 4.0  # the slice's own affine: voxel (i, j, 0) is the volume's (i, j, 3)
    np.testing.assert_array_equal(affine, slice_affine)
    with pytest.raises(ValueError, match="slice_index"):
        D.read_image(tmp_path / "v.nii.gz")

    _save_nii(tmp_path / "seg.nii.gz", np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
    labels, _ = D.read_image(tmp_path / "seg.nii.gz", labels=True)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [[0, 1], [2, 3]])
    _save_nii(tmp_path / "soft.nii.gz", np.array([[0.0, 0.5], [2.0, 3.0]], np.float32))
    with pytest.raises(ValueError, match="non-integer"):
        D.read_image(tmp_path / "soft.nii.gz", labels=True)


def test_read_image_refuses_missing_unknown_and_nan(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.read_image(tmp_path / "nothing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"\.nii, \.nii\.gz, \.png or \.npy"):
        D.read_image(tmp_path / "notes.txt")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="NaN"):
        D.read_image(tmp_path / "nan.npy")


def test_data_is_found_from_a_regular_install(tmp_path, monkeypatch):
    # A regular install puts the package in site-packages, away from the repository's data/.
    monkeypatch.delenv("LSTMCOR_DATA_DIR", raising=False)
    from lstmcor.data import resources

    monkeypatch.setattr(resources, "_REPOSITORY", tmp_path / "site-packages")
    repo = tmp_path / "clone"
    (repo / "data" / "weights").mkdir(parents=True)
    (repo / "course").mkdir()
    (repo / "data" / D.DEFAULT_FILENAME).write_bytes(b"")
    monkeypatch.chdir(repo / "course")  # where Jupyter runs a chapter
    assert D.default_data_path() == repo / "data" / D.DEFAULT_FILENAME
    assert D.find_in_repository("data", "weights") == repo / "data" / "weights"
    monkeypatch.chdir(tmp_path)  # outside any clone: the path beside the package, named in the error
    missing = tmp_path / "site-packages" / "data" / D.DEFAULT_FILENAME
    assert D.default_data_path() == missing
    with pytest.raises(FileNotFoundError, match="LSTMCOR_DATA_DIR"):
        D.load_default()


def test_shipped_weights_and_variants_by_budget(tmp_path, monkeypatch):
    """``data/weights`` and its ``quick/`` folder are looked up apart; a wrong budget or name says
    what exists."""
    from lstmcor.data.resources import shipped_variants, shipped_weights

    (tmp_path / "quick").mkdir()
    for name in ("voxelmorph", "quick/voxelmorph", "quick/voxelmorph_diffeo", "quick/lstmcor_ncc"):
        (tmp_path / f"{name}.keras").write_bytes(b"")
    (tmp_path / "quick" / "notes.txt").write_text("not a model")
    monkeypatch.setenv("LSTMCOR_WEIGHTS_DIR", str(tmp_path))
    assert shipped_weights("voxelmorph") == tmp_path / "voxelmorph.keras"
    assert shipped_weights("voxelmorph", budget="quick") == tmp_path / "quick" / "voxelmorph.keras"
    assert shipped_variants("quick") == {"lstmcor_ncc": tmp_path / "quick" / "lstmcor_ncc.keras",
                                         "voxelmorph": tmp_path / "quick" / "voxelmorph.keras",
                                         "voxelmorph_diffeo": tmp_path / "quick" / "voxelmorph_diffeo.keras"}
    assert list(shipped_variants(None)) == ["voxelmorph"]
    with pytest.raises(FileNotFoundError, match=r"'voxelmorph_diffeo'.*available: \['voxelmorph'\]"):
        shipped_weights("voxelmorph_diffeo")
    with pytest.raises(ValueError, match="unknown training budget 'paper'"):
        shipped_variants("paper")
