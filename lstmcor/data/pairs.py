"""Pairs of different subjects of one split, drawn from a seed (NumPy; no backend).

:mod:`lstmcor.data.batches` turns them into Keras batches for ``model.fit``.
"""
from __future__ import annotations

import numpy as np

from lstmcor.data.dataset import RegistrationSet

def _split_members(dataset: RegistrationSet, split: str) -> np.ndarray:
    if split not in dataset.splits:
        raise ValueError(f"unknown split {split!r}: use one of {sorted(dataset.splits)}")
    idx = np.asarray(dataset.splits[split], dtype=np.int64)
    if len({dataset.subjects[i] for i in idx}) < 2:
        raise ValueError(f"split '{split}' of '{dataset.name}' has fewer than two subjects, so it has no "
                         "pairs of different subjects: add images or change split_fractions")
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

