"""Array helpers shared by every loader: intensity scaling, centre padding, SciPy warping.

NumPy and SciPy only (no Keras): reading an image or rebuilding the embedded set starts no
backend. Shapes: an image is ``[H, W]``; a batch ``[N, H, W]`` or ``[N, H, W, C]``; a
displacement field ``[H, W, 2]`` in pixels, channel 0 along rows (``book/readings.md``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

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

