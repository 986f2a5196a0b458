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

from lstmcor.transform import warp
from lstmcor.validate import check_image_batch


def register(model: keras.Model, moving, fixed, moving_labels=None) -> dict:
    """Register ``moving`` to ``fixed`` with a trained model, and warp labels by the same field.

    Args:
        model: a model from :func:`build_lstmcor` or :func:`build_voxelmorph`.
        moving, fixed: ``[H, W]`` or ``[B, H, W, 1]`` images in [0, 1].
        moving_labels: optional integer label maps, warped by nearest neighbour.

    Returns:
        A dict with ``moved`` ``[B, H, W, 1]``, ``flow`` ``[B, H, W, 2]`` and, when labels were
        given, ``moved_labels`` shaped like them.
    """
    moving = check_image_batch(moving, "moving")
    fixed = check_image_batch(fixed, "fixed")
    if moving.shape != fixed.shape:
        raise ValueError(f"moving {moving.shape} and fixed {fixed.shape} differ in shape: register images of one size.")
    expected = tuple(model.inputs[0].shape[1:3])
    if moving.shape[1:3] != expected:
        raise ValueError(
            f"images are {moving.shape[1]} x {moving.shape[2]} but the model takes {expected[0]} x {expected[1]}: "
            "pad or crop them with lstmcor.data.pad_or_crop, or build a model of that size."
        )
    moved, flow = model.predict_on_batch([moving, fixed])
    result = {"moved": np.asarray(moved), "flow": np.asarray(flow)}
    if moving_labels is not None:
        labels = np.asarray(moving_labels)
        if labels.dtype.kind not in "iub":
            raise ValueError(f"moving_labels must be integers, got dtype {labels.dtype}.")
        batch = labels.reshape(moving.shape)
        result["moved_labels"] = warp(batch, result["flow"], "nearest").reshape(labels.shape)
    return result
