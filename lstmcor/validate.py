"""Input checks shared by the layers, the models and the command line.

Every check raises one ``ValueError`` that names the problem and says what to do, so that a
student sees a sentence instead of a shape error from deep inside a backend.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def check_spatial_shape(shape: Sequence[int | None], levels: int = 4, what: str = "input") -> tuple[int, int]:
    """Check that a 2D image size can pass through a U-Net with ``levels`` poolings.

    Args:
        shape: ``(H, W)`` or a longer shape whose first two entries are H and W.
        levels: number of times the network halves the image.
        what: name used in the error message.

    Returns:
        ``(H, W)`` as ints.
    """
    if len(shape) < 2:
        raise ValueError(f"{what} shape {tuple(shape)} is not 2D: give (height, width), for example (160, 192).")
    height, width = shape[0], shape[1]
    if height is None or width is None:
        raise ValueError(f"{what} shape {tuple(shape)} has an unknown size: give a fixed (height, width).")
    factor = 2**levels
    if int(height) % factor or int(width) % factor:
        raise ValueError(
            f"{what} size {int(height)} x {int(width)} is not divisible by {factor} (2**{levels} levels): "
            f"pad or crop the images to a multiple of {factor}, for example with lstmcor.data.pad_or_crop."
        )
    return int(height), int(width)


def check_image_batch(array: np.ndarray, name: str = "image", channels: int | None = 1) -> np.ndarray:
    """Check and convert an image batch to ``float32 [B, H, W, C]``.

    Accepts ``[H, W]``, ``[H, W, C]`` (when ``channels`` matches) or ``[B, H, W, C]``.

    Args:
        array: the images.
        name: name used in error messages ("moving", "fixed", "flow", ...).
        channels: the channel count expected, or ``None`` for any.

    Returns:
        A float32 array of rank 4.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name} has dtype {array.dtype}: give numbers (a float or integer array).")
    if array.ndim == 2 and channels in (1, None):
        array = array[None, :, :, None]
    elif array.ndim == 3 and channels is not None and array.shape[-1] == channels:
        array = array[None]
    elif array.ndim == 3 and channels == 1 and array.shape[-1] in (3, 4):
        raise ValueError(
            f"{name} has shape {array.shape}, which looks like a colour image [H, W, {array.shape[-1]}]: "
            "convert it to grey (one channel), or give a batch as [batch, height, width, 1]."
        )
    elif array.ndim == 3 and channels in (1, None):
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(
            f"{name} has rank {array.ndim} (shape {array.shape}); expected [batch, height, width, channels]."
        )
    if channels is not None and array.shape[-1] != channels:
        raise ValueError(
            f"{name} has {array.shape[-1]} channels (shape {array.shape}); expected {channels}."
        )
    array = array.astype("float32", copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values: clean or re-normalise the data first.")
    return array
