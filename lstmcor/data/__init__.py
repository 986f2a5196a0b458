"""Data for the course: the embedded brain set, loaders for your own images, and pair batches.

One idea a module; every public name is re-exported here:

- :mod:`~lstmcor.data.arrays`: ``normalize_intensity``, ``pad_or_crop``, ``warp_array``
- :mod:`~lstmcor.data.synthetic`: the known deformations of the embedded set (``SyntheticTruth``)
- :mod:`~lstmcor.data.dataset`: ``RegistrationSet`` and ``load_default``
- :mod:`~lstmcor.data.resources`: finding ``data/`` and the shipped weights
- :mod:`~lstmcor.data.io`: ``read_image``, one file in
- :mod:`~lstmcor.data.layouts`: ``load_dataset``, a folder in (flat, images/ + labels/, neurite-OASIS)
- :mod:`~lstmcor.data.pairs`: ``pair_indices``, seeded pairs of different subjects
- :mod:`~lstmcor.data.batches`: ``PairDataset``, Keras batches for ``model.fit``

Only ``batches`` imports Keras, and only when ``PairDataset`` is first used: reading an image or
rebuilding the embedded set starts no backend.

Example:
    >>> from lstmcor.data import load_dataset, pair_indices
    >>> ds = load_dataset("default")
    >>> pair_indices(ds, "test", 2, seed=0)  # two (moving, fixed) index pairs
    [(..., ...), (..., ...)]
"""
from __future__ import annotations

from lstmcor.data.arrays import normalize_intensity, pad_or_crop, warp_array
from lstmcor.data.dataset import SPLITS, RegistrationSet, load_default, set_from_npz
from lstmcor.data.io import read_image
from lstmcor.data.layouts import load_dataset
from lstmcor.data.pairs import pair_indices
from lstmcor.data.resources import DEFAULT_FILENAME, default_data_path, find_in_repository
from lstmcor.data.synthetic import SyntheticTruth, pair_displacement, subject_pullback, subject_transform

__all__ = [
    "DEFAULT_FILENAME",
    "SPLITS",
    "PairDataset",
    "RegistrationSet",
    "SyntheticTruth",
    "default_data_path",
    "find_in_repository",
    "load_dataset",
    "load_default",
    "normalize_intensity",
    "pad_or_crop",
    "pair_displacement",
    "pair_indices",
    "read_image",
    "set_from_npz",
    "subject_pullback",
    "subject_transform",
    "warp_array",
]


def __getattr__(name: str):
    if name == "PairDataset":  # the one Keras class: imported on first use
        from lstmcor.data.batches import PairDataset

        return PairDataset
    raise AttributeError(f"module 'lstmcor.data' has no attribute {name!r}")
