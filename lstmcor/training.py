"""Training (paper 2.6 and 3): Adam at 1e-4, batch 8, loss MSE + lambda * Grad with lambda = 0.01.

One code path serves Python (:func:`train`) and the command line (``lstmcor train``). A run
folder holds everything needed to go on after an interruption:

- ``checkpoint.keras``: the model with its optimizer state, written after every epoch;
- ``state.json``: the epochs done and the settings of the run;
- ``log.csv``: the loss per epoch (Keras's ``CSVLogger``);
- ``model.keras``: the final model.

``resume=True`` reloads the checkpoint and continues from the next epoch; because each batch is
drawn from ``(seed, epoch, batch index)`` alone, the resumed run ends with the same weights as a
run that was never interrupted.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from lstmcor.data import RegistrationSet, load_dataset
from lstmcor.data.batches import PairDataset
from lstmcor.losses import MSE, NCC, Grad
from lstmcor.models import build_model
from lstmcor.runtime import device_name, jit_setting
from lstmcor.settings import LAMBDA, LEARNING_RATE, LOSSES, PRESETS

__all__ = ["LAMBDA", "LEARNING_RATE", "PRESETS", "EpochCheckpoint", "NaNStop", "TrainResult", "compile_model",
           "device_name", "read_log", "resolve_settings", "similarity_loss", "train"]



@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: keras.Model
    history: dict[str, list[float]]
    out: Path
    epochs_done: int
    seconds: float


class NaNStop(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers where."""

    def __init__(self):
        super().__init__()
        self.where: tuple[int, int] | None = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self.epoch + 1, batch + 1)
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model, optimizer included, and ``state.json`` after every finished epoch."""

    def __init__(self, out: Path, settings: dict, nan_stop: NaNStop):
        super().__init__()
        self.out, self.settings, self.nan_stop = out, settings, nan_stop

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_stop.where is not None:
            return  # never overwrite the last good checkpoint with NaN weights
        path = self.out / "checkpoint.keras"
        tmp = self.out / "checkpoint.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, path)  # an interruption mid-save leaves the previous checkpoint intact
        state = {"epochs_done": epoch + 1, **self.settings}
        (self.out / "state.json").write_text(json.dumps(state, indent=2))


def similarity_loss(name: str = "mse") -> keras.losses.Loss:
    """The image term of the loss: ``"mse"`` (Eq. 21, the paper's) or ``"ncc"`` (local NCC, window 9)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}.")
    return MSE() if name == "mse" else NCC()


def compile_model(model: keras.Model, learning_rate: float = LEARNING_RATE, lam: float = LAMBDA,
                  jit_compile="auto", loss: str = "mse") -> keras.Model:
    """Compile with Adam and the loss of Eq. 23: ``MSE(fixed, moved) + lam * Grad(flow)``.

    ``loss="ncc"`` puts local normalised cross-correlation (:class:`lstmcor.losses.NCC`) in
    place of MSE; its scale differs (it lies in [-1, 0]), so it wants its own ``lam``.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=[similarity_loss(loss), Grad()],
        loss_weights=[1.0, float(lam)],
        jit_compile=jit_setting(jit_compile),
    )
    return model


def resolve_settings(preset: str, **overrides) -> dict:
    """The preset's settings with any non-None override applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}.")
    settings = dict(PRESETS[preset])
    for key, value in overrides.items():
        if value is not None:
            if key in ("epochs", "steps_per_epoch", "batch_size", "validation_steps") and int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value}.")
            settings[key] = value
    return settings


def train(
    model: str = "lstmcor",
    preset: str = "quick",
    data: str | os.PathLike | RegistrationSet = "default",
    out: str | os.PathLike = "runs/lstmcor",
    *,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    batch_size: int | None = None,
    validation_steps: int | None = None,
    learning_rate: float = LEARNING_RATE,
    lam: float = LAMBDA,
    seed: int = 0,
    resume: bool = False,
    augment: bool = False,
    model_options: dict | None = None,
    jit_compile="auto",
    verbose: int | str = "auto",
) -> TrainResult:
    """Train a registration model unsupervised on inter-subject pairs.

    Args:
        model: ``"lstmcor"`` or ``"voxelmorph"``.
        preset: ``"ci"``, ``"quick"`` or ``"paper"``; the keyword arguments below override it.
        data: ``"default"`` (the embedded set), a folder, or a loaded :class:`RegistrationSet`.
        out: run folder (created); holds the checkpoint, log and final model.
        epochs: total epochs of the run (a resumed run continues up to this number).
        steps_per_epoch, batch_size, validation_steps: batches per epoch, pairs per batch,
            validation batches per epoch.
        learning_rate: Adam's step size (1e-4, as VoxelMorph).
        lam: weight of the smoothness term (Eq. 23).
        seed: seeds the weights and the pairs drawn; the same seed repeats a run.
        resume: continue from ``out/checkpoint.keras``.
        augment: random flips and gamma on the training pairs.
        model_options: extra arguments of the model builder (ablation switches).
        jit_compile: ``"auto"``, True or False.
        verbose: Keras's progress bar setting.

    Returns:
        A :class:`TrainResult` with the trained model and the loss history.
    """
    settings = resolve_settings(preset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                batch_size=batch_size, validation_steps=validation_steps)
    out = Path(out)
    dataset = data if isinstance(data, RegistrationSet) else load_dataset(data)
    shape = tuple(int(s) for s in dataset.images.shape[1:3])
    checkpoint = out / "checkpoint.keras"
    state_path = out / "state.json"
    record = {
        "model": model, "preset": preset, "data": str(dataset.name), "seed": int(seed),
        "learning_rate": float(learning_rate), "lambda": float(lam), "augment": bool(augment),
        "model_options": model_options or {}, "input_shape": list(shape), **settings,
    }

    keras.utils.set_random_seed(int(seed))
    initial_epoch = 0
    if resume:
        if not checkpoint.exists() or not state_path.exists():
            raise FileNotFoundError(
                f"cannot resume: no checkpoint in '{out}'. Start without --resume, or point --out at the run folder."
            )
        state = json.loads(state_path.read_text())
        if state.get("model") != model:
            raise ValueError(f"cannot resume: '{out}' holds a {state.get('model')} run, not {model}.")
        initial_epoch = int(state["epochs_done"])
        net = keras.saving.load_model(checkpoint, safe_mode=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        net = build_model(model, input_shape=shape, **(model_options or {}))
        compile_model(net, learning_rate, lam, jit_compile)

    train_pairs = PairDataset(dataset, "train", settings["batch_size"], settings["steps_per_epoch"],
                              seed=seed, augment=augment)
    val_pairs = PairDataset(dataset, "val", settings["batch_size"], settings["validation_steps"], seed=seed + 1)
    train_pairs.epoch = val_pairs.epoch = initial_epoch

    nan_stop = NaNStop()
    callbacks = [
        nan_stop,
        EpochCheckpoint(out, record, nan_stop),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=resume),
    ]
    if verbose:
        print(f"Training {model} ({net.count_params():,} weights) on {device_name()} with the "
              f"{keras.backend.backend()} backend: epochs {initial_epoch + 1}-{settings['epochs']}, "
              f"{settings['steps_per_epoch']} batches of {settings['batch_size']} pairs each; run folder {out}")
    start = time.perf_counter()
    history = {}
    if initial_epoch < settings["epochs"]:
        fit = net.fit(train_pairs, validation_data=val_pairs, epochs=settings["epochs"],
                      initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose)
        history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    seconds = time.perf_counter() - start
    if nan_stop.where is not None:
        epoch, batch = nan_stop.where
        raise FloatingPointError(
            f"training stopped: the loss became NaN or infinite at epoch {epoch}, batch {batch}. "
            f"Lower the learning rate or check the data for bad images; the last good checkpoint is "
            f"{checkpoint if checkpoint.exists() else 'not written yet'}."
        )
    net.save(out / "model.keras")
    done = json.loads(state_path.read_text())["epochs_done"] if state_path.exists() else initial_epoch
    return TrainResult(net, history, out, int(done), seconds)


def read_log(run: str | os.PathLike) -> dict[str, np.ndarray]:
    """The per-epoch losses of a run folder's ``log.csv`` as arrays, keyed by column."""
    path = Path(run) / "log.csv" if Path(run).is_dir() else Path(run)
    if not path.exists():
        raise FileNotFoundError(f"no training log at '{path}': train a model first (lstmcor train ...).")
    lines = path.read_text().strip().splitlines()
    header = lines[0].split(",")
    rows = [[float(v) for v in line.split(",")] for line in lines[1:]]
    table = np.asarray(rows, dtype="float64").reshape(len(rows), len(header))
    return {name: table[:, k] for k, name in enumerate(header)}
