"""Training (paper 2.6 and 3): Adam at 1e-3, batch 8, loss MSE + lambda * Grad with lambda = 0.01.

One code path serves Python (:func:`train`) and the command line (``lstmcor train``). A run
writes into a run folder (``checkpoint.keras``, ``state.json``, ``log.csv``, ``model.keras``),
which is never overwritten by mistake and survives a crash at any point: its files and the
two-phase commit of checkpoint and state are described in :mod:`lstmcor.runs`.

Resuming is exact. Each batch is drawn from ``(seed, epoch, batch index)`` alone: the epoch of
the training and the validation pairs is set from ``fit``'s epoch number at the start of every
epoch (:class:`FitEpochs`), and ``fit`` does not shuffle the batches. A run stopped after k epochs
and resumed to n therefore ends with the very weights (bit for bit on the TensorFlow CPU backend,
where we tested it) and the very ``log.csv`` of a run of n epochs in one go.
"""
from __future__ import annotations

import contextlib
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
from lstmcor.distribute import is_chief, process_share
from lstmcor.distribute import setup as setup_devices
from lstmcor.runs import (  # noqa: F401  (commit_checkpoint: still importable from here)
    _TEMP_FILES, RUN_FILES, EpochCheckpoint, _changes, _held_files, _load_checkpoint, _read_state, _trim_log,
    commit_checkpoint, default_run_folder,
)
from lstmcor.runtime import device_name, jit_setting
from lstmcor.settings import LAMBDA, LAMBDAS, LEARNING_RATE, LOSSES, PRESETS

__all__ = ["LAMBDA", "LEARNING_RATE", "PRESETS", "RUN_FILES", "EpochCheckpoint", "FitEpochs", "NaNStop",
           "TrainResult", "compile_model", "default_lambda", "default_run_folder", "device_name", "read_log",
           "resolve_settings", "similarity_loss", "train"]


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


class FitEpochs(keras.callbacks.Callback):
    """Sets the epoch of :class:`PairDataset` s from ``fit``'s epoch number at the start of each epoch.

    So the pairs of an epoch, training and validation, depend on the epoch number alone, however
    many times Keras calls the datasets' ``on_epoch_end`` (evaluation calls it twice per epoch)
    and wherever a resumed run starts.
    """

    def __init__(self, *datasets: PairDataset):
        super().__init__()
        self.datasets = datasets

    def on_epoch_begin(self, epoch, logs=None):
        for dataset in self.datasets:
            dataset.set_epoch(epoch)


def _check_loss(name: str) -> None:
    """Refuse a loss that is not one of :data:`lstmcor.settings.LOSSES`, naming it."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}.")


def similarity_loss(name: str = "mse") -> keras.losses.Loss:
    """The image term of the loss: ``"mse"`` (Eq. 21, the paper's) or ``"ncc"`` (local NCC, window 9)."""
    _check_loss(name)
    return MSE() if name == "mse" else NCC()


def default_lambda(loss: str, lam: float | None = None) -> float:
    """``lam`` if given, else the smoothness weight of ``loss`` (:data:`lstmcor.settings.LAMBDAS`).

        >>> default_lambda("mse"), default_lambda("ncc"), default_lambda("ncc", 1)
        (0.003, 0.3, 1.0)
    """
    _check_loss(loss)
    return LAMBDAS[loss] if lam is None else float(lam)


def compile_model(model: keras.Model, learning_rate: float = LEARNING_RATE, lam: float | None = None,
                  jit_compile="auto", loss: str = "mse") -> keras.Model:
    """Compile with Adam and the loss of Eq. 23: ``MSE(fixed, moved) + lam * Grad(flow)``.

    ``loss="ncc"`` puts local normalised cross-correlation (:class:`lstmcor.losses.NCC`) in
    place of MSE; its scale differs (it lies in [-1, 0]), so it wants its own ``lam``: by default
    each loss gets its own (:func:`default_lambda`).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=[similarity_loss(loss), Grad()],
        loss_weights=[1.0, default_lambda(loss, lam)],
        jit_compile=jit_setting(jit_compile),
    )
    _build_training_state(model)
    return model


def _build_training_state(model: keras.Model) -> None:
    """Create Adam's moments and the loss trackers now rather than inside the first training step.

    Keras's TensorFlow trainer creates them while tracing that step, and TensorFlow traces a graph
    function that creates variables a second time: several seconds for LSTM-COR. Keras builds this state
    itself on JAX, and with a distribution strategy on TensorFlow; ``_symbolic_build`` is that same
    path (no data, symbolic shapes only). Where a Keras version lacks it, nothing changes but the time.
    """
    build = getattr(model, "_symbolic_build", None)
    if keras.backend.backend() != "tensorflow" or build is None:
        return
    symbolic = [[keras.KerasTensor(t.shape, t.dtype) for t in tensors] for tensors in (model.inputs, model.outputs)]
    build(data_batch=tuple(symbolic))


def resolve_settings(preset: str, **overrides) -> dict:
    """The preset's settings with any non-None override applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}.")
    return _apply_overrides(dict(PRESETS[preset]), overrides)


def _apply_overrides(settings: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if value is not None:
            if key in ("epochs", "steps_per_epoch", "batch_size", "validation_steps") and int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value}.")
            settings[key] = int(value) if key in ("epochs", "steps_per_epoch", "batch_size",
                                                  "validation_steps") else value
    return settings


def train(
    model: str | None = None,
    preset: str | None = None,
    data: str | os.PathLike | RegistrationSet | None = None,
    out: str | os.PathLike | None = None,
    *,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    batch_size: int | None = None,
    validation_steps: int | None = None,
    learning_rate: float | None = None,
    lam: float | None = None,
    loss: str | None = None,
    seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    augment: bool | None = None,
    model_options: dict | None = None,
    jit_compile="auto",
    verbose: int | str = "auto",
    devices: int | str = 1,
) -> TrainResult:
    """Train a registration model unsupervised on pairs of different subjects (pseudo-subjects for the embedded set).

    A setting left at ``None`` takes its default on a new run, and the run's value (from
    ``state.json``) on a resumed one; a given setting that differs from the run's is refused.

    Args:
        model: ``"lstmcor"`` (default) or ``"voxelmorph"``.
        preset: ``"ci"``, ``"quick"`` (default) or ``"paper"``; the keyword arguments below override it.
        data: ``"default"`` (the embedded set, default), a folder, or a loaded :class:`RegistrationSet`.
        out: run folder (created); holds the checkpoint, log and final model. Default: a new
            :func:`default_run_folder`. A folder that holds a run is refused unless ``resume`` or
            ``overwrite``.
        epochs: total epochs of the run (a resumed run continues up to this number).
        steps_per_epoch, batch_size, validation_steps: batches per epoch, pairs per batch,
            validation batches per epoch.
        learning_rate: Adam's step size (default 1e-3, the paper's "10e-4" read literally).
        lam: weight of the smoothness term (Eq. 23; default :func:`default_lambda` of ``loss``).
        loss: the image term, ``"mse"`` (Eq. 21; default) or ``"ncc"`` (local NCC, window 9).
        seed: seeds the weights and the pairs drawn (default 0); the same seed repeats a run.
        resume: continue the run in ``out`` from its last checkpoint, exactly as if never stopped.
        overwrite: delete the run in ``out`` (its checkpoint, state, log and model) and start anew.
        augment: random flips and gamma on the training pairs (default False).
        model_options: arguments of the model builder that differ from the paper's model (ablation
            switches); on resume, applied over the run's.
        jit_compile: ``"auto"``, True or False.
        verbose: Keras's progress bar setting.
        devices: train data-parallel on this many local devices, or ``"all"`` (JAX only; the
            batch must divide evenly; see :mod:`lstmcor.distribute`). Not a setting of the run:
            a run may be resumed on another number of devices.

    Returns:
        A :class:`TrainResult` with the trained model and the loss history.

    Raises:
        FileExistsError: ``out`` holds a run and neither ``resume`` nor ``overwrite`` was given.
        FileNotFoundError: ``resume`` without a checkpoint in ``out``.
        ValueError: bad settings, settings that differ from the resumed run's, or a damaged run
            state (the message names the file).
        FloatingPointError: the loss became NaN or infinite.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: --resume continues the run, --overwrite "
                         "deletes it.")
    if resume and out is None:
        raise ValueError("resume needs the run folder: give --out (out=...).")
    given = {"model": model, "preset": preset, "seed": seed, "learning_rate": learning_rate, "lambda": lam,
             "loss": loss,
             "augment": augment, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size,
             "validation_steps": validation_steps}
    out = Path(out) if out is not None else default_run_folder(model or "lstmcor", preset or "quick")
    checkpoint = out / "checkpoint.keras"
    held = [] if resume else _held_files(out)
    if held and not overwrite:
        raise FileExistsError(f"'{out}' holds a run ({', '.join(held)}): continue it with --resume "
                              "(resume=True), replace it with --overwrite (overwrite=True), or give another --out.")
    state = None
    if resume:
        state = _read_state(out)
        data_name = None if data is None else str(data.name) if isinstance(data, RegistrationSet) else str(data)
        changed, old_options = _changes(state, given, data_name, model_options)
        if changed:
            raise ValueError(f"cannot resume '{out}' with settings that differ from the run's: {'; '.join(changed)}. "
                             "Leave them out to keep the run's (state.json), or start a new run in another --out.")
        if epochs is not None and int(epochs) < int(state["epochs_done"]):
            raise ValueError(f"cannot resume '{out}' to {epochs} epochs: the run has done {state['epochs_done']}. "
                             "Give a larger --epochs, or leave it out.")
        model, preset, seed = state["model"], state["preset"], int(state["seed"])
        learning_rate, lam, augment = float(state["learning_rate"]), float(state["lambda"]), bool(state["augment"])
        loss = str(state["loss"])
        model_options = old_options
        settings = _apply_overrides({k: int(state[k]) for k in ("epochs", "steps_per_epoch", "batch_size",
                                                                "validation_steps")}, {"epochs": epochs})
        if data is None:
            data = state["data"]
            if data != "default" and not Path(data).exists():
                raise FileNotFoundError(f"cannot resume '{out}': the run's data '{data}' is not found from here; "
                                        "give it with --data (data=...).")
        distribution = setup_devices(devices, settings["batch_size"])
        with _scope(distribution):
            net = _load_checkpoint(checkpoint)  # a damaged checkpoint is named before the data is read
            _build_training_state(net)
    else:
        model, preset, data = model or "lstmcor", preset or "quick", "default" if data is None else data
        learning_rate = LEARNING_RATE if learning_rate is None else float(learning_rate)
        loss = loss or "mse"
        lam = default_lambda(loss, lam)  # an unknown loss is refused before anything is read or deleted
        seed, augment, model_options = int(seed or 0), bool(augment), dict(model_options or {})
        settings = resolve_settings(preset, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
                                    validation_steps=validation_steps)
        distribution = setup_devices(devices, settings["batch_size"])
    dataset = data if isinstance(data, RegistrationSet) else load_dataset(data)
    shape = tuple(int(s) for s in dataset.images.shape[1:3])
    if state is not None and list(shape) != list(state["input_shape"]):
        raise ValueError(f"cannot resume '{out}': its data has images of {list(shape)} pixels, the run's had "
                         f"{state['input_shape']}.")
    record = {
        "model": model, "preset": preset, "data": str(dataset.name), "seed": seed,
        "learning_rate": learning_rate, "lambda": lam, "loss": loss, "augment": augment,
        "model_options": model_options, "input_shape": list(shape), **settings,
    }

    keras.utils.set_random_seed(seed)
    initial_epoch = 0
    if resume:
        initial_epoch = int(state["epochs_done"])
        _trim_log(out / "log.csv", initial_epoch)
    else:
        for name in held + list(_TEMP_FILES):  # overwrite, once the settings and the data are known good
            (out / name).unlink(missing_ok=True)
        with _scope(distribution):
            net = build_model(model, input_shape=shape, **model_options)
            compile_model(net, learning_rate, lam, jit_compile, loss=loss)
        out.mkdir(parents=True, exist_ok=True)

    with _scope(distribution):
        share = process_share(settings["batch_size"])  # the whole batch on one host
    train_pairs = PairDataset(dataset, "train", settings["batch_size"], settings["steps_per_epoch"],
                              seed=seed, augment=augment, share=share)
    val_pairs = PairDataset(dataset, "val", settings["batch_size"], settings["validation_steps"], seed=seed + 1,
                            share=share)
    train_pairs.set_epoch(initial_epoch)
    val_pairs.set_epoch(initial_epoch)

    nan_stop = NaNStop()
    with _scope(distribution):
        chief = is_chief()  # with several hosts, only process 0 writes the log and the checkpoints
    callbacks = [FitEpochs(train_pairs, val_pairs), nan_stop]
    if chief:
        callbacks += [
            keras.callbacks.CSVLogger(str(out / "log.csv"), append=resume),  # the row first, then the commit
            EpochCheckpoint(out, record, nan_stop),
        ]
    if verbose:
        where = device_name() if distribution is None else f"{distribution.num_model_replicas} devices"
        print(f"Training {model} ({net.count_params():,} weights) on {where} with the "
              f"{keras.backend.backend()} backend: epochs {initial_epoch + 1}-{settings['epochs']}, "
              f"{settings['steps_per_epoch']} batches of {settings['batch_size']} pairs each; run folder {out}")
    start = time.perf_counter()
    history = {}
    if initial_epoch < settings["epochs"]:
        # shuffle=False: the batches' order is fixed; their pairs already differ per epoch (FitEpochs)
        with _scope(distribution):
            fit = net.fit(train_pairs, validation_data=val_pairs, epochs=settings["epochs"], shuffle=False,
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
    if chief:
        net.save(out / "model.tmp.keras")
        os.replace(out / "model.tmp.keras", out / "model.keras")
    state_path = out / "state.json"
    done = json.loads(state_path.read_text())["epochs_done"] if state_path.exists() else initial_epoch
    return TrainResult(net, history, out, int(done), seconds)


def _scope(distribution):
    """The distribution's scope (data-parallel training), or nothing on one device."""
    return distribution.scope() if distribution is not None else contextlib.nullcontext()


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
