"""The data-set container: images, labels, subjects, splits and, for the embedded set, its truth.

Conventions (``book/readings.md``): images are float32 in [0, 1], label maps int32 with
0 = background, a displacement field is ``[H, W, 2]`` in pixels with channel 0 along rows, and a
field ``D`` aligns ``moving`` to ``fixed`` when ``moving(p + D(p)) ~= fixed(p)``.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from lstmcor.data.resources import DEFAULT_FILENAME, default_data_path
from lstmcor.data.synthetic import SyntheticTruth

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class RegistrationSet:
    """Images (and optional label maps) of subjects, with fixed train/val/test splits.

    ``images`` ``[N, H, W]`` float32 in [0, 1]; ``labels`` ``[N, H, W]`` int32 or None;
    ``subjects`` the subject id of each image; ``splits`` maps "train"/"val"/"test" to indices
    into ``images``, disjoint by subject; ``label_names[v]`` names label value v; ``name`` is
    "default" or the folder; ``meta`` holds provenance (source, skipped files, padding applied).
    ``truth`` is the :class:`~lstmcor.data.synthetic.SyntheticTruth` of the embedded set (one entry
    per image), None for your own images.

    Example:
        >>> ds = load_default()
        >>> ds.shape, ds.truth is not None
        ((160, 192), True)
    """

    images: np.ndarray
    labels: np.ndarray | None
    subjects: list[str]
    splits: dict[str, np.ndarray]
    label_names: list[str]
    name: str
    meta: dict = dataclasses.field(default_factory=dict, repr=False)
    truth: SyntheticTruth | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        if self.truth is not None and len(self.truth) != len(self):
            raise ValueError(f"the truth describes {len(self.truth)} images but the set holds {len(self)}.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    def split_subjects(self, split: str) -> list[str]:
        return sorted({self.subjects[i] for i in self.splits[split]})

    def subset(self, split: str) -> "RegistrationSet":
        """A new set holding only one split (its ``splits`` has that split only, renumbered)."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}: use one of {sorted(self.splits)}")
        idx = np.asarray(self.splits[split], dtype=np.int64)
        return RegistrationSet(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            subjects=[self.subjects[i] for i in idx],
            splits={split: np.arange(len(idx))},
            label_names=list(self.label_names),
            name=f"{self.name}[{split}]",
            meta=dict(self.meta),
            truth=None if self.truth is None else self.truth.take(idx),
        )

    def base_of(self, i: int) -> str | None:
        """Name of the real brain an image was made from (embedded set), else None."""
        return None if self.truth is None else self.truth.base_name(i)

    def true_displacement(self, moving: int, fixed: int) -> np.ndarray | None:
        """Known D ``[H, W, 2]`` (pixels, channel 0 = rows) with moving(p + D(p)) ~= fixed(p).

        Only for the embedded set and two images made from the same real brain; None otherwise
        (two different people have no known correspondence). It is exact in the plane of the
        slice; the few millimetres of through-plane shift between pseudo-subjects are not
        modelled, so it is the best in-plane answer rather than a perfect one.
        """
        return None if self.truth is None else self.truth.pair_displacement(moving, fixed)

    def subject_displacement(self, i: int) -> np.ndarray | None:
        """D ``[H, W, 2]`` with base(p + D(p)) = image i(p): how far this image is from its base brain."""
        return None if self.truth is None else self.truth.subject_displacement(i)


def set_from_npz(arrays, name: str = "default") -> RegistrationSet:
    """The :class:`RegistrationSet` stored in an opened ``lstmcor_brains2d.npz``."""
    meta = json.loads(str(np.asarray(arrays["meta_json"]).reshape(-1)[0]))
    images = arrays["images"].astype(np.float32) / float(meta["image_scale"])
    truth = SyntheticTruth(
        base=arrays["base"].astype(np.int64),
        base_names=[str(s) for s in arrays["base_names"]],
        velocity=arrays["velocity"].astype(np.float64),
        affine=arrays["affine"].astype(np.float64),
        shape=tuple(images.shape[1:]),
        spacing=int(meta["control_spacing"]),
        steps=int(meta["integration_steps"]),
    )
    meta["base_images"] = arrays["base_images"].astype(np.float32) / float(meta["image_scale"])
    meta["base_labels"] = arrays["base_labels"].astype(np.int32)
    meta["plane_shift_mm"] = arrays["plane_shift"].astype(np.int64)
    return RegistrationSet(images=images, labels=arrays["labels"].astype(np.int32),
                           subjects=[str(s) for s in arrays["subjects"]],
                           splits={s: arrays[f"split_{s}"].astype(np.int64) for s in SPLITS},
                           label_names=[str(s) for s in arrays["label_names"]], name=name, meta=meta, truth=truth)


def load_default() -> RegistrationSet:
    """The embedded set: 2D coronal brain slices with tissue labels and known deformations."""
    path = default_data_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the embedded data file '{path}' is missing: work inside the lstmcor repository (its data/ "
            "folder holds it), run `python data/make_dataset.py` there (needs `pip install .[data]`), "
            f"or set LSTMCOR_DATA_DIR to the folder that holds {DEFAULT_FILENAME}")
    with np.load(path, allow_pickle=False) as arrays:
        return set_from_npz(arrays)
