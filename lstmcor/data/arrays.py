"""Array helpers shared by every loader: intensity scaling, centre padding, SciPy warping.

NumPy and SciPy only (no Keras): reading an image or rebuilding the embedded set starts no
backend. Shapes: an image is ``[H, W]``; a batch ``[N, H, W]`` or ``[N, H, W, C]``; a
displacement field ``[H, W, 2]`` in pixels, channel 0 along rows (``book/readings.md``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# Robust intensity scaling: the low end is the 0.5th percentile of the image, the high end the
# 99.9th percentile of the pixels above it (on a skull-stripped scan with a zero background, the
# head), as data/README.md (step 4) rescales the embedded set; a few hot or cold pixels then no
# longer squash the brain into a sliver of [0, 1].
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.9


def normalize_intensity(image: np.ndarray) -> np.ndarray:
    """Scale an image to [0, 1] as float32, robust to outliers.

    ``lo`` is the 0.5th percentile of the image and ``hi`` the 99.9th percentile of the pixels
    above ``lo`` (the head of a skull-stripped scan, whose zero background stays 0, as the embedded
    set is scaled in ``data/README.md``); the result is ``(image - lo) / (hi - lo)`` clipped to
    [0, 1]. A single hot pixel (a spike in a uint16 MRI) is clipped to 1 instead of squashing the
    brain towards 0. Where the percentiles coincide (an image of mostly one value) the range is
    the plain minimum and maximum.

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
    p_lo = float(np.percentile(image, LOW_PERCENTILE))
    above = image[image > p_lo]
    p_hi = float(np.percentile(above, HIGH_PERCENTILE)) if above.size else p_lo
    if p_hi > p_lo:
        lo, hi = p_lo, p_hi
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def label_dtype(labels: np.ndarray) -> np.dtype:
    """The smallest of uint8, int16, uint16, int32 and int64 that holds every id of ``labels``."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(labels.min()), int(labels.max())
    for dtype in (np.uint8, np.int16, np.uint16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"label ids {lo}..{hi} do not fit in int64.")


def resample_to(array: np.ndarray, shape, order: int = 1) -> np.ndarray:
    """Resample the two spatial axes of ``[H, W]`` or ``[B, H, W, C]`` to ``shape`` ``(h, w)``.

    Pixel-area alignment (``scipy.ndimage.zoom(..., grid_mode=True)``): pixel ``i`` of the input
    covers ``[i, i + 1)`` and keeps that extent at every size, so the per-axis factor ``h / H``
    converts positions and displacements alike. ``order=1`` for images and fields, ``order=0``
    (nearest, dtype kept) for label maps. Samples beyond the border repeat the edge.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 4):
        raise ValueError(f"resample_to takes [H, W] or [B, H, W, C] arrays, got shape {array.shape}")
    spatial = array.shape[:2] if array.ndim == 2 else array.shape[1:3]
    target = tuple(int(t) for t in shape)
    if tuple(spatial) == target:
        return array.copy()
    factors = [t / s for t, s in zip(target, spatial)]
    zoom = factors if array.ndim == 2 else [1.0, *factors, 1.0]
    data = array if order == 0 else array.astype(np.float64)
    out = ndimage.zoom(data, zoom, order=order, mode="nearest", grid_mode=True)
    out_spatial = out.shape[:2] if out.ndim == 2 else out.shape[1:3]
    if tuple(out_spatial) != target:  # zoom rounds the output size; never off by more than one
        raise ValueError(f"resampling {spatial} to {target} gave {out_spatial}")
    return out.astype(array.dtype) if order == 0 else out.astype(np.float32)


def resample_field(field: np.ndarray, shape) -> np.ndarray:
    """Bring a displacement field ``[H, W, 2]`` or ``[B, H, W, 2]`` (pixels) to the grid ``shape``.

    The field is resampled linearly (:func:`resample_to`) and each component scaled by its axis's
    factor (``shape[0] / H`` for channel 0, rows; ``shape[1] / W`` for channel 1), so that it moves
    the same physical points on the new grid: with ``moved(p) = moving(p + D(p))`` on both grids.
    """
    field = np.asarray(field, dtype=np.float32)
    batch = field[None] if field.ndim == 3 else field
    if batch.ndim != 4 or batch.shape[-1] != 2:
        raise ValueError(f"resample_field takes [H, W, 2] or [B, H, W, 2], got shape {field.shape}")
    scale = np.array([shape[0] / batch.shape[1], shape[1] / batch.shape[2]], np.float32)
    out = resample_to(batch, shape, order=1) * scale
    return out[0] if field.ndim == 3 else out


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

