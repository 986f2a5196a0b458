"""Reading one file: a NIfTI, PNG or NumPy image (or label map) as a 2D array, with its affine.

NumPy, nibabel and Pillow only: ``from lstmcor.data import read_image`` starts no Keras backend.
Every problem raises one ``ValueError`` (or ``FileNotFoundError``) that names the file.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np

from lstmcor.data.arrays import normalize_intensity

NIFTI_EXT = (".nii.gz", ".nii")
PNG_EXT = (".png",)
NPY_EXT = (".npy",)


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
                if im.mode in ("P", "PA"):  # palette indices are not intensities: look the colours up
                    im = im.convert("RGB").convert("L")
                elif im.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                    im = im.convert("L")
                # 16-bit grey ('I;16', 'I;16B', or 'I' in older Pillow) and 'F' keep their full range
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
    """An integer label map, exact: int32 when the ids fit (as every loader returns), else int64."""
    if arr.dtype.kind in "iub":
        if arr.size and arr.min() < 0:
            raise ValueError(f"label map '{path}' has negative values: use 0 for background and "
                             "1, 2, ... for structures")
        fits = not arr.size or int(arr.max()) <= np.iinfo(np.int32).max
        return arr.astype(np.int32 if fits else np.int64)
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
    fits = not rounded.size or rounded.max() <= np.iinfo(np.int32).max
    return rounded.astype(np.int32 if fits else np.int64)


def _plane_affine(image, shape: tuple[int, ...], slice_index: int | None, axis: int) -> np.ndarray:
    """The 4 x 4 affine of the 2D array that :func:`_to_2d` takes from a NIfTI of ``shape``.

    Voxel ``(i, j, 0)`` of the 2D array maps to the world point of the volume's voxel with the
    dropped index put back: the slice comes from nibabel's ``img.slicer`` (which moves the origin
    to slice ``k``), and the columns are reordered so that columns 0 and 1 are the volume's columns
    of the two kept axes and column 2 the dropped axis's (the 2D file's third, one-voxel axis).
    """
    ndim = len(shape)
    if ndim == 3 and slice_index is not None:
        axis = axis % 3
        k = slice_index % shape[axis]
        index = tuple(slice(k, k + 1) if a == axis else slice(None) for a in range(3))
        affine = np.asarray(image.slicer[index].affine, dtype=np.float64)
        dropped = [axis]
    else:  # a 2D file, or singleton axes squeezed away: the voxel index there is 0
        affine = np.asarray(image.affine, dtype=np.float64)
        dropped = [a for a in range(min(ndim, 3)) if shape[a] == 1] if ndim > 2 else []
    kept = [a for a in range(3) if a not in dropped][:2]
    order = kept + [a for a in range(3) if a not in kept]
    return affine[:, order + [3]]


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
        ``(array, affine)``: the 2D image scaled to [0, 1] (``float32``, by
        :func:`~lstmcor.data.normalize_intensity`) or the label map (``int32``, or ``int64`` for
        ids above 2**31 - 1), and the 2D array's NIfTI affine (the identity for PNG and NumPy
        files). For a slice of a 3D volume (or a volume with one-voxel axes) the affine is the
        slice's own: voxel ``(i, j, 0)`` maps to the volume's voxel with the slice index put back.

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
    raw = _read_raw(file)
    array = _to_2d(raw, file, slice_index, axis)
    affine = np.eye(4)
    if kind == "nifti":
        import nibabel as nib

        affine = _plane_affine(nib.load(str(file)), raw.shape, slice_index, axis)
    if labels:
        return _as_labels(array, file), affine
    if not np.all(np.isfinite(array)):
        raise ValueError(f"'{file}' contains NaN or infinite values: clean the image first.")
    try:
        return normalize_intensity(array.astype("float32")), affine
    except ValueError as error:
        raise ValueError(f"'{file}': {error}") from None



def _save_nifti(path: Path, array: np.ndarray, affine) -> None:
    import nibabel as nib

    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    dtype = array.dtype if array.dtype.kind in "iub" else None  # integers are stored as they are
    nib.save(nib.Nifti1Image(array, affine, dtype=dtype), str(path))


def write_images(items) -> list[Path]:
    """Write several 2D arrays as NIfTI files, all or nothing.

    ``items`` is a list of ``(path, array, affine)``; every path must end in ``.nii`` or
    ``.nii.gz``. Each array is written to a hidden temporary file in its target's folder, and only
    when all of them are written are they renamed over their targets (``os.replace``, atomic on one
    file system). If anything fails, the temporary files, the folders this call created and any
    target already renamed are removed, so no output of the call is left half-written.
    """
    items = [(Path(path), array, affine) for path, array, affine in items]
    for path, _, _ in items:
        if not path.name.endswith(NIFTI_EXT):
            raise ValueError(f"output '{path}' must end in .nii or .nii.gz.")
    temps: list[tuple[Path, Path]] = []
    created: list[Path] = []
    done: list[Path] = []
    try:
        for path, array, affine in items:
            missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            created.extend(reversed(missing))
            ext = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
            tmp = path.with_name(f".{path.name[: -len(ext)]}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}")
            temps.append((tmp, path))
            _save_nifti(tmp, array, affine)
        for tmp, path in temps:
            os.replace(tmp, path)
            done.append(path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        for path in done:
            path.unlink(missing_ok=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    return [path for path, _, _ in items]


def write_image(path: str | Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write a 2D image, label map or field as NIfTI (``.nii`` or ``.nii.gz``) with ``affine``, atomically."""
    return write_images([(path, array, affine)])[0]
