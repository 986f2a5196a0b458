"""Scoring registrations on the test pairs of a split, in the layout of the paper's Table 1.

For every pair and every method (``identity`` first, then the models, optionally SyN) it records
MSE and MAE of intensities, Dice of the labels warped by nearest neighbour (mean over the
foreground labels of the fixed image, and per label), the fraction of pixels where the map folds
(Jacobian determinant <= 0), SDlogJ, the error against the true displacement where the data knows
it, and the time per pair (median of repeated batch-1 calls after warm-up).
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
from typing import Callable, Mapping

import keras
import numpy as np

from lstmcor.data import RegistrationSet, load_dataset, pair_indices
from lstmcor.data.resources import shipped_weights, weights_dir
from lstmcor.metrics import dice, endpoint_error, folding_fraction, mean_dice, sdlogj
from lstmcor.runtime import device_name
from lstmcor.saving import load_model
from lstmcor.transform import warp

__all__ = ["Evaluation", "Method", "evaluate", "load_weights", "markdown_table", "score_pair", "shipped_weights",
           "weights_dir", "write_evaluation"]

METRICS = ("mse", "mae", "dice", "folding", "sdlogj", "epe", "seconds")
HEADINGS = {
    "mse": "MSE", "mae": "MAE", "dice": "Dice", "folding": "Folding (%)", "sdlogj": "SDlogJ",
    "epe": "Field error (px)", "seconds": "Time per pair (s)",
}
Registrar = Callable[[np.ndarray, np.ndarray], np.ndarray]
CLASSICAL_NAME = "SyN (DIPY)"


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

    def table(self) -> str:
        """A markdown table in the layout of the paper's Table 1 (mean (std) per method)."""
        return markdown_table(self.summary, self.device)


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
    """SyN from DIPY as a registrar (seconds per pair on a CPU)."""
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


def score_pair(dataset: RegistrationSet, moving: int, fixed: int, flow: np.ndarray) -> dict:
    """Every metric of one registered pair except time."""
    moved = warp(dataset.images[moving], flow)
    target = dataset.images[fixed]
    row = {
        "mse": float(np.mean((moved - target) ** 2)),
        "mae": float(np.mean(np.abs(moved - target))),
        "folding": 100.0 * folding_fraction(flow),
        "sdlogj": sdlogj(flow),
        "dice": float("nan"),
        "epe": float("nan"),
    }
    if dataset.labels is not None:
        moved_labels = warp(dataset.labels[moving], flow, "nearest")
        row["dice"] = mean_dice(dataset.labels[fixed], moved_labels)
        for label, value in zip(range(1, len(dataset.label_names)), dice(dataset.labels[fixed], moved_labels,
                                                                          range(1, len(dataset.label_names)))):
            row[f"dice_{dataset.label_names[label]}"] = float(value)
    truth = dataset.true_displacement(moving, fixed)
    if truth is not None:
        mask = dataset.labels[fixed] > 0 if dataset.labels is not None else None
        row["epe"] = endpoint_error(flow, truth, mask)
    return row


def evaluate(
    models: Mapping[str, keras.Model | str | os.PathLike | Registrar] | keras.Model | str | os.PathLike,
    data: str | os.PathLike | RegistrationSet = "default",
    split: str = "test",
    n_pairs: int | None = 32,
    seed: int = 0,
    classical: bool = False,
    timing_runs: int = 20,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Evaluation:
    """Score registration methods on inter-subject pairs of one split.

    Args:
        models: a model, a path to a ``.keras`` file, or a dict ``name -> model | path | callable``
            (a callable maps ``(moving [H, W], fixed [H, W])`` to a field ``[H, W, 2]``).
        data: ``"default"``, a folder, or a loaded set.
        split: the split whose pairs are scored (``"test"``).
        n_pairs: how many seeded pairs (None: every ordered pair of different subjects; more than
            the split has: every pair once, with a warning, rather than pairs scored twice).
        seed: chooses the pairs.
        classical: add SyN (DIPY) as a row; it takes about a second per pair.
        timing_runs: calls timed per method (median reported).
        out: folder for ``pairs.csv``, ``summary.json`` and ``table.md``; None writes nothing.
        progress: show a progress bar.

    Returns:
        An :class:`Evaluation`; ``.table()`` is the markdown table.
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
    if classical:
        methods.append(Method(CLASSICAL_NAME, "classical", classical_registrar()))
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
    rows: list[dict] = []
    summary: dict[str, dict[str, float]] = {}
    from tqdm import tqdm

    for method in methods:
        runs = min(timing_runs, 3) if method.kind == "classical" else timing_runs  # SyN takes seconds a call
        seconds = _time_per_pair(method.register, images, max(1, runs))
        method_rows = []
        for (m, f), (moving, fixed) in tqdm(list(zip(pairs, images)), desc=f"evaluate {method.name}",
                                            disable=not progress, leave=False):
            flow = np.asarray(method.register(moving, fixed), "float32")
            method_rows.append({"method": method.name, "moving": m, "fixed": f, **score_pair(dataset, m, f, flow)})
        rows.extend(method_rows)
        summary[method.name] = _summarise(method_rows)
        # time: the median of the timed calls, with their spread
        summary[method.name].update(seconds_median=float(np.median(seconds)), seconds_std=float(np.std(seconds)),
                                    timing_runs=int(seconds.size))
    evaluation = Evaluation(rows, summary, list(dataset.label_names), device_name(), pairs)
    if out is not None:
        write_evaluation(evaluation, out)
    return evaluation


def _summarise(rows: list[dict]) -> dict[str, float]:
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in ("method", "moving", "fixed")]
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


def markdown_table(summary: Mapping[str, Mapping[str, float]], device: str = "cpu") -> str:
    """Table 1 layout: one row per method, mean (std) over the test pairs; time is median (std)."""
    digits = {"mse": 5, "mae": 4, "dice": 4, "folding": 3, "sdlogj": 3, "epe": 2, "seconds": 4}
    header = ["Approach"] + [HEADINGS[k] if k != "seconds" else f"Time per pair (s, {device})" for k in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, stats in summary.items():
        lines.append("| " + " | ".join([name] + [_cell(stats, k, digits[k]) for k in METRICS]) + " |")
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
        {"device": evaluation.device, "pairs": evaluation.pairs, "summary": evaluation.summary}, indent=2))
    (out / "table.md").write_text(evaluation.table() + "\n")
    return out
