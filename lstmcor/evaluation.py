"""Scoring registrations on the test pairs of a split, in the layout of the paper's Table 1.

For every pair and every method (``identity`` first, then the models, optionally SyN with CC
and/or SSD) it records MSE and MAE of intensities, Dice of the labels warped by nearest neighbour
(mean over the foreground labels of the fixed image, and per label), HD95 of the same labels (mean
over those labels, in pixels), the fraction of pixels where the map folds (Jacobian determinant
<= 0), Learn2Reg's SDlogJ (inside the fixed image's foreground when there are labels), the error
against the true displacement where the data knows it, and the time per pair (median of repeated
batch-1 calls after warm-up).

On the embedded set every image was made from one of a few real brains
(:meth:`~lstmcor.data.RegistrationSet.base_of`); a pair of images of the same brain is an easier
problem, with a known answer, than a pair of two people. ``Evaluation.groups`` then holds the
summary of each kind of pair apart (``"same brain"``, ``"cross brain"``), and the table shows them
as extra rows under each method; ``Evaluation.summary[method]`` stays the row over all pairs.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from lstmcor.data import RegistrationSet, load_dataset, pair_indices
from lstmcor.data.resources import shipped_weights, weights_dir
from lstmcor.metrics import dice, endpoint_error, folding_fraction, hd95, mean_dice, sdlogj
from lstmcor.runtime import device_name
from lstmcor.saving import load_model
from lstmcor.transform import warp

__all__ = ["Evaluation", "Method", "evaluate", "load_weights", "markdown_table", "mean_hd95", "pair_group",
           "score_pair", "shipped_weights", "weights_dir", "write_evaluation"]

METRICS = ("mse", "mae", "dice", "hd95", "folding", "sdlogj", "epe", "seconds")
HEADINGS = {
    "mse": "MSE", "mae": "MAE", "dice": "Dice", "hd95": "HD95 (px)", "folding": "Folding (%)", "sdlogj": "SDlogJ",
    "epe": "Field error (px)", "seconds": "Time per pair (s)",
}
Registrar = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: Row names of SyN by DIPY metric (``evaluate(classical=...)``); CC keeps the name it always had.
CLASSICAL_NAMES = {"cc": "SyN (DIPY)", "ssd": "SyN SSD (DIPY)"}
CLASSICAL_NAME = CLASSICAL_NAMES["cc"]
#: The kinds of pair of a set whose images name their real brain (``RegistrationSet.base_of``).
GROUPS = ("same brain", "cross brain")


@dataclasses.dataclass(frozen=True)
class Method:
    """One row of the table: its name, what kind of method it is, and how it registers a pair.

    ``kind`` is ``"identity"`` (no registration), ``"network"`` (a trained model) or
    ``"classical"`` (SyN); the evaluation treats the kinds differently (SyN is timed on fewer
    calls), never by comparing row names.
    """

    name: str
    kind: str
    register: Registrar


@dataclasses.dataclass
class Evaluation:
    """Per-pair rows and per-method summaries of an evaluation."""

    rows: list[dict]
    summary: dict[str, dict[str, float]]
    label_names: list[str]
    device: str
    pairs: list[tuple[int, int]]
    #: ``groups[group][method]``: the summary over the pairs of one group (:data:`GROUPS`); empty
    #: when the set does not know which brain an image came from. Time is measured per method only.
    groups: dict[str, dict[str, dict[str, float]]] = dataclasses.field(default_factory=dict)

    def table(self) -> str:
        """A markdown table in the layout of the paper's Table 1 (mean (std) per method, then its groups)."""
        return markdown_table(self.summary, self.device, self.groups)


def load_weights(path: str | os.PathLike) -> keras.Model:
    """:func:`lstmcor.saving.load_model` under the name the chapters use."""
    return load_model(path)


def model_registrar(model: keras.Model) -> Registrar:
    """Wrap a Keras model as ``(moving, fixed) -> flow [H, W, 2]`` through its compiled path."""
    def register(moving, fixed):
        _, flow = model.predict_on_batch([moving[None, ..., None], fixed[None, ..., None]])
        return np.asarray(flow)[0]
    return register


def classical_registrar(metric: str = "cc") -> Registrar:
    """SyN from DIPY with the ``"cc"`` or ``"ssd"`` metric as a registrar (seconds per pair on a CPU)."""
    from lstmcor.classical import syn_register

    return lambda moving, fixed: syn_register(moving, fixed, metric=metric)


def _identity(moving, fixed):
    return np.zeros(moving.shape + (2,), "float32")


def _time_per_pair(register: Registrar, pairs_images, runs: int) -> np.ndarray:
    """Seconds of ``runs`` batch-1 calls (cycling over the pairs) after one warm-up call."""
    register(*pairs_images[0])
    times = []
    for k in range(runs):
        moving, fixed = pairs_images[k % len(pairs_images)]
        start = time.perf_counter()
        register(moving, fixed)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def mean_hd95(fixed_labels: np.ndarray, moved_labels: np.ndarray) -> float:
    """Mean HD95 in pixels over the foreground labels present in the fixed map.

    A label the moved map lost has an infinite HD95 (MONAI's convention, :func:`lstmcor.metrics.hd95`);
    it is left out of the mean, which is NaN when no label has a finite value. Dice already scores
    a lost label (0), so the mean distance stays a distance.
    """
    present = np.unique(np.asarray(fixed_labels))
    present = present[present != 0]
    values = hd95(fixed_labels, moved_labels, present)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def pair_group(dataset: RegistrationSet, moving: int, fixed: int) -> str | None:
    """``"same brain"`` or ``"cross brain"`` when the set names each image's brain, else None."""
    a, b = dataset.base_of(moving), dataset.base_of(fixed)
    if a is None or b is None:
        return None
    return GROUPS[0] if a == b else GROUPS[1]


def score_pair(dataset: RegistrationSet, moving: int, fixed: int, flow: np.ndarray) -> dict:
    """Every metric of one registered pair except time.

    SDlogJ is Learn2Reg's (:func:`lstmcor.metrics.sdlogj`), inside the fixed image's foreground
    (labels > 0) when the set has labels, over the whole field otherwise.
    """
    moved = warp(dataset.images[moving], flow)
    target = dataset.images[fixed]
    mask = dataset.labels[fixed] > 0 if dataset.labels is not None else None
    row = {
        "mse": float(np.mean((moved - target) ** 2)),
        "mae": float(np.mean(np.abs(moved - target))),
        "folding": 100.0 * folding_fraction(flow),
        "sdlogj": sdlogj(flow, mask),
        "dice": float("nan"),
        "hd95": float("nan"),
        "epe": float("nan"),
    }
    if dataset.labels is not None:
        moved_labels = warp(dataset.labels[moving], flow, "nearest")
        row["dice"] = mean_dice(dataset.labels[fixed], moved_labels)
        row["hd95"] = mean_hd95(dataset.labels[fixed], moved_labels)
        for label, value in zip(range(1, len(dataset.label_names)), dice(dataset.labels[fixed], moved_labels,
                                                                          range(1, len(dataset.label_names)))):
            row[f"dice_{dataset.label_names[label]}"] = float(value)
    truth = dataset.true_displacement(moving, fixed)
    if truth is not None:
        row["epe"] = endpoint_error(flow, truth, mask)
    return row


def _classical_metrics(classical: bool | str | Sequence[str]) -> tuple[str, ...]:
    """``evaluate``'s ``classical`` argument as a tuple of DIPY metrics (True: CC only)."""
    if classical is True:
        return ("cc",)
    if classical is False or classical is None:
        return ()
    metrics = (classical,) if isinstance(classical, str) else tuple(classical)
    unknown = [m for m in metrics if m not in CLASSICAL_NAMES]
    if unknown or len(set(metrics)) != len(metrics):
        raise ValueError(f"classical takes True, False or metrics from {sorted(CLASSICAL_NAMES)} without repeats, "
                         f"got {classical!r}.")
    return metrics


def evaluate(
    models: Mapping[str, keras.Model | str | os.PathLike | Registrar] | keras.Model | str | os.PathLike,
    data: str | os.PathLike | RegistrationSet = "default",
    split: str = "test",
    n_pairs: int | None = 32,
    seed: int = 0,
    classical: bool | str | Sequence[str] = False,
    timing_runs: int = 20,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Evaluation:
    """Score registration methods on pairs of different subjects of one split.

    For the embedded set the subjects are pseudo-subjects of two brains, so a pair is same-brain
    or cross-brain (``.groups``).

    Args:
        models: a model, a path to a ``.keras`` file, or a dict ``name -> model | path | callable``
            (a callable maps ``(moving [H, W], fixed [H, W])`` to a field ``[H, W, 2]``).
        data: ``"default"``, a folder, or a loaded set.
        split: the split whose pairs are scored (``"test"``).
        n_pairs: how many seeded pairs (None: every ordered pair of different subjects; more than
            the split has: every pair once, with a warning, rather than pairs scored twice).
        seed: chooses the pairs.
        classical: SyN (DIPY) rows, each about a second per pair: True adds SyN with local
            cross-correlation (``"SyN (DIPY)"``); a metric or a sequence of them, from ``"cc"`` and
            ``"ssd"``, adds those (``("cc", "ssd")`` adds ``"SyN SSD (DIPY)"`` as well).
        timing_runs: calls timed per method (median reported).
        out: folder for ``pairs.csv``, ``summary.json`` and ``table.md``; None writes nothing.
        progress: show a progress bar.

    Returns:
        An :class:`Evaluation`; ``.table()`` is the markdown table. On a set whose images name
        their brain, ``.groups`` holds the same-brain and cross-brain summaries apart.
    """
    dataset = data if isinstance(data, RegistrationSet) else load_dataset(data)
    if not isinstance(models, Mapping):
        name = Path(models).parent.name if isinstance(models, (str, os.PathLike)) else getattr(models, "name", "model")
        models = {name: models}
    methods = [Method("identity", "identity", _identity)]
    for name, model in models.items():
        if isinstance(model, (str, os.PathLike)):
            model = load_weights(model)
        if isinstance(model, keras.Model):
            expected = tuple(model.inputs[0].shape[1:3])
            if expected != tuple(dataset.images.shape[1:3]):
                raise ValueError(
                    f"model {name!r} takes {expected[0]} x {expected[1]} images but the data are "
                    f"{dataset.images.shape[1]} x {dataset.images.shape[2]}: evaluate on data of the size it was "
                    "trained on."
                )
            model = model_registrar(model)
        methods.append(Method(name, "network", model))
    for metric in _classical_metrics(classical):
        methods.append(Method(CLASSICAL_NAMES[metric], "classical", classical_registrar(metric)))
    if len({m.name for m in methods}) != len(methods):
        raise ValueError(f"method names repeat: {[m.name for m in methods]}; give each model its own name.")

    if n_pairs is not None:
        distinct = len(pair_indices(dataset, split, None))
        if int(n_pairs) > distinct:
            warnings.warn(f"n_pairs={n_pairs} asks for more than the {distinct} distinct pairs of split {split!r}; "
                          "scoring each once", stacklevel=2)
            n_pairs = None
    pairs = pair_indices(dataset, split, n_pairs, seed)
    images = [(dataset.images[m], dataset.images[f]) for m, f in pairs]
    kinds = [pair_group(dataset, m, f) for m, f in pairs]
    rows: list[dict] = []
    summary: dict[str, dict[str, float]] = {}
    groups: dict[str, dict[str, dict[str, float]]] = {g: {} for g in GROUPS if g in kinds}
    from tqdm import tqdm

    for method in methods:
        runs = min(timing_runs, 3) if method.kind == "classical" else timing_runs  # SyN takes seconds a call
        seconds = _time_per_pair(method.register, images, max(1, runs))
        method_rows = []
        for (m, f), (moving, fixed), group in tqdm(list(zip(pairs, images, kinds)), desc=f"evaluate {method.name}",
                                                   disable=not progress, leave=False):
            flow = np.asarray(method.register(moving, fixed), "float32")
            method_rows.append({"method": method.name, "moving": m, "fixed": f, "group": group or "",
                                **score_pair(dataset, m, f, flow)})
        rows.extend(method_rows)
        summary[method.name] = _summarise(method_rows)
        for group in groups:
            groups[group][method.name] = _summarise([r for r, k in zip(method_rows, kinds) if k == group])
        # time: the median of the timed calls, with their spread
        summary[method.name].update(seconds_median=float(np.median(seconds)), seconds_std=float(np.std(seconds)),
                                    timing_runs=int(seconds.size))
    evaluation = Evaluation(rows, summary, list(dataset.label_names), device_name(), pairs, groups)
    if out is not None:
        write_evaluation(evaluation, out)
    return evaluation


def _summarise(rows: list[dict]) -> dict[str, float]:
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in ("method", "moving", "fixed", "group")]
    summary = {}
    for key in keys:
        values = np.asarray([r.get(key, float("nan")) for r in rows], dtype="float64")
        values = values[np.isfinite(values)]
        summary[f"{key}_mean"] = float(values.mean()) if values.size else float("nan")
        summary[f"{key}_std"] = float(values.std()) if values.size else float("nan")
    summary["pairs"] = len(rows)
    return summary


def _cell(summary: dict, key: str, digits: int) -> str:
    centre = "median" if key == "seconds" else "mean"
    mean, std = summary.get(f"{key}_{centre}", float("nan")), summary.get(f"{key}_std", float("nan"))
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ({std:.{digits}f})"


def markdown_table(summary: Mapping[str, Mapping[str, float]], device: str = "cpu",
                   groups: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> str:
    """Table 1 layout: one row per method, mean (std) over the test pairs; time is median (std).

    With ``groups`` (:attr:`Evaluation.groups`), each method's row is followed by one row per
    group, named ``"<method> [<group>]"``, over that group's pairs only; their time is n/a (timing
    is per method).
    """
    digits = {"mse": 5, "mae": 4, "dice": 4, "hd95": 2, "folding": 3, "sdlogj": 3, "epe": 2, "seconds": 4}
    header = ["Approach"] + [HEADINGS[k] if k != "seconds" else f"Time per pair (s, {device})" for k in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, stats in summary.items():
        lines.append("| " + " | ".join([name] + [_cell(stats, k, digits[k]) for k in METRICS]) + " |")
        for group, by_method in (groups or {}).items():
            if name in by_method:
                cells = [_cell(by_method[name], k, digits[k]) for k in METRICS]
                lines.append("| " + " | ".join([f"{name} [{group}]"] + cells) + " |")
    return "\n".join(lines)


def write_evaluation(evaluation: Evaluation, out: str | os.PathLike) -> Path:
    """Write ``pairs.csv``, ``summary.json`` and ``table.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for row in evaluation.rows for k in row))
    with open(out / "pairs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(evaluation.rows)
    (out / "summary.json").write_text(json.dumps(
        {"device": evaluation.device, "pairs": evaluation.pairs, "summary": evaluation.summary,
         "groups": evaluation.groups}, indent=2))
    (out / "table.md").write_text(evaluation.table() + "\n")
    return out
