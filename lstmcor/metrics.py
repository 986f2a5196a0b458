"""Scores of a registration, in NumPy: Dice, Jacobian determinant, folding, SDlogJ, field error."""
from __future__ import annotations

from typing import Iterable

import numpy as np


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


def sdlogj(flow: np.ndarray, floor: float = 1e-9) -> float:
    """Standard deviation of ``log(det J)``, the determinant clipped below at ``floor`` (Learn2Reg)."""
    return float(np.std(np.log(np.clip(jacobian_determinant(flow), floor, None))))


def dice(labels_a: np.ndarray, labels_b: np.ndarray, labels: Iterable[int] | None = None) -> np.ndarray:
    """Dice overlap ``2|A n B| / (|A| + |B|)`` per label.

    Args:
        labels_a, labels_b: integer label maps of the same shape.
        labels: the labels to score; default, every non-zero label found in either map.

    Returns:
        One value per label (NaN for a label absent from both maps).
    """
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"dice: label maps differ in shape, {a.shape} against {b.shape}.")
    for name, arr in (("labels_a", a), ("labels_b", b)):
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"dice: {name} contains NaN or infinite values; label maps hold integers.")
    if labels is None:
        labels = np.union1d(np.unique(a), np.unique(b))
        labels = labels[labels != 0]
    scores = []
    for label in labels:
        in_a, in_b = a == label, b == label
        total = in_a.sum() + in_b.sum()
        scores.append(np.nan if total == 0 else 2.0 * np.logical_and(in_a, in_b).sum() / total)
    return np.asarray(scores, dtype="float64")


def mean_dice(fixed_labels: np.ndarray, moved_labels: np.ndarray) -> float:
    """Mean Dice over the foreground labels present in the fixed map (DESIGN.md)."""
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
