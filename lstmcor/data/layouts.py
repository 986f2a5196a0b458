"""Folder layouts: a flat folder of images, images/ + labels/, or the neurite-OASIS 2D release.

:func:`load_dataset` scans a folder, reads every file with :mod:`lstmcor.data.io`, pads the images
to one size and draws the splits by subject. NumPy only: no Keras backend starts.
"""
from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path

import numpy as np

from lstmcor.data.arrays import normalize_intensity, pad_or_crop
from lstmcor.data.dataset import RegistrationSet, load_default
from lstmcor.data.io import _as_labels, _kind_of, _read_raw, _strip_ext, _to_2d

# neurite-OASIS 2D release (github.com/adalca/medical-datasets, neurite-oasis.md): one folder per
# subject, e.g. OASIS_OAS1_0001_MR1/, holding these 160 x 192 (x 1) NIfTI files.
OASIS_IMAGE = "slice_norm.nii.gz"
OASIS_ORIG = "slice_orig.nii.gz"
OASIS_LABELS = {"seg4": "slice_seg4.nii.gz", "seg24": "slice_seg24.nii.gz"}
OASIS_COMPANIONS = {"subjects.txt", "pairs.txt", "seg4_labels.txt", "seg24_labels.txt",
                    "seg35_labels.txt", "readme", "readme.txt", "readme.md"}

LABEL_SUFFIXES = ("_seg", "_labels", "_label")


@dataclasses.dataclass
class _Entry:
    subject: str
    image: Path
    label: Path | None


def _is_hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _label_base(stem: str) -> str | None:
    low = stem.lower()
    for suf in LABEL_SUFFIXES:
        if low.endswith(suf):
            return stem[: -len(suf)]
    return None


def _scan_flat(folder: Path, kind: str, problems: list) -> list[_Entry]:
    """Image files with optional label files (``<name>_seg``/``_label(s)``, or images/ + labels/)."""
    entries: list[_Entry] = []
    img_dir, lab_dir = folder / "images", folder / "labels"
    if img_dir.is_dir():
        files = sorted(p for p in img_dir.iterdir() if not _is_hidden(p))
        for p in files:
            if _kind_of(p.name) != kind:
                problems.append((p, f"not a {kind} file"))
                continue
            lab = None
            if lab_dir.is_dir():
                cand = lab_dir / p.name
                lab = cand if cand.is_file() else None
            entries.append(_Entry(_strip_ext(p.name), p, lab))
        if lab_dir.is_dir():
            names = {e.image.name for e in entries}
            for p in sorted(q for q in lab_dir.iterdir() if not _is_hidden(q)):
                if p.name not in names:
                    problems.append((p, "label file without a matching image in images/"))
        return entries
    files = sorted(p for p in folder.iterdir() if not _is_hidden(p))
    images, labels = {}, {}
    for p in files:
        if p.is_dir():
            problems.append((p, "unexpected sub-folder"))
            continue
        if _kind_of(p.name) != kind:
            problems.append((p, f"not a {kind} file"))
            continue
        stem = _strip_ext(p.name)
        base = _label_base(stem)
        if base is not None:
            labels[base] = p
        else:
            images[stem] = p
    for base, p in labels.items():
        if base not in images:
            problems.append((p, f"label file without an image named '{base}'"))
    for stem in sorted(images):
        entries.append(_Entry(stem, images[stem], labels.get(stem)))
    return entries


def _scan_oasis(folder: Path, label_set: str, problems: list) -> list[_Entry]:
    if label_set not in OASIS_LABELS:
        raise ValueError(f"label_set={label_set!r} is not in the neurite-OASIS 2D release: use 'seg4' or 'seg24'")
    entries = []
    for p in sorted(q for q in folder.iterdir() if not _is_hidden(q)):
        if p.is_file():
            if p.name.lower() not in OASIS_COMPANIONS:
                problems.append((p, "unexpected file beside the subject folders"))
            continue
        img = p / OASIS_IMAGE
        if not img.is_file():
            problems.append((p, f"subject folder without {OASIS_IMAGE}"))
            continue
        lab = p / OASIS_LABELS[label_set]
        entries.append(_Entry(p.name, img, lab if lab.is_file() else None))
    return entries


def _read_lut(path: Path) -> dict[int, str]:
    names = {}
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and re.fullmatch(r"\d+", parts[0]):
                names[int(parts[0])] = parts[1]
    return names


def _detect_layout(folder: Path) -> str:
    children = [p for p in folder.iterdir() if not _is_hidden(p)]
    if any((p / OASIS_IMAGE).is_file() for p in children if p.is_dir()):
        return "oasis2d"
    search = folder / "images" if (folder / "images").is_dir() else folder
    counts = {"nifti": 0, "png": 0, "npy": 0}
    for p in search.iterdir():
        k = _kind_of(p.name)
        if k:
            counts[k] += 1
    if sum(counts.values()) == 0:
        raise ValueError(
            f"data folder '{folder}' holds no image files (.nii/.nii.gz, .png, .npy, or sub-folders "
            f"with {OASIS_IMAGE}): put one image per file there (labels as <name>_seg.<ext>), or "
            "pass 'default' for the embedded set")
    best = max(counts, key=lambda k: counts[k])
    if sorted(counts.values())[-2] > 0:
        raise ValueError(f"data folder '{folder}' mixes file types {counts}: keep one type per folder "
                         "or pass layout='nifti'|'png'|'npy' to choose (other files then count as bad)")
    return best


def _split_indices(n: int, fractions, seed: int) -> dict[str, np.ndarray]:
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or np.any(fr < 0) or fr.sum() <= 0:
        raise ValueError(f"split_fractions must be three non-negative numbers (train, val, test), got {fractions!r}")
    fr = fr / fr.sum()
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fr[1] * n))
    n_test = int(round(fr[2] * n))
    if n >= 3:
        n_val = max(n_val, 1) if fr[1] > 0 else 0
        n_test = max(n_test, 1) if fr[2] > 0 else 0
    n_val = min(n_val, max(n - 1, 0))
    n_test = min(n_test, max(n - 1 - n_val, 0))
    n_train = n - n_val - n_test
    return {"train": np.sort(order[:n_train]),
            "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def load_dataset(source: str | os.PathLike = "default", *, layout: str = "auto",
                 slice_index: int | None = None, axis: int = 2, multiple: int = 16,
                 skip_bad: bool = False, seed: int = 0, split_fractions=(0.7, 0.15, 0.15),
                 label_set: str = "seg4") -> RegistrationSet:
    """Load the embedded set (``"default"``) or a folder of your images.

    Layouts (``layout="auto"`` picks one from what the folder holds):

    ``"oasis2d"``
        The neurite-OASIS 2D release: one folder per subject (``OASIS_OAS1_0001_MR1/``...) with
        ``slice_norm.nii.gz`` (the image) and ``slice_seg4.nii.gz`` / ``slice_seg24.nii.gz``
        (``label_set="seg4"`` or ``"seg24"``). Label names come from ``seg4_labels.txt`` /
        ``seg24_labels.txt`` beside the folders when present. Arrays are kept as stored
        (160 x 192; that release stores the coronal slice with rows along left-right, so it shows
        rotated with ``imshow``, unlike the upright embedded set).
    ``"nifti"`` / ``"png"`` / ``"npy"``
        One image per file. Labels, optional, either as ``<name>_seg.<ext>`` (or ``_label``,
        ``_labels``) beside the image, or in ``labels/`` with the same file name as in ``images/``.
        NIfTI and NumPy files may be 3D volumes: pass ``slice_index`` and ``axis`` to take one slice.
        RGB PNG images are converted to grey.

    Every image is scaled to [0, 1] by :func:`~lstmcor.data.normalize_intensity` (0.5th percentile
    to the 99.9th percentile of the pixels above it, clipped: robust to hot pixels); images and
    labels are centre-padded (zeros) to a common size that is a multiple of ``multiple``. Splits are
    drawn by subject from ``seed`` with ``split_fractions``. A bad file raises one ``ValueError``
    naming it; with ``skip_bad=True`` bad subjects are left out instead, with a warning that says
    how many and why (also in ``meta["skipped"]``).
    """
    if isinstance(source, str) and source == "default":
        return load_default()
    folder = Path(source)
    if not folder.exists():
        raise FileNotFoundError(
            f"data folder '{folder}' does not exist: pass the folder that holds your images (or one "
            "sub-folder per subject for the neurite-OASIS layout), or 'default' for the embedded set")
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is a file, not a folder: pass the folder that holds the images "
                         "(one image per file), or 'default' for the embedded set")
    if not any(not _is_hidden(p) for p in folder.iterdir()):
        raise ValueError(f"data folder '{folder}' is empty: put your images there (one per file, labels as "
                         "<name>_seg.<ext>), or pass 'default' for the embedded set")
    if layout == "auto":
        layout = _detect_layout(folder)
    if layout not in ("oasis2d", "nifti", "png", "npy"):
        raise ValueError(f"unknown layout {layout!r}: use 'auto', 'nifti', 'oasis2d', 'png' or 'npy'")

    problems: list[tuple[Path, str]] = []
    if layout == "oasis2d":
        entries = _scan_oasis(folder, label_set, problems)
    else:
        entries = _scan_flat(folder, layout, problems)

    for path, why in list(problems):
        if not skip_bad:
            raise ValueError(f"'{path}': {why}. Fix or remove it, or pass skip_bad=True to leave it out")

    images, labels, subjects = [], [], []
    for e in entries:
        try:
            img = _to_2d(_read_raw(e.image), e.image, slice_index, axis)
            try:
                img = normalize_intensity(img)
            except ValueError as exc:
                raise ValueError(f"image '{e.image}': {exc}") from None
            lab = None
            if e.label is not None:
                lab = _as_labels(_to_2d(_read_raw(e.label), e.label, slice_index, axis), e.label)
                if lab.shape != img.shape:
                    raise ValueError(f"label map '{e.label}' has shape {lab.shape} but its image '{e.image}' "
                                     f"has shape {img.shape}: they must match pixel for pixel")
        except ValueError as exc:
            if not skip_bad:
                raise
            problems.append((e.image, str(exc)))
            continue
        images.append(img)
        labels.append(lab)
        subjects.append(e.subject)

    if not images:
        why = f" ({len(problems)} bad files, e.g. {problems[0][0]}: {problems[0][1]})" if problems else ""
        raise ValueError(f"no usable images found in data folder '{folder}' with layout '{layout}'{why}: "
                         "check the folder and the layout, or pass 'default' for the embedded set")
    n_lab = sum(lab is not None for lab in labels)
    if 0 < n_lab < len(labels):
        missing = [subjects[i] for i, lab in enumerate(labels) if lab is None]
        raise ValueError(f"label maps were found for {n_lab} of {len(labels)} images in '{folder}'; missing "
                         f"for e.g. '{missing[0]}': give every image its label map or remove them all")
    if problems:
        warnings.warn(f"skipped {len(problems)} bad file(s) in '{folder}' (skip_bad=True): "
                      + "; ".join(f"{p.name}: {why}" for p, why in problems[:10])
                      + (" ..." if len(problems) > 10 else ""), stacklevel=2)

    shapes = np.array([im.shape for im in images])
    target = tuple(int(-(-s // multiple) * multiple) for s in shapes.max(axis=0))
    imgs = np.stack([pad_or_crop(im, target_shape=target) for im in images]).astype(np.float32)
    labs = None
    label_names: list[str] = []
    if n_lab:
        labs = np.stack([pad_or_crop(lab, target_shape=target) for lab in labels]).astype(np.int32)
        lut = {}
        if layout == "oasis2d":
            lut = _read_lut(folder / f"{label_set}_labels.txt")
        top = int(labs.max())
        label_names = [lut.get(v, "background" if v == 0 else f"label_{v}") for v in range(top + 1)]
    splits = _split_indices(len(imgs), split_fractions, seed)
    meta = {
        "layout": layout,
        "source": str(folder),
        "original_shapes": sorted({tuple(map(int, s)) for s in shapes}),
        "padded_to": target,
        "skipped": [(str(p), why) for p, why in problems],
        "slice_index": slice_index,
        "axis": axis,
        "seed": seed,
    }
    return RegistrationSet(images=imgs, labels=labs, subjects=subjects, splits=splits,
                           label_names=label_names, name=str(folder), meta=meta)

