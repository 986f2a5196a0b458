"""A classical iterative baseline: symmetric diffeomorphic registration (SyN) from DIPY.

SyN (Avants et al., 2008) optimises a diffeomorphism for each pair from scratch; the VoxelMorph
paper used it as its classical reference. DIPY's implementation ships in its wheel and runs
offline. Its forward field, with identity affines, uses our convention exactly
(``moved(p) = moving(p + D(p))``, rows first), which ``tests/test_classical.py`` checks.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from lstmcor.validate import check_image_batch


def syn_register(moving: np.ndarray, fixed: np.ndarray, metric: str = "cc",
                 level_iters: Sequence[int] = (50, 25, 10)) -> np.ndarray:
    """Register ``moving`` to ``fixed`` with SyN and return the displacement field.

    Args:
        moving, fixed: 2D images ``[H, W]`` (or ``[1, H, W, 1]``) in [0, 1].
        metric: ``"cc"`` (local cross-correlation) or ``"ssd"`` (sum of squared differences).
        level_iters: iterations per resolution level, coarse to fine.

    Returns:
        The field ``[H, W, 2]`` in pixels, channel 0 along rows.
    """
    from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
    from dipy.align.metrics import CCMetric, SSDMetric

    moving = check_image_batch(moving, "moving")[0, ..., 0].astype("float64")
    fixed = check_image_batch(fixed, "fixed")[0, ..., 0].astype("float64")
    if moving.shape != fixed.shape:
        raise ValueError(f"moving {moving.shape} and fixed {fixed.shape} differ in shape.")
    metrics = {"cc": CCMetric, "ssd": SSDMetric}
    if metric not in metrics:
        raise ValueError(f"metric must be one of {sorted(metrics)}, got {metric!r}.")
    logging.getLogger("dipy").setLevel(logging.WARNING)
    registration = SymmetricDiffeomorphicRegistration(metrics[metric](2), level_iters=list(level_iters))
    mapping = registration.optimize(fixed, moving)
    return np.asarray(mapping.get_forward_field(), dtype="float32")
