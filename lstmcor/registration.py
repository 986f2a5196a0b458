"""Registering images with a trained network: one pair (or batch) in, the moved image and field out.

The route of ``lstmcor register``: read (:mod:`lstmcor.data.io`) -> load the model
(:mod:`lstmcor.saving`) -> :func:`register` -> write (:mod:`lstmcor.data.io`).

Example:
    >>> import numpy as np, lstmcor
    >>> model = lstmcor.build_voxelmorph((32, 32))
    >>> result = lstmcor.register(model, np.zeros((32, 32)), np.ones((32, 32)))
    >>> result["flow"].shape
    (1, 32, 32, 2)
"""
from __future__ import annotations

import keras
import numpy as np

from lstmcor.data.arrays import resample_field, resample_to
from lstmcor.transform import warp
from lstmcor.validate import check_image_batch

RANGE_TOLERANCE = 1e-3


def _check_range(images: np.ndarray, name: str) -> None:
    lo, hi = float(images.min()), float(images.max())
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise ValueError(f"{name} has values in [{lo:g}, {hi:g}], outside [0, 1] where the networks were trained: "
                         f"scale it first with lstmcor.data.normalize_intensity({name}).")


def register(model: keras.Model, moving, fixed, moving_labels=None, resample: bool = False) -> dict:
    """Register ``moving`` to ``fixed`` with a trained model, and warp labels by the same field.

    Args:
        model: a model from :func:`build_lstmcor` or :func:`build_voxelmorph`.
        moving, fixed: ``[H, W]`` or ``[B, H, W, 1]`` images in [0, 1] (checked, to within 1e-3:
            scale others with :func:`lstmcor.data.normalize_intensity`).
        moving_labels: optional integer label maps, warped by nearest neighbour exactly (any
            integer dtype, ids kept bit for bit).
        resample: when the images are not the model's size, resample them to the model's grid
            (linearly, per-axis factors), register there, bring the field back to the images' grid
            (resampled and scaled by the factors) and warp the original images and labels with it.
            Without it such images are refused.

    Returns:
        A dict with ``moved`` ``[B, H, W, 1]``, ``flow`` ``[B, H, W, 2]`` and, when labels were
        given, ``moved_labels`` shaped like them; all on the images' own grid.
    """
    moving = check_image_batch(moving, "moving")
    fixed = check_image_batch(fixed, "fixed")
    if moving.shape != fixed.shape:
        raise ValueError(f"moving {moving.shape} and fixed {fixed.shape} differ in shape: register images of one size.")
    _check_range(moving, "moving")
    _check_range(fixed, "fixed")
    labels = None
    if moving_labels is not None:
        labels = np.asarray(moving_labels)
        if labels.dtype.kind not in "iub":
            raise ValueError(f"moving_labels must be integers, got dtype {labels.dtype}.")
        if labels.size != moving.size:
            raise ValueError(f"moving_labels {labels.shape} do not match the moving image {moving.shape}.")
    expected = tuple(int(s) for s in model.inputs[0].shape[1:3])
    grid = tuple(int(s) for s in moving.shape[1:3])
    if grid == expected:
        moved, flow = model.predict_on_batch([moving, fixed])
        result = {"moved": np.asarray(moved), "flow": np.asarray(flow)}
    elif resample:
        _, flow = model.predict_on_batch([resample_to(moving, expected), resample_to(fixed, expected)])
        flow = resample_field(np.asarray(flow), grid)
        result = {"moved": warp(moving, flow).astype(np.float32), "flow": flow}
    else:
        raise ValueError(
            f"images are {grid[0]} x {grid[1]} but the model takes {expected[0]} x {expected[1]}: "
            "pass resample=True, pad or crop them with lstmcor.data.pad_or_crop, or build a model of that size."
        )
    if labels is not None:
        result["moved_labels"] = warp(labels.reshape(moving.shape), result["flow"], "nearest").reshape(labels.shape)
    return result
