"""Scores of a registration, in NumPy: Dice, HD95, Jacobian determinant, folding, SDlogJ, field error."""
from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage


def _as_field(flow: np.ndarray) -> np.ndarray:
    flow = np.asarray(flow, dtype="float64")
    if flow.ndim not in (3, 4) or flow.shape[-1] != 2:
        raise ValueError(f"a 2D displacement field must be [H, W, 2] or [B, H, W, 2], got shape {flow.shape}.")
    if not np.all(np.isfinite(flow)):
        raise ValueError("the displacement field contains NaN or infinite values.")
    return flow


def jacobian_determinant(flow: np.ndarray) -> np.ndarray:
    """Determinant of the Jacobian of ``x -> x + D(x)`` for a 2D displacement field.

    Derivatives are central differences inside the image and one-sided at its border
    (``np.gradient``), so an affine map gives its exact determinant everywhere.

    Args:
        flow: ``[H, W, 2]`` or ``[B, H, W, 2]`` in pixels, channel 0 along rows.

    Returns:
        ``[H, W]`` or ``[B, H, W]``.
    """
    flow = _as_field(flow)
    squeeze = flow.ndim == 3
    if squeeze:
        flow = flow[None]
    d0_drow, d0_dcol = np.gradient(flow[..., 0], axis=(1, 2))
    d1_drow, d1_dcol = np.gradient(flow[..., 1], axis=(1, 2))
    det = (1.0 + d0_drow) * (1.0 + d1_dcol) - d0_dcol * d1_drow
    return det[0] if squeeze else det


def folding_fraction(flow: np.ndarray) -> float:
    """Fraction of pixels where the Jacobian determinant is <= 0 (the map folds there)."""
    return float(np.mean(jacobian_determinant(flow) <= 0))


def sdlogj(flow: np.ndarray, mask: np.ndarray | None = None, *, offset: float = 3.0, border: int = 2) -> float:
    """SDlogJ as Learn2Reg scores it: ``std(log(clip(det J + offset, 1e-9, 1e9)))``, 2D.

    Learn2Reg's evaluation (``evaluation/evaluation.py`` and ``utils.py`` of MDL-UzL/L2R) computes
    ``det J`` of the map ``x + u(x)``: its ``jacobian_determinant`` adds the identity to the
    central-difference gradient of ``u`` before taking the determinant, and crops 2 voxels at each
    border (its zero-padded differences are wrong on the outermost one). Then it adds 3, clips to
    ``[1e-9, 1e9]``, takes the log and the standard deviation, inside the fixed image's mask when
    the task has one.
    The ``+ 3`` is therefore not a correction of the determinant, which is already ``det J``: it
    shifts the argument of the log. Two effects follow. Near the identity
    ``log(det J + 3) ~ log 4 + (det J - 1) / 4``, so the score is about ``std(det J) / 4``, a
    quarter of the plain ``std(log det J)``; scores with and without the shift do not compare.
    And folds with ``-3 < det J <= 0`` keep a finite log instead of being clipped to
    ``log 1e-9 ~ -20.7``, so a few folded pixels do not dominate the spread. The code gives no
    reason for 3 and nothing in it ties the 3 to the number of dimensions, so the 2D version keeps
    ``+ 3``; ``offset=0`` gives the plain ``std(log det J)`` (determinants <= 0 then sit at the
    floor).

    Our :func:`jacobian_determinant` uses the same central differences away from the border, so
    with ``border=2`` the values are Learn2Reg's, one dimension down.

    Args:
        flow: ``[H, W, 2]`` or ``[B, H, W, 2]`` in pixels; a batch is pooled into one spread, so
            call it once per pair for Learn2Reg's per-case value.
        mask: optional boolean ``[H, W]`` (or ``[B, H, W]``) in the coordinates of the full image;
            it is cropped with the determinant. NaN if it keeps no pixel.
        offset: added to ``det J`` before the clip (Learn2Reg: 3).
        border: pixels dropped at each side of the image (Learn2Reg: 2).

    Returns:
        The standard deviation, a float; 0 for any affine map.

    Example:
        >>> import numpy as np
        >>> rows, cols = np.meshgrid(np.arange(16.0), np.arange(16.0), indexing="ij")
        >>> stretch = np.stack([0.5 * rows, np.zeros_like(cols)], axis=-1)  # det J = 1.5 everywhere
        >>> round(sdlogj(stretch), 12)
        0.0
    """
    det = jacobian_determinant(flow)
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"sdlogj: border must be an integer >= 0, got {border!r}.")
    height, width = det.shape[-2:]
    if 2 * border >= min(height, width):
        raise ValueError(f"sdlogj: border {border} leaves no pixel of a field of shape {np.shape(flow)}.")
    inner = (..., slice(border, height - border), slice(border, width - border))
    log_det = np.log(np.clip(det + offset, 1e-9, 1e9))[inner]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape not in (det.shape, det.shape[-2:]):
            raise ValueError(f"sdlogj: mask of shape {mask.shape} does not fit a field of shape {np.shape(flow)}.")
        keep = np.broadcast_to(mask.astype(bool), det.shape)[inner]
        return float(np.std(log_det[keep])) if keep.any() else float("nan")
    return float(np.std(log_det))


def _label_maps(labels_a, labels_b, labels, what: str):
    """Two label maps as arrays, checked alike, and the labels to score (default: every non-zero one)."""
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"{what}: label maps differ in shape, {a.shape} against {b.shape}.")
    for name, arr in (("labels_a", a), ("labels_b", b)):
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: {name} contains NaN or infinite values; label maps hold integers.")
    if labels is None:
        labels = np.union1d(np.unique(a), np.unique(b))
        labels = labels[labels != 0]
    return a, b, labels


def dice(labels_a: np.ndarray, labels_b: np.ndarray, labels: Iterable[int] | None = None) -> np.ndarray:
    """Dice overlap ``2|A n B| / (|A| + |B|)`` per label.

    Args:
        labels_a, labels_b: integer label maps of the same shape.
        labels: the labels to score; default, every non-zero label found in either map.

    Returns:
        One value per label (NaN for a label absent from both maps).
    """
    a, b, labels = _label_maps(labels_a, labels_b, labels, "dice")
    scores = []
    for label in labels:
        in_a, in_b = a == label, b == label
        total = in_a.sum() + in_b.sum()
        scores.append(np.nan if total == 0 else 2.0 * np.logical_and(in_a, in_b).sum() / total)
    return np.asarray(scores, dtype="float64")


def _surface(region: np.ndarray) -> np.ndarray:
    """Pixels of ``region`` with a 4-neighbour outside it (the image border counts as outside)."""
    return region & ~ndimage.binary_erosion(region)


def hd95(labels_a: np.ndarray, labels_b: np.ndarray, labels: Iterable[int] | None = None) -> np.ndarray:
    """95th-percentile Hausdorff distance per label, in pixels, as MONAI computes it.

    Following MONAI's ``compute_hausdorff_distance(..., percentile=95)``: the surface of a region is
    the set of its pixels that binary erosion removes; for every surface pixel of A, the distance to
    the nearest surface pixel of B (``scipy.ndimage.distance_transform_edt``), and the other way
    round; the result is the larger of the two 95th percentiles (``np.percentile``), not a
    percentile of the two sets pooled. Learn2Reg's DeepMind-based code also takes the larger of two
    directed percentiles, but weights surface elements by their area, so its values differ slightly.

    Args:
        labels_a, labels_b: integer label maps of the same shape; every axis is spatial, so score a
            batch one map at a time.
        labels: the labels to score; default, every non-zero label found in either map.

    Returns:
        One value per label: NaN for a label absent from both maps, ``inf`` for a label present in
        one map only (MONAI's convention), 0 for identical regions.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((20, 20), int); a[5:12, 5:12] = 1
        >>> b = np.roll(a, 3, axis=1)  # the same square, 3 pixels to the right
        >>> hd95(a, b)
        array([3.])
    """
    a, b, labels = _label_maps(labels_a, labels_b, labels, "hd95")
    scores = []
    for label in labels:
        in_a, in_b = a == label, b == label
        if not in_a.any() and not in_b.any():
            scores.append(np.nan)
        elif not in_a.any() or not in_b.any():
            scores.append(np.inf)
        else:
            surface_a, surface_b = _surface(in_a), _surface(in_b)
            a_to_b = ndimage.distance_transform_edt(~surface_b)[surface_a]
            b_to_a = ndimage.distance_transform_edt(~surface_a)[surface_b]
            scores.append(max(np.percentile(a_to_b, 95), np.percentile(b_to_a, 95)))
    return np.asarray(scores, dtype="float64")


def mean_dice(fixed_labels: np.ndarray, moved_labels: np.ndarray) -> float:
    """Mean Dice over the foreground labels present in the fixed map (``book/readings.md``)."""
    present = np.unique(np.asarray(fixed_labels))
    present = present[present != 0]
    if present.size == 0:
        return float("nan")
    return float(np.mean(dice(fixed_labels, moved_labels, present)))


def endpoint_error(flow: np.ndarray, true_flow: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Euclidean distance in pixels between two fields, optionally inside a mask."""
    flow, true_flow = _as_field(flow), _as_field(true_flow)
    if flow.shape != true_flow.shape:
        raise ValueError(f"endpoint_error: fields differ in shape, {flow.shape} against {true_flow.shape}.")
    err = np.sqrt(np.sum((flow - true_flow) ** 2, axis=-1))
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, bool), err.shape)
        return float(err[mask].mean()) if mask.any() else float("nan")
    return float(err.mean())
