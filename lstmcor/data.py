"""Data for the course: the embedded brain set, loaders for your own images, and pair batches.

Everything here is NumPy, nibabel and Pillow, plus ``keras.utils.PyDataset`` for the batches,
so it runs the same under every Keras backend (no TensorFlow data pipelines).

Conventions (see DESIGN.md): images are float32 in [0, 1], label maps are int32 with
0 = background, a displacement field is ``[H, W, 2]`` in pixels with channel 0 along rows, and a
field ``D`` aligns ``moving`` to ``fixed`` when ``moving(p + D(p)) ~= fixed(p)``
(the order of ``scipy.ndimage.map_coordinates``).

Entry points
------------
``load_default()``
    The embedded set shipped in ``data/lstmcor_brains2d.npz``: coronal 160 x 192 slices of two
    real brains (MNI ICBM152 2009a average and the Colin27 single subject) turned into
    pseudo-subjects by known smooth deformations, so the true correspondence between two
    pseudo-subjects of the same brain is known (``RegistrationSet.true_displacement``).
``load_dataset(source, layout=...)``
    The embedded set (``"default"``) or a folder of your own images: NIfTI (2D files, or 3D
    volumes with ``slice_index``/``axis``), the neurite-OASIS 2D release, PNG or ``.npy``.
``PairDataset``
    Seeded (moving, fixed) batches of different subjects of one split, ready for ``model.fit``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

import keras

__all__ = [
    "RegistrationSet",
    "load_default",
    "load_dataset",
    "normalize_intensity",
    "pad_or_crop",
    "pair_indices",
    "PairDataset",
    "default_data_path",
    "find_in_repository",
    "read_image",
    "warp_array",
]

DEFAULT_FILENAME = "lstmcor_brains2d.npz"
SPLITS = ("train", "val", "test")

# neurite-OASIS 2D release (github.com/adalca/medical-datasets, neurite-oasis.md): one folder per
# subject, e.g. OASIS_OAS1_0001_MR1/, holding these 160 x 192 (x 1) NIfTI files.
OASIS_IMAGE = "slice_norm.nii.gz"
OASIS_ORIG = "slice_orig.nii.gz"
OASIS_LABELS = {"seg4": "slice_seg4.nii.gz", "seg24": "slice_seg24.nii.gz"}
OASIS_COMPANIONS = {"subjects.txt", "pairs.txt", "seg4_labels.txt", "seg24_labels.txt",
                    "seg35_labels.txt", "readme", "readme.txt", "readme.md"}

LABEL_SUFFIXES = ("_seg", "_labels", "_label")
NIFTI_EXT = (".nii.gz", ".nii")
PNG_EXT = (".png",)
NPY_EXT = (".npy",)


# --------------------------------------------------------------------------------------------
# small array helpers


def normalize_intensity(image: np.ndarray) -> np.ndarray:
    """Min-max scale an image to [0, 1] as float32.

    Raises ``ValueError`` when the image holds NaN or infinite values, or is constant (there is
    nothing to scale: such an image is almost always a wrong file or an empty slice).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.size == 0:
        raise ValueError("image is empty: pass an image with at least one pixel")
    if not np.all(np.isfinite(image)):
        n_bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
        raise ValueError(f"image has {n_bad} NaN or infinite values: fix or mask them before loading")
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        raise ValueError(f"image is constant (every pixel = {lo:g}): check that it is the right file "
                         "or the right slice")
    return ((image - lo) / (hi - lo)).astype(np.float32)


def _spatial_axes(ndim: int) -> tuple[int, int]:
    if ndim == 2:      # [H, W]
        return (0, 1)
    if ndim == 3:      # [N, H, W]
        return (1, 2)
    if ndim == 4:      # [N, H, W, C]
        return (1, 2)
    raise ValueError(f"pad_or_crop takes [H, W], [N, H, W] or [N, H, W, C] arrays, got {ndim} dimensions")


def pad_or_crop(array: np.ndarray, multiple: int = 16, target_shape=None) -> np.ndarray:
    """Centre-pad (with zeros) or centre-crop the spatial axes of an image or label array.

    ``array`` is ``[H, W]``, ``[N, H, W]`` or ``[N, H, W, C]``. Without ``target_shape`` each of
    H and W is padded up to the next multiple of ``multiple`` (nothing is cut). With
    ``target_shape=(H', W')`` the array is padded or cropped, centred, to exactly that size. The
    dtype is kept, so the same call on a label map keeps it an integer map, and the same call on
    an image and its labels moves them identically (the odd pixel of padding goes to the end).
    """
    array = np.asarray(array)
    ax = _spatial_axes(array.ndim)
    shape = [array.shape[a] for a in ax]
    if target_shape is None:
        if int(multiple) < 1:
            raise ValueError(f"multiple must be a positive integer, got {multiple!r}")
        target = [int(-(-s // multiple) * multiple) for s in shape]
    else:
        target = [int(t) for t in target_shape]
        if len(target) != 2 or min(target) < 1:
            raise ValueError(f"target_shape must be two positive sizes (H, W), got {target_shape!r}")
    out = array
    for a, s, t in zip(ax, shape, target):
        if t < s:  # crop
            start = (s - t) // 2
            out = np.take(out, np.arange(start, start + t), axis=a)
        elif t > s:  # pad
            before = (t - s) // 2
            widths = [(0, 0)] * out.ndim
            widths[a] = (before, t - s - before)
            out = np.pad(out, widths, mode="constant", constant_values=0)
    return out


def warp_array(array: np.ndarray, displacement: np.ndarray, order: int = 1) -> np.ndarray:
    """``out(p) = array(p + D(p))`` for a 2D array and a ``[H, W, 2]`` field (zero outside).

    ``order=0`` (nearest neighbour) is the one to use for label maps; the dtype is then kept.
    The data builder uses this SciPy resampler (zero outside the image) to make pseudo-subjects;
    the networks warp with :func:`lstmcor.transform.warp`, which repeats the border instead.
    """
    array = np.asarray(array)
    h, w = array.shape
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = grid + np.moveaxis(np.asarray(displacement, dtype=np.float64), -1, 0)
    out = ndimage.map_coordinates(array.astype(np.float64) if order else array, coords,
                                  order=order, mode="constant", cval=0.0)
    return out.astype(array.dtype) if order == 0 else out.astype(np.float32)


# --------------------------------------------------------------------------------------------
# ground-truth transforms of the embedded set (shared with data/make_dataset.py)


def _bspline_upsample(coarse: np.ndarray, shape: tuple[int, int], spacing: int) -> np.ndarray:
    """Cubic B-spline field ``[2, H, W]`` from control values ``[2, gh, gw]`` spaced ``spacing`` px.

    Control point (a, b) sits at pixel (a * spacing - spacing, b * spacing - spacing) so that the
    grid covers the image with one control point of margin on each side.
    """
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = np.stack([rr / spacing + 1.0, cc / spacing + 1.0])
    return np.stack([ndimage.map_coordinates(np.asarray(c, np.float64), coords, order=3,
                                             mode="nearest", prefilter=False) for c in coarse])


def _integrate_velocity(velocity: np.ndarray, steps: int = 7) -> np.ndarray:
    """Scaling and squaring: displacement ``[2, H, W]`` of exp(v) for a stationary velocity."""
    h, w = velocity.shape[1:]
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    disp = np.asarray(velocity, np.float64) / (2.0 ** steps)
    for _ in range(steps):
        coords = grid + disp
        disp = disp + np.stack([ndimage.map_coordinates(d, coords, order=1, mode="nearest")
                                for d in disp])
    return disp


def _apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 matrix (rows, cols; about the image centre already folded in) to [2, ...]."""
    m = np.asarray(matrix, np.float64)
    return (np.tensordot(m[:, :2], points, axes=(1, 0))
            + m[:, 2].reshape((2,) + (1,) * (points.ndim - 1)))


def _invert_affine(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, -(a_inv @ m[:, 2])[:, None]], axis=1)


def _sample_field(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear interpolation of a ``[2, H, W]`` field at ``[2, ...]`` points (border value outside)."""
    return np.stack([ndimage.map_coordinates(f, points, order=1, mode="nearest") for f in field])


def subject_transform(coarse_velocity: np.ndarray, affine: np.ndarray, shape=(160, 192),
                      spacing: int = 16, steps: int = 7):
    """The pull-back map of one pseudo-subject and its inverse.

    A pseudo-subject is ``subject(x) = base(psi(x))`` with ``psi(x) = phi(A x)``: ``A`` a small
    affine (2 x 3, in pixel coordinates) and ``phi = exp(v)`` the diffeomorphism of a smooth
    stationary velocity ``v`` (cubic B-spline from ``coarse_velocity``). Returns the
    displacement fields ``u`` of ``phi`` and ``w`` of ``phi^-1 = exp(-v)``, each ``[2, H, W]``.
    """
    v = _bspline_upsample(coarse_velocity, shape, spacing)
    return _integrate_velocity(v, steps), _integrate_velocity(-v, steps)


def subject_pullback(u: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Coordinates ``psi(x) = phi(A x)`` for every pixel x, as ``[2, H, W]``."""
    h, w = u.shape[1:]
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    y = _apply_affine(affine, grid)
    return y + _sample_field(u, y)


def pair_displacement(u_fixed, affine_fixed, w_moving, affine_moving) -> np.ndarray:
    """D with ``moving(p + D(p)) = fixed(p)`` for two pseudo-subjects of the same base brain.

    fixed(p) = base(psi_f(p)) and moving(q) = base(psi_m(q)), so q = psi_m^-1(psi_f(p)) with
    psi_m^-1(z) = A_m^-1 (z + w_m(z)). Returned as ``[H, W, 2]`` float32 in pixels.
    """
    h, w = u_fixed.shape[1:]
    grid = np.mgrid[0:h, 0:w].astype(np.float64)
    z = subject_pullback(u_fixed, affine_fixed)
    q = _apply_affine(_invert_affine(affine_moving), z + _sample_field(w_moving, z))
    return np.moveaxis(q - grid, 0, -1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the data set object


@dataclasses.dataclass
class RegistrationSet:
    """Images (and optional label maps) of subjects, with fixed train/val/test splits.

    ``images`` [N, H, W] float32 in [0, 1]; ``labels`` [N, H, W] int32 or None; ``subjects`` the
    subject id of each image; ``splits`` maps "train"/"val"/"test" to indices into ``images``,
    disjoint by subject; ``label_names[v]`` names label value v; ``name`` is "default" or the
    folder. ``meta`` holds provenance (source, skipped files, padding applied, ...).
    """

    images: np.ndarray
    labels: np.ndarray | None
    subjects: list[str]
    splits: dict[str, np.ndarray]
    label_names: list[str]
    name: str
    meta: dict = dataclasses.field(default_factory=dict, repr=False)
    # ground truth of the embedded set: per image, base brain id, coarse velocity, affine
    _gt: dict | None = dataclasses.field(default=None, repr=False)
    _gt_index: np.ndarray | None = dataclasses.field(default=None, repr=False)
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    def split_subjects(self, split: str) -> list[str]:
        return sorted({self.subjects[i] for i in self.splits[split]})

    def subset(self, split: str) -> "RegistrationSet":
        """A new set holding only one split (its ``splits`` has that split only, renumbered)."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}: use one of {sorted(self.splits)}")
        idx = np.asarray(self.splits[split], dtype=np.int64)
        gt_index = None
        if self._gt is not None:
            base = self._gt_index if self._gt_index is not None else np.arange(len(self))
            gt_index = base[idx]
        return RegistrationSet(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            subjects=[self.subjects[i] for i in idx],
            splits={split: np.arange(len(idx))},
            label_names=list(self.label_names),
            name=f"{self.name}[{split}]",
            meta=dict(self.meta),
            _gt=self._gt,
            _gt_index=gt_index,
        )

    # ---- ground truth (embedded set only)
    def _gt_id(self, i: int) -> int:
        if not 0 <= int(i) < len(self):
            raise IndexError(f"image index {i} out of range for a set of {len(self)} images")
        return int(self._gt_index[i]) if self._gt_index is not None else int(i)

    def _fields(self, k: int):
        if k not in self._cache:
            u, w = subject_transform(self._gt["velocity"][k], self._gt["affine"][k],
                                     shape=tuple(self._gt["shape"]), spacing=int(self._gt["spacing"]),
                                     steps=int(self._gt["steps"]))
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[k] = (u, w)
        return self._cache[k]

    def base_of(self, i: int) -> str | None:
        """Name of the real brain an image was made from (embedded set), else None."""
        if self._gt is None:
            return None
        return str(self._gt["base_names"][int(self._gt["base"][self._gt_id(i)])])

    def true_displacement(self, moving: int, fixed: int) -> np.ndarray | None:
        """Known D ``[H, W, 2]`` (pixels, channel 0 = rows) with moving(p + D(p)) ~= fixed(p).

        Only for the embedded set and two images made from the same real brain; None otherwise
        (two different people have no known correspondence). It is exact in the plane of the
        slice; the few millimetres of through-plane shift between pseudo-subjects are not
        modelled, so it is the best in-plane answer rather than a perfect one.
        """
        if self._gt is None:
            return None
        km, kf = self._gt_id(moving), self._gt_id(fixed)
        if int(self._gt["base"][km]) != int(self._gt["base"][kf]):
            return None
        u_f, _ = self._fields(kf)
        _, w_m = self._fields(km)
        return pair_displacement(u_f, self._gt["affine"][kf], w_m, self._gt["affine"][km])

    def subject_displacement(self, i: int) -> np.ndarray | None:
        """D ``[H, W, 2]`` with base(p + D(p)) = image i(p): how far this image is from its base brain."""
        if self._gt is None:
            return None
        k = self._gt_id(i)
        u, _ = self._fields(k)
        h, w = u.shape[1:]
        grid = np.mgrid[0:h, 0:w].astype(np.float64)
        return np.moveaxis(subject_pullback(u, self._gt["affine"][k]) - grid, 0, -1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the embedded default


def find_in_repository(*parts: str) -> Path:
    """A path of the repository, such as ``data/weights``, found from an installed package too.

    The course's data and weights live in the repository's ``data/`` folder, not in the package.
    With a checkout or an editable install that folder is beside the package. After a regular
    ``pip install .`` it is not, so the working directory and its parents are searched (Jupyter
    runs a chapter in ``course/``, one level below the repository root).

    Args:
        parts: the path inside the repository, e.g. ``("data", "weights")``.

    Returns:
        The first existing match, else the path beside the package (for error messages).
    """
    beside = Path(__file__).resolve().parent.parent.joinpath(*parts)
    if beside.exists():
        return beside
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if folder.joinpath(*parts).exists():
            return folder.joinpath(*parts)
    return beside


def default_data_path() -> Path:
    """Where the embedded set lives: ``$LSTMCOR_DATA_DIR`` if set, else ``data/`` of the repository."""
    env = os.environ.get("LSTMCOR_DATA_DIR")
    if env:
        return Path(env) / DEFAULT_FILENAME
    return find_in_repository("data", DEFAULT_FILENAME)


def _set_from_npz(arrays, name: str = "default") -> RegistrationSet:
    meta = json.loads(str(np.asarray(arrays["meta_json"]).reshape(-1)[0]))
    images = arrays["images"].astype(np.float32) / float(meta["image_scale"])
    labels = arrays["labels"].astype(np.int32)
    subjects = [str(s) for s in arrays["subjects"]]
    splits = {s: arrays[f"split_{s}"].astype(np.int64) for s in SPLITS}
    gt = {
        "base": arrays["base"].astype(np.int64),
        "base_names": [str(s) for s in arrays["base_names"]],
        "velocity": arrays["velocity"].astype(np.float64),
        "affine": arrays["affine"].astype(np.float64),
        "shape": tuple(images.shape[1:]),
        "spacing": int(meta["control_spacing"]),
        "steps": int(meta["integration_steps"]),
    }
    meta["base_images"] = arrays["base_images"].astype(np.float32) / float(meta["image_scale"])
    meta["base_labels"] = arrays["base_labels"].astype(np.int32)
    meta["plane_shift_mm"] = arrays["plane_shift"].astype(np.int64)
    return RegistrationSet(images=images, labels=labels, subjects=subjects, splits=splits,
                           label_names=[str(s) for s in arrays["label_names"]], name=name,
                           meta=meta, _gt=gt)


def load_default() -> RegistrationSet:
    """The embedded set: 2D coronal brain slices with tissue labels and known deformations."""
    path = default_data_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the embedded data file '{path}' is missing: work inside the lstmcor repository (its data/ "
            "folder holds it), run `python data/make_dataset.py` there (needs `pip install .[data]`), "
            f"or set LSTMCOR_DATA_DIR to the folder that holds {DEFAULT_FILENAME}")
    with np.load(path, allow_pickle=False) as arrays:
        return _set_from_npz(arrays)


# --------------------------------------------------------------------------------------------
# readers for files that users bring


def _strip_ext(name: str) -> str:
    low = name.lower()
    for ext in NIFTI_EXT + PNG_EXT + NPY_EXT:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def _kind_of(name: str) -> str | None:
    low = name.lower()
    if low.endswith(NIFTI_EXT):
        return "nifti"
    if low.endswith(PNG_EXT):
        return "png"
    if low.endswith(NPY_EXT):
        return "npy"
    return None


def _read_raw(path: Path) -> np.ndarray:
    """Read one file into an array, or raise ValueError naming the file."""
    kind = _kind_of(path.name)
    try:
        if kind == "nifti":
            import nibabel as nib
            arr = np.asarray(nib.load(str(path)).dataobj)
        elif kind == "png":
            from PIL import Image
            with Image.open(path) as im:
                if im.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                    im = im.convert("L")
                arr = np.asarray(im)
        elif kind == "npy":
            arr = np.load(path, allow_pickle=False)
        else:
            raise ValueError("unknown file type")
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"cannot read '{path}' as a {kind or 'NIfTI/PNG/NumPy'} image ({exc}): "
                         "replace or remove the file, or pass skip_bad=True to leave it out") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ValueError(f"'{path}' does not hold a numeric image (dtype {getattr(arr, 'dtype', '?')}): "
                         "replace or remove it, or pass skip_bad=True")
    return arr


def _to_2d(arr: np.ndarray, path: Path, slice_index: int | None, axis: int) -> np.ndarray:
    """Reduce to one 2D slice: singleton axes dropped; 3D needs slice_index."""
    squeezed = arr.reshape([s for s in arr.shape if s != 1]) if arr.ndim > 2 else arr
    if squeezed.ndim == 2 and slice_index is None:
        return squeezed
    if arr.ndim == 3 and slice_index is not None:
        if not -arr.ndim <= axis < arr.ndim:
            raise ValueError(f"axis={axis} is not an axis of the 3D volume '{path}' (shape {arr.shape})")
        n = arr.shape[axis]
        if not -n <= slice_index < n:
            raise ValueError(f"slice_index={slice_index} is outside '{path}', which has {n} slices along "
                             f"axis {axis} (shape {arr.shape}): pass an index in 0..{n - 1}")
        return np.take(arr, slice_index, axis=axis)
    if squeezed.ndim == 2 and slice_index is not None:
        if slice_index in (0, -1):
            return squeezed
        raise ValueError(f"'{path}' is a 2D image (shape {arr.shape}) but slice_index={slice_index} was "
                         "given: leave slice_index=None for 2D files")
    if arr.ndim == 3:
        raise ValueError(f"'{path}' is a 3D volume (shape {arr.shape}) but a 2D image was asked for: "
                         "pass slice_index=<int> and axis=<0, 1 or 2> to take one slice of each volume")
    raise ValueError(f"'{path}' has shape {arr.shape}, not a 2D image or a 3D volume: "
                     "convert it to one image per file")


def _as_labels(arr: np.ndarray, path: Path) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"label map '{path}' has NaN or infinite values: a label map must hold "
                         "non-negative integers")
    rounded = np.rint(arr)
    if np.any(np.abs(arr - rounded) > 1e-3):
        raise ValueError(f"label map '{path}' has non-integer values: pass an integer label map "
                         "(or load it as an image without labels)")
    if rounded.size and rounded.min() < 0:
        raise ValueError(f"label map '{path}' has negative values: use 0 for background and "
                         "1, 2, ... for structures")
    return rounded.astype(np.int32)


def read_image(
    path: str | Path, slice_index: int | None = None, axis: int = 2, labels: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read one NIfTI, PNG or NumPy file as a 2D image (or label map) and its affine.

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.png`` or ``.npy`` file.
        slice_index: for a 3D volume, the slice to take (``None`` for 2D files).
        axis: the axis of ``slice_index``.
        labels: read a label map (integers, kept as they are) instead of an image.

    Returns:
        ``(array, affine)``: the 2D image scaled to [0, 1] (``float32``) or the label map
        (``int32``), and the file's NIfTI affine (the identity for PNG and NumPy files).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be read, is not 2D (or 3D with a slice), holds NaN, or is
            not an integer label map when ``labels`` is True; the message names the file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"'{file}' does not exist: check the path.")
    kind = _kind_of(file.name)
    if kind is None:
        raise ValueError(f"'{file}' is not a .nii, .nii.gz, .png or .npy file.")
    array = _to_2d(_read_raw(file), file, slice_index, axis)
    affine = np.eye(4)
    if kind == "nifti":
        import nibabel as nib

        affine = np.asarray(nib.load(str(file)).affine)
    if labels:
        return _as_labels(array, file), affine
    if not np.all(np.isfinite(array)):
        raise ValueError(f"'{file}' contains NaN or infinite values: clean the image first.")
    try:
        return normalize_intensity(array.astype("float32")), affine
    except ValueError as error:
        raise ValueError(f"'{file}': {error}") from None


@dataclasses.dataclass
class _Entry:
    subject: str
    image: Path
    label: Path | None


def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _label_base(stem: str) -> str | None:
    low = stem.lower()
    for suf in LABEL_SUFFIXES:
        if low.endswith(suf):
            return stem[: -len(suf)]
    return None


def _scan_flat(folder: Path, kind: str, problems: list) -> list[_Entry]:
    """Image files with optional label files (``<name>_seg``/``_label(s)``, or images/ + labels/)."""
    entries: list[_Entry] = []
    img_dir, lab_dir = folder / "images", folder / "labels"
    if img_dir.is_dir():
        files = sorted(p for p in img_dir.iterdir() if not _is_hidden(p))
        for p in files:
            if _kind_of(p.name) != kind:
                problems.append((p, f"not a {kind} file"))
                continue
            lab = None
            if lab_dir.is_dir():
                cand = lab_dir / p.name
                lab = cand if cand.is_file() else None
            entries.append(_Entry(_strip_ext(p.name), p, lab))
        if lab_dir.is_dir():
            names = {e.image.name for e in entries}
            for p in sorted(q for q in lab_dir.iterdir() if not _is_hidden(q)):
                if p.name not in names:
                    problems.append((p, "label file without a matching image in images/"))
        return entries
    files = sorted(p for p in folder.iterdir() if not _is_hidden(p))
    images, labels = {}, {}
    for p in files:
        if p.is_dir():
            problems.append((p, "unexpected sub-folder"))
            continue
        if _kind_of(p.name) != kind:
            problems.append((p, f"not a {kind} file"))
            continue
        stem = _strip_ext(p.name)
        base = _label_base(stem)
        if base is not None:
            labels[base] = p
        else:
            images[stem] = p
    for base, p in labels.items():
        if base not in images:
            problems.append((p, f"label file without an image named '{base}'"))
    for stem in sorted(images):
        entries.append(_Entry(stem, images[stem], labels.get(stem)))
    return entries


def _scan_oasis(folder: Path, label_set: str, problems: list) -> list[_Entry]:
    if label_set not in OASIS_LABELS:
        raise ValueError(f"label_set={label_set!r} is not in the neurite-OASIS 2D release: use 'seg4' or 'seg24'")
    entries = []
    for p in sorted(q for q in folder.iterdir() if not _is_hidden(q)):
        if p.is_file():
            if p.name.lower() not in OASIS_COMPANIONS:
                problems.append((p, "unexpected file beside the subject folders"))
            continue
        img = p / OASIS_IMAGE
        if not img.is_file():
            problems.append((p, f"subject folder without {OASIS_IMAGE}"))
            continue
        lab = p / OASIS_LABELS[label_set]
        entries.append(_Entry(p.name, img, lab if lab.is_file() else None))
    return entries


def _read_lut(path: Path) -> dict[int, str]:
    names = {}
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and re.fullmatch(r"\d+", parts[0]):
                names[int(parts[0])] = parts[1]
    return names


def _detect_layout(folder: Path) -> str:
    children = [p for p in folder.iterdir() if not _is_hidden(p)]
    if any((p / OASIS_IMAGE).is_file() for p in children if p.is_dir()):
        return "oasis2d"
    search = folder / "images" if (folder / "images").is_dir() else folder
    counts = {"nifti": 0, "png": 0, "npy": 0}
    for p in search.iterdir():
        k = _kind_of(p.name)
        if k:
            counts[k] += 1
    if sum(counts.values()) == 0:
        raise ValueError(
            f"data folder '{folder}' holds no image files (.nii/.nii.gz, .png, .npy, or sub-folders "
            f"with {OASIS_IMAGE}): put one image per file there (labels as <name>_seg.<ext>), or "
            "pass 'default' for the embedded set")
    best = max(counts, key=lambda k: counts[k])
    if sorted(counts.values())[-2] > 0:
        raise ValueError(f"data folder '{folder}' mixes file types {counts}: keep one type per folder "
                         "or pass layout='nifti'|'png'|'npy' to choose (other files then count as bad)")
    return best


def _split_indices(n: int, fractions, seed: int) -> dict[str, np.ndarray]:
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or np.any(fr < 0) or fr.sum() <= 0:
        raise ValueError(f"split_fractions must be three non-negative numbers (train, val, test), got {fractions!r}")
    fr = fr / fr.sum()
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fr[1] * n))
    n_test = int(round(fr[2] * n))
    if n >= 3:
        n_val = max(n_val, 1) if fr[1] > 0 else 0
        n_test = max(n_test, 1) if fr[2] > 0 else 0
    n_val = min(n_val, max(n - 1, 0))
    n_test = min(n_test, max(n - 1 - n_val, 0))
    n_train = n - n_val - n_test
    return {"train": np.sort(order[:n_train]),
            "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def load_dataset(source: str | os.PathLike = "default", *, layout: str = "auto",
                 slice_index: int | None = None, axis: int = 2, multiple: int = 16,
                 skip_bad: bool = False, seed: int = 0, split_fractions=(0.7, 0.15, 0.15),
                 label_set: str = "seg4") -> RegistrationSet:
    """Load the embedded set (``"default"``) or a folder of your images.

    Layouts (``layout="auto"`` picks one from what the folder holds):

    ``"oasis2d"``
        The neurite-OASIS 2D release: one folder per subject (``OASIS_OAS1_0001_MR1/``...) with
        ``slice_norm.nii.gz`` (the image) and ``slice_seg4.nii.gz`` / ``slice_seg24.nii.gz``
        (``label_set="seg4"`` or ``"seg24"``). Label names come from ``seg4_labels.txt`` /
        ``seg24_labels.txt`` beside the folders when present. Arrays are kept as stored
        (160 x 192; that release stores the coronal slice with rows along left-right, so it shows
        rotated with ``imshow``, unlike the upright embedded set).
    ``"nifti"`` / ``"png"`` / ``"npy"``
        One image per file. Labels, optional, either as ``<name>_seg.<ext>`` (or ``_label``,
        ``_labels``) beside the image, or in ``labels/`` with the same file name as in ``images/``.
        NIfTI and NumPy files may be 3D volumes: pass ``slice_index`` and ``axis`` to take one slice.
        RGB PNG images are converted to grey.

    Every image is min-max scaled to [0, 1]; images and labels are centre-padded (zeros) to a
    common size that is a multiple of ``multiple``. Splits are drawn by subject from ``seed`` with
    ``split_fractions``. A bad file raises one ``ValueError`` naming it; with ``skip_bad=True``
    bad subjects are left out instead, with a warning that says how many and why (also in
    ``meta["skipped"]``).
    """
    if isinstance(source, str) and source == "default":
        return load_default()
    folder = Path(source)
    if not folder.exists():
        raise FileNotFoundError(
            f"data folder '{folder}' does not exist: pass the folder that holds your images (or one "
            "sub-folder per subject for the neurite-OASIS layout), or 'default' for the embedded set")
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is a file, not a folder: pass the folder that holds the images "
                         "(one image per file), or 'default' for the embedded set")
    if not any(not _is_hidden(p) for p in folder.iterdir()):
        raise ValueError(f"data folder '{folder}' is empty: put your images there (one per file, labels as "
                         "<name>_seg.<ext>), or pass 'default' for the embedded set")
    if layout == "auto":
        layout = _detect_layout(folder)
    if layout not in ("oasis2d", "nifti", "png", "npy"):
        raise ValueError(f"unknown layout {layout!r}: use 'auto', 'nifti', 'oasis2d', 'png' or 'npy'")

    problems: list[tuple[Path, str]] = []
    if layout == "oasis2d":
        entries = _scan_oasis(folder, label_set, problems)
    else:
        entries = _scan_flat(folder, layout, problems)

    for path, why in list(problems):
        if not skip_bad:
            raise ValueError(f"'{path}': {why}. Fix or remove it, or pass skip_bad=True to leave it out")

    images, labels, subjects = [], [], []
    for e in entries:
        try:
            img = _to_2d(_read_raw(e.image), e.image, slice_index, axis)
            try:
                img = normalize_intensity(img)
            except ValueError as exc:
                raise ValueError(f"image '{e.image}': {exc}") from None
            lab = None
            if e.label is not None:
                lab = _as_labels(_to_2d(_read_raw(e.label), e.label, slice_index, axis), e.label)
                if lab.shape != img.shape:
                    raise ValueError(f"label map '{e.label}' has shape {lab.shape} but its image '{e.image}' "
                                     f"has shape {img.shape}: they must match pixel for pixel")
        except ValueError as exc:
            if not skip_bad:
                raise
            problems.append((e.image, str(exc)))
            continue
        images.append(img)
        labels.append(lab)
        subjects.append(e.subject)

    if not images:
        why = f" ({len(problems)} bad files, e.g. {problems[0][0]}: {problems[0][1]})" if problems else ""
        raise ValueError(f"no usable images found in data folder '{folder}' with layout '{layout}'{why}: "
                         "check the folder and the layout, or pass 'default' for the embedded set")
    n_lab = sum(lab is not None for lab in labels)
    if 0 < n_lab < len(labels):
        missing = [subjects[i] for i, lab in enumerate(labels) if lab is None]
        raise ValueError(f"label maps were found for {n_lab} of {len(labels)} images in '{folder}'; missing "
                         f"for e.g. '{missing[0]}': give every image its label map or remove them all")
    if problems:
        warnings.warn(f"skipped {len(problems)} bad file(s) in '{folder}' (skip_bad=True): "
                      + "; ".join(f"{p.name}: {why}" for p, why in problems[:10])
                      + (" ..." if len(problems) > 10 else ""), stacklevel=2)

    shapes = np.array([im.shape for im in images])
    target = tuple(int(-(-s // multiple) * multiple) for s in shapes.max(axis=0))
    imgs = np.stack([pad_or_crop(im, target_shape=target) for im in images]).astype(np.float32)
    labs = None
    label_names: list[str] = []
    if n_lab:
        labs = np.stack([pad_or_crop(lab, target_shape=target) for lab in labels]).astype(np.int32)
        lut = {}
        if layout == "oasis2d":
            lut = _read_lut(folder / f"{label_set}_labels.txt")
        top = int(labs.max())
        label_names = [lut.get(v, "background" if v == 0 else f"label_{v}") for v in range(top + 1)]
    splits = _split_indices(len(imgs), split_fractions, seed)
    meta = {
        "layout": layout,
        "source": str(folder),
        "original_shapes": sorted({tuple(map(int, s)) for s in shapes}),
        "padded_to": target,
        "skipped": [(str(p), why) for p, why in problems],
        "slice_index": slice_index,
        "axis": axis,
        "seed": seed,
    }
    return RegistrationSet(images=imgs, labels=labs, subjects=subjects, splits=splits,
                           label_names=label_names, name=str(folder), meta=meta)


# --------------------------------------------------------------------------------------------
# pairs and batches


def _split_members(dataset: RegistrationSet, split: str) -> np.ndarray:
    if split not in dataset.splits:
        raise ValueError(f"unknown split {split!r}: use one of {sorted(dataset.splits)}")
    idx = np.asarray(dataset.splits[split], dtype=np.int64)
    if len({dataset.subjects[i] for i in idx}) < 2:
        raise ValueError(f"split '{split}' of '{dataset.name}' has fewer than two subjects, so it has no "
                         "inter-subject pairs: add images or change split_fractions")
    return idx


def pair_indices(dataset: RegistrationSet, split: str, n_pairs: int | None = None,
                 seed: int = 0) -> list[tuple[int, int]]:
    """Deterministic (moving, fixed) index pairs of different subjects of one split.

    ``n_pairs=None`` gives every ordered pair, sorted. Otherwise ``n_pairs`` pairs drawn from a
    shuffle of all ordered pairs (seeded; without repeats until all pairs have been used).
    """
    idx = _split_members(dataset, split)
    subj = [dataset.subjects[i] for i in idx]
    all_pairs = [(int(a), int(b)) for ia, a in enumerate(idx) for ib, b in enumerate(idx)
                 if subj[ia] != subj[ib]]
    if n_pairs is None:
        return all_pairs
    n_pairs = int(n_pairs)
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0 or None, got {n_pairs}")
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    while len(out) < n_pairs:
        order = rng.permutation(len(all_pairs))
        out.extend(all_pairs[i] for i in order[: n_pairs - len(out)])
    return out


def _augment_pair(moving: np.ndarray, fixed: np.ndarray, rng: np.random.Generator):
    """Left-right flip (same for both, so the pair stays one registration problem) and an
    independent gamma in [0.8, 1.25] per image (like two scanners)."""
    if rng.random() < 0.5:
        moving, fixed = moving[:, ::-1], fixed[:, ::-1]
    g_m, g_f = np.exp(rng.uniform(np.log(0.8), np.log(1.25), size=2))
    return np.clip(moving, 0, 1) ** g_m, np.clip(fixed, 0, 1) ** g_f


class PairDataset(keras.utils.PyDataset):
    """Batches of (moving, fixed) pairs of different subjects of one split, for ``model.fit``.

    ``ds[i]`` is ``((moving, fixed), (fixed, zeros))``: inputs of a two-input model and targets for
    the losses [MSE on the moved image, Grad on the flow]; ``moving``/``fixed`` are
    ``[B, H, W, 1]`` float32, ``zeros`` is ``[B, H, W, 2]``. The pairs of batch ``i`` come from
    ``seed``, the epoch counter and ``i`` only: the same ``i`` in the same epoch gives the same
    batch, and ``on_epoch_end`` (called by ``fit``) moves to fresh pairs for the next epoch.
    ``steps_per_epoch=None`` gives one pass over the split's images as moving images
    (ceil(n / batch_size) batches). ``augment=True`` flips both images of a pair left-right
    together (half of the pairs) and applies an independent random gamma to each image.
    """

    def __init__(self, dataset, split="train", batch_size=8, steps_per_epoch=None, seed=0,
                 augment=False, **kwargs):
        super().__init__(**kwargs)
        self.dataset = dataset
        self.split = split
        self.members = _split_members(dataset, split)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self.members)
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch else -(-n // self.batch_size)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.epoch = 0
        self._subj = np.array([dataset.subjects[i] for i in self.members])

    def __len__(self):
        return self.steps_per_epoch

    def pairs_for_batch(self, index: int) -> list[tuple[int, int]]:
        """The (moving, fixed) dataset indices of batch ``index`` in the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        n = len(self.members)
        pairs = []
        while len(pairs) < self.batch_size:
            a, b = rng.integers(0, n, size=2)
            if self._subj[a] != self._subj[b]:
                pairs.append((int(self.members[a]), int(self.members[b])))
        return pairs

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        pairs = self.pairs_for_batch(index)
        imgs = self.dataset.images
        mov = np.empty((self.batch_size,) + imgs.shape[1:3] + (1,), np.float32)
        fix = np.empty_like(mov)
        aug_rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
        for k, (m, f) in enumerate(pairs):
            a, b = imgs[m], imgs[f]
            if self.augment:
                a, b = _augment_pair(a, b, aug_rng)
            mov[k, ..., 0] = a
            fix[k, ..., 0] = b
        zeros = np.zeros(mov.shape[:3] + (2,), np.float32)
        return (mov, fix), (fix, zeros)

    def on_epoch_end(self):
        self.epoch += 1
