"""The run folder: what :func:`lstmcor.training.train` keeps on disk, and how it never loses a run.

A run folder holds everything needed to go on after an interruption:

- ``checkpoint.keras``: the model with its optimizer state, written after every epoch;
- ``state.json``: the epochs done, the settings of the run, and the size and SHA-256 of the
  checkpoint it belongs to;
- ``log.csv``: the loss per epoch (Keras's ``CSVLogger``);
- ``model.keras``: the final model.

Nothing is lost by mistake. :func:`lstmcor.training.train` refuses a folder that already holds a
run (any of the four files, :data:`RUN_FILES`) unless ``resume=True`` continues it or
``overwrite=True`` replaces it; the command line's default run folder is new for every run
(:func:`default_run_folder`). A resumed run must use the run's settings: those left out
(``None``) are taken from ``state.json``, and any given that differ from it are refused, naming
each; a larger ``epochs`` is not a change, it trains further.

Checkpoint and state are committed together, as a two-phase commit on two files
(:func:`commit_checkpoint`, after every epoch by :class:`EpochCheckpoint`):

1. the model is saved to ``checkpoint.tmp.keras`` and flushed to disk;
2. the new state, which records the size and SHA-256 of that file, to ``state.tmp.json``;
3. ``checkpoint.tmp.keras`` replaces ``checkpoint.keras`` (``os.replace``, atomic): the commit point;
4. ``state.tmp.json`` replaces ``state.json``.

A crash before step 3 leaves the previous checkpoint and state untouched (the temporary files
are discarded on resume). A crash between steps 3 and 4 leaves a ``state.json`` that names
another checkpoint; resuming sees that ``state.tmp.json`` names the checkpoint now in place and
finishes the commit (step 4). A ``checkpoint.keras`` that matches neither, because it was damaged
or truncated, is refused with one line that names it, before Keras reads it (:func:`_read_state`,
:func:`_load_checkpoint`). The log row of an epoch is written before its commit; resuming drops
any row after the last committed epoch (:func:`_trim_log`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import keras

from lstmcor.settings import ABLATIONS

__all__ = ["RUN_FILES", "EpochCheckpoint", "commit_checkpoint", "default_run_folder"]

#: The files of a run folder; any of them present means the folder holds a run.
RUN_FILES: tuple[str, ...] = ("checkpoint.keras", "state.json", "log.csv", "model.keras")
_TEMP_FILES = ("checkpoint.tmp.keras", "state.tmp.json", "model.tmp.keras")
#: The settings a resumed run must share with the run (``epochs`` may grow).
_SETTINGS = ("model", "preset", "data", "seed", "learning_rate", "lambda", "loss", "augment", "model_options",
             "steps_per_epoch", "batch_size", "validation_steps")
#: Settings added after runs were first written, with the value those runs had.
_LATER_SETTINGS = {"loss": "mse"}
_STATE_KEYS = ("epochs_done", "epochs", "input_shape", *_SETTINGS)
#: How a setting of state.json is called in train()'s arguments (and, mostly, on the command line).
_ARGUMENT = {"learning_rate": "learning_rate (--lr)", "lambda": "lam (--lam)"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flush_to_disk(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        f.write(json.dumps(data, indent=2))
        f.flush()
        os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are durable enough here
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class EpochCheckpoint(keras.callbacks.Callback):
    """Commits the model, optimizer included, and ``state.json`` after every finished epoch.

    The two-phase commit of the module docstring: temporary files first, then two ``os.replace``,
    the state recording the size and SHA-256 of the checkpoint it belongs to. ``nan_stop`` is the
    run's :class:`lstmcor.training.NaNStop`: an epoch whose loss became NaN is not committed.
    """

    def __init__(self, out: Path, settings: dict, nan_stop):
        super().__init__()
        self.out, self.settings, self.nan_stop = out, settings, nan_stop

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_stop.where is not None:
            return  # never overwrite the last good checkpoint with NaN weights
        commit_checkpoint(self.model, self.out, {"epochs_done": epoch + 1, **self.settings})


def commit_checkpoint(model: keras.Model, out: Path, state: dict) -> None:
    """Write ``checkpoint.keras`` and ``state.json`` of ``out`` as one step (see the module docstring)."""
    tmp_checkpoint, tmp_state = out / "checkpoint.tmp.keras", out / "state.tmp.json"
    model.save(tmp_checkpoint)
    _flush_to_disk(tmp_checkpoint)
    record = {"file": "checkpoint.keras", "bytes": tmp_checkpoint.stat().st_size, "sha256": _sha256(tmp_checkpoint)}
    _write_json(tmp_state, {**state, "checkpoint": record})
    os.replace(tmp_checkpoint, out / "checkpoint.keras")  # the commit point
    os.replace(tmp_state, out / "state.json")
    _sync_folder(out)


def default_run_folder(model: str = "lstmcor", preset: str = "quick", root: str | os.PathLike = "runs") -> Path:
    """A run folder that does not exist yet: ``<root>/<model>-<preset>-<YYYYmmdd-HHMMSS>`` (``-2``... if taken)."""
    base = Path(root) / f"{model}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 2
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def _held_files(out: Path) -> list[str]:
    return [name for name in RUN_FILES if (out / name).exists()]


def _full_options(model: str, options: dict) -> dict:
    """The builder's switches with the paper's values filled in, so {} and the paper's values compare equal."""
    paper = {k: v[0] for k, v in ABLATIONS.items()} if model == "lstmcor" else {}
    return {**paper, "integration_steps": 0, **options}


def _same_data(old: str, new: str) -> bool:
    if old == new:
        return True
    if old == "default" or new == "default":
        return False
    try:
        return Path(old).resolve() == Path(new).resolve()
    except OSError:
        return False


def _damaged(path: Path, what: str) -> ValueError:
    return ValueError(f"cannot resume: '{path}' {what}; restore the file from a copy, or start the run again "
                      "with --overwrite (overwrite=True) or another --out.")


def _read_state(out: Path) -> dict:
    """``state.json`` of a run folder, after finishing a commit that a crash interrupted; checks its keys."""
    checkpoint, state_path, pending = out / "checkpoint.keras", out / "state.json", out / "state.tmp.json"
    if pending.exists():
        try:
            record = json.loads(pending.read_text())["checkpoint"]
            finished = checkpoint.exists() and record["sha256"] == _sha256(checkpoint)
        except (ValueError, KeyError, TypeError):
            finished = False  # written in part: its checkpoint was never put in place
        if finished:
            os.replace(pending, state_path)  # step 4 of the commit, which the crash interrupted
        else:
            pending.unlink()
    (out / "checkpoint.tmp.keras").unlink(missing_ok=True)
    if not checkpoint.exists() or not state_path.exists():
        missing = " and ".join(f.name for f in (checkpoint, state_path) if not f.exists())
        raise FileNotFoundError(
            f"cannot resume: no {missing} in '{out}' (no epoch of a run finished there). Start without --resume "
            "(with --overwrite if the folder holds files of a run), or point --out at the run folder.")
    try:
        state = json.loads(state_path.read_text())
    except UnicodeDecodeError:
        raise _damaged(state_path, "is not text (damaged)") from None
    except json.JSONDecodeError as error:
        raise _damaged(state_path, f"is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(state, dict):
        raise _damaged(state_path, f"holds a JSON {type(state).__name__}, not the run's state")
    for key, value in _LATER_SETTINGS.items():
        state.setdefault(key, value)
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise _damaged(state_path, f"lacks {', '.join(missing)} (edited or damaged)")
    record = state.get("checkpoint")  # absent in runs written before lstmcor recorded it
    if record is not None:
        size = checkpoint.stat().st_size
        if not isinstance(record, dict) or "sha256" not in record:
            raise _damaged(state_path, "has a damaged 'checkpoint' entry")
        if record.get("bytes") not in (None, size):
            raise _damaged(checkpoint, f"is damaged or truncated: it has {size} bytes, but state.json recorded "
                                       f"{record['bytes']} bytes for the checkpoint of epoch {state['epochs_done']}")
        if _sha256(checkpoint) != record["sha256"]:
            raise _damaged(checkpoint, "is damaged: its SHA-256 differs from the one state.json recorded for the "
                                       f"checkpoint of epoch {state['epochs_done']}")
    return state


def _load_checkpoint(path: Path) -> keras.Model:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # zip, HDF5, JSON and config errors all mean the same to a user
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise _damaged(path, f"cannot be loaded ({type(error).__name__}{': ' + reason if reason else ''})") from None


def _trim_log(path: Path, epochs_done: int) -> None:
    """Drop rows of epochs after the last committed one (a crash between the log and the commit)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    keep = [lines[0]] + [line for line in lines[1:] if line.strip() and int(float(line.split(",")[0])) < epochs_done]
    if keep != lines:
        path.write_text("".join(keep))


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _changes(state: dict, given: dict, data_name: str | None, model_options: dict | None) -> tuple[list[str], dict]:
    """How the settings given to a resumed run differ from the run's ``state``, one phrase each.

    ``given`` maps state keys to the values given (``None``: left out, so the run's); ``data_name``
    is the data given, if any. Returns the phrases and the run's model options.
    """
    changed = [f"{_ARGUMENT.get(key, key)} {_show(state[key])} -> {_show(value)}"
               for key, value in given.items() if value is not None and value != state[key]]
    if data_name is not None and not _same_data(str(state["data"]), data_name):
        changed.append(f"data {_show(state['data'])} -> {_show(data_name)}")
    old_options = dict(state["model_options"])
    new_options = json.loads(json.dumps({**old_options, **(model_options or {})}))  # tuples as in JSON
    full_old, full_new = _full_options(state["model"], old_options), _full_options(state["model"], new_options)
    changed += [f"model_options[{key!r}] {_show(full_old.get(key))} -> {_show(full_new.get(key))}"
                for key in sorted(set(full_old) | set(full_new)) if full_old.get(key) != full_new.get(key)]
    return changed, old_options
