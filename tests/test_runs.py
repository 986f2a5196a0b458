"""Runs survive every mistake: a run folder is never overwritten, resume is exact and checks its
settings, checkpoint and state are committed as one step, SIGTERM stops like Ctrl-C, and damaged
run files give one line.

Most tests train VoxelMorph on a tiny 32 x 32 copy of the embedded images (subsampled) for speed:
``tiny`` and ``tiny_folder`` of tests/conftest.py.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import fails

import lstmcor.training as training
from lstmcor.cli import main
from lstmcor.training import default_run_folder, read_log, train

ROOT = Path(__file__).parents[1]
SMALL = dict(steps_per_epoch=2, batch_size=2, validation_steps=1, verbose=0)  # the ci preset's sizes


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, tiny_folder):
    """A VoxelMorph run of one epoch (of two) on the tiny folder, to copy."""
    run = tmp_path_factory.mktemp("runs") / "one"
    train("voxelmorph", "ci", str(tiny_folder), run, epochs=1, **SMALL)
    return run


@pytest.fixture(scope="module")
def whole(tmp_path_factory, tiny_folder):
    """The same run, two epochs in one go."""
    run = tmp_path_factory.mktemp("runs") / "whole"
    return train("voxelmorph", "ci", str(tiny_folder), run, epochs=2, **SMALL)


def _copy(run, tmp_path, name="run"):
    return Path(shutil.copytree(run, tmp_path / name))


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


# --- 1. a folder that holds a run is never overwritten ------------------------------------------------


def test_a_run_folder_is_refused_unless_resume_or_overwrite(tmp_path, tiny, one_epoch, capsys):
    run = _copy(one_epoch, tmp_path)
    before = {name: (run / name).read_bytes() for name in training.RUN_FILES}
    with pytest.raises(FileExistsError, match="holds a run .*--resume.*--overwrite"):
        train("voxelmorph", "ci", tiny, run, **SMALL)
    fails(["train", "--model", "voxelmorph", "--preset", "ci", "--out", str(run)], capsys,
           f"'{run}' holds a run (checkpoint.keras, state.json, log.csv, model.keras)", "--resume", "--overwrite")
    assert {name: (run / name).read_bytes() for name in training.RUN_FILES} == before  # nothing touched
    for name in training.RUN_FILES:  # any one file of a run is enough
        lone = tmp_path / f"only-{name}"
        lone.mkdir()
        shutil.copy(run / name, lone / name)
        with pytest.raises(FileExistsError, match=name):
            train("voxelmorph", "ci", tiny, lone, **SMALL)
    with pytest.raises(ValueError, match="exclude each other"):
        train("voxelmorph", "ci", tiny, run, resume=True, overwrite=True, **SMALL)
    with pytest.raises(FileNotFoundError, match="does not exist"):  # a mistake in --overwrite's command
        train("voxelmorph", "ci", tmp_path / "no-data", run, overwrite=True, **SMALL)
    assert {name: (run / name).read_bytes() for name in training.RUN_FILES} == before  # deletes nothing
    (run / "state.tmp.json").write_text("{")  # a crash's leftover goes too
    result = train("voxelmorph", "ci", tiny, run, overwrite=True, epochs=1, seed=5, **SMALL)
    assert result.epochs_done == 1 and read_log(run)["loss"].shape == (1,)
    assert json.loads((run / "state.json").read_text())["seed"] == 5
    assert not (run / "state.tmp.json").exists()


def test_the_default_run_folder_is_new_each_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training.time, "strftime", lambda fmt, *args: "20261201-120000")
    first = default_run_folder("voxelmorph", "ci", root=tmp_path)
    assert first == tmp_path / "voxelmorph-ci-20261201-120000"
    first.mkdir()
    assert default_run_folder("voxelmorph", "ci", root=tmp_path).name == "voxelmorph-ci-20261201-120000-2"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "voxelmorph-ci-20261201-120000").mkdir(parents=True)  # a run of this very second
    seen = []

    def fake_train(model, preset, data, out, **kwargs):  # the command line's choice of folder, without training
        seen.append((Path(out), kwargs["model_options"]))
        return training.TrainResult(None, {}, Path(out), 0, 0.0)

    monkeypatch.setattr(training, "train", fake_train)
    assert main(["train", "--model", "voxelmorph", "--preset", "ci", "--recurrence", "convlstm"]) == 0, \
        capsys.readouterr().err
    assert main(["train", "--no-funnel"]) == 0
    assert seen == [(Path("runs/voxelmorph-ci-20261201-120000-2"), None),
                    (Path("runs/lstmcor-quick-20261201-120000"), {"funnel": False})]
    fails(["train", "--resume"], capsys, "--resume needs --out")


# --- 2 and 4. resume is exact, with the run's settings ---------------------------------------------


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, one_epoch, whole):
    run = _copy(one_epoch, tmp_path)
    resumed = train(out=run, resume=True, epochs=2, verbose=0)  # everything else from state.json
    assert resumed.epochs_done == 2
    assert _same_weights(resumed.model, whole.model)
    assert (run / "log.csv").read_text() == (whole.out / "log.csv").read_text()  # val_loss too
    assert int(resumed.model.optimizer.iterations.numpy()) == int(whole.model.optimizer.iterations.numpy())


def test_resume_with_other_settings_is_refused(tmp_path, tiny, one_epoch, tiny_folder, capsys):
    run = _copy(one_epoch, tmp_path)
    before = (run / "checkpoint.keras").read_bytes()
    changes = {"learning_rate": (1e-4, "learning_rate (--lr) 0.001 -> 0.0001"),
               "lam": (0.5, "lam (--lam) 0.003 -> 0.5"), "seed": (3, "seed 0 -> 3"),
               "batch_size": (4, "batch_size 2 -> 4"),
               "steps_per_epoch": (5, "steps_per_epoch 2 -> 5"), "validation_steps": (2, "validation_steps 1 -> 2"),
               "augment": (True, "augment False -> True"), "preset": ("quick", "preset 'ci' -> 'quick'"),
               "model": ("lstmcor", "model 'voxelmorph' -> 'lstmcor'"),
               "model_options": ({"funnel": False}, "model_options['funnel'] None -> False")}
    for key, (value, text) in changes.items():
        with pytest.raises(ValueError, match="differ from the run's") as info:
            train(out=run, resume=True, verbose=0, **{key: value})
        assert text in str(info.value), str(info.value)
    with pytest.raises(ValueError, match=r"data '.*tiny_data.*' -> 'default'"):
        train(out=run, data="default", resume=True, verbose=0)
    with pytest.raises(ValueError, match=r"data '.*' -> 'tiny'"):
        train(out=run, data=tiny, resume=True, verbose=0)
    with pytest.raises(ValueError, match="seed 0 -> 1; learning_rate"):  # each difference, in one line
        train(out=run, resume=True, seed=1, learning_rate=0.1, verbose=0)
    assert (run / "checkpoint.keras").read_bytes() == before
    # the same values given again are no change; a larger --epochs is not one either (tested above)
    assert train(out=run, data=str(tiny_folder), resume=True, model="voxelmorph", preset="ci", seed=0,
                 learning_rate=1e-3, lam=0.003, epochs=1, **SMALL).epochs_done == 1
    with pytest.raises(ValueError, match="to 0 epochs"):
        train(out=run, resume=True, epochs=0, verbose=0)

    # the command line: left-out settings are the run's; given ones that differ are named
    fails(["train", "--out", str(run), "--resume", "--lr", "0.0001", "--seed", "3"], capsys,
           "seed 0 -> 3", "learning_rate (--lr) 0.001 -> 0.0001", str(run))
    fails(["train", "--out", str(run), "--resume", "--no-funnel"], capsys, "model_options['funnel']")
    fails(["train", "--out", str(run), "--resume", "--data", "default"], capsys, "-> 'default'")
    assert main(["train", "--out", str(run), "--resume"]) == 0, capsys.readouterr().err  # all from state.json
    assert "trained 1 epochs" in capsys.readouterr().out  # (training further: see the SIGTERM test)


# --- 3. checkpoint and state are one commit ----------------------------------------------------------


class Crash(BaseException):
    """A crash (power cut, kill -9) at one step of the commit."""


def _crash_at(monkeypatch, when):
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if when(calls):
            raise Crash()
        return real(src, dst)

    monkeypatch.setattr(training.os, "replace", replace)


def test_a_crash_in_the_commit_loses_nothing(tmp_path, one_epoch, whole, monkeypatch, capsys):

    # crash after the new checkpoint is in place but before state.json: resume finishes the commit
    after = _copy(one_epoch, tmp_path, "after")
    with monkeypatch.context() as m:
        _crash_at(m, lambda calls: calls[-1] == ("state.tmp.json", "state.json"))
        with pytest.raises(Crash):
            train(out=after, resume=True, epochs=2, verbose=0)
    assert json.loads((after / "state.json").read_text())["epochs_done"] == 1  # names the old checkpoint
    assert (after / "state.tmp.json").exists()
    pending = _copy(after, tmp_path, "pending-lost")
    resumed = train(out=after, resume=True, epochs=2, verbose=0)
    assert resumed.epochs_done == 2 and not (after / "state.tmp.json").exists()
    assert _same_weights(resumed.model, whole.model)
    assert (after / "log.csv").read_text() == (whole.out / "log.csv").read_text()

    # the same crash with the pending state lost: the mismatch is found before Keras reads the file
    (pending / "state.tmp.json").unlink()
    fails(["train", "--out", str(pending), "--resume"], capsys, str(pending / "checkpoint.keras"),
           "state.json recorded")

    # crash before the commit point (the state of epoch 2 is written, its checkpoint is not in place):
    # the previous checkpoint and state stand; resuming discards the leftovers and the log row of epoch 2
    before = Path(shutil.copytree(after, tmp_path / "before"))
    shutil.copy(one_epoch / "checkpoint.keras", before / "checkpoint.keras")
    shutil.copy(one_epoch / "state.json", before / "state.json")
    shutil.copy(after / "state.json", before / "state.tmp.json")
    shutil.copy(after / "checkpoint.keras", before / "checkpoint.tmp.keras")
    assert read_log(before)["loss"].shape == (2,)
    resumed = train(out=before, resume=True, verbose=0)  # to the run's 1 epoch: nothing to train
    assert resumed.epochs_done == 1
    assert (before / "log.csv").read_text() == (one_epoch / "log.csv").read_text()
    assert (before / "checkpoint.keras").read_bytes() == (one_epoch / "checkpoint.keras").read_bytes()
    assert not any((before / name).exists() for name in ("state.tmp.json", "checkpoint.tmp.keras"))


# --- 6. damaged run files: one line naming the file and what to do -----------------------------------


def test_damaged_run_files_give_one_line(tmp_path, one_epoch, capsys):
    def resume(run):
        return ["train", "--out", str(run), "--resume"]

    size = (one_epoch / "checkpoint.keras").stat().st_size
    flipped = _copy(one_epoch, tmp_path, "flipped")
    data = bytearray((flipped / "checkpoint.keras").read_bytes())
    for k in range(size // 2, size // 2 + 16):
        data[k] ^= 0xFF
    (flipped / "checkpoint.keras").write_bytes(bytes(data))
    fails(resume(flipped), capsys, f"'{flipped / 'checkpoint.keras'}' is damaged", "--overwrite")

    truncated = _copy(one_epoch, tmp_path, "truncated")
    (truncated / "checkpoint.keras").write_bytes((one_epoch / "checkpoint.keras").read_bytes()[: size // 2])
    fails(resume(truncated), capsys, f"'{truncated / 'checkpoint.keras'}' is damaged or truncated")

    broken = _copy(one_epoch, tmp_path, "broken")
    (broken / "state.json").write_text('{"epochs_done": 1, "model": ')
    fails(resume(broken), capsys, f"'{broken / 'state.json'}' is not valid JSON")

    binary = _copy(one_epoch, tmp_path, "binary")
    (binary / "state.json").write_bytes(b"\xff\xfe\x00garbage")
    fails(resume(binary), capsys, f"'{binary / 'state.json'}'")

    lacking = _copy(one_epoch, tmp_path, "lacking")
    state = json.loads((lacking / "state.json").read_text())
    del state["epochs_done"], state["seed"]
    (lacking / "state.json").write_text(json.dumps(state))
    fails(resume(lacking), capsys, f"'{lacking / 'state.json'}' lacks epochs_done, seed")

    # a checkpoint damaged where no digest was recorded (a run of an older lstmcor): Keras's error, in one line
    legacy = _copy(one_epoch, tmp_path, "legacy")
    state = json.loads((legacy / "state.json").read_text())
    del state["checkpoint"]
    (legacy / "state.json").write_text(json.dumps(state))
    (legacy / "checkpoint.keras").write_bytes((one_epoch / "checkpoint.keras").read_bytes()[: size // 2])
    fails(resume(legacy), capsys, f"'{legacy / 'checkpoint.keras'}' cannot be loaded")

    fails(resume(tmp_path / "nothing"), capsys, "cannot resume: no checkpoint.keras and state.json")


# --- 5. SIGTERM stops training as Ctrl-C does --------------------------------------------------------


def test_sigterm_stops_training_and_the_run_resumes(tmp_path, tiny_folder, capsys):
    run = tmp_path / "run"
    # PYTHONFAULTHANDLER: should the process crash instead (once seen under load: SIGSEGV, rc -11, no
    # output), its Python stack is in err
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lstmcor", "train", "--model", "voxelmorph", "--preset", "ci",
                             "--epochs", "50", "--data", str(tiny_folder), "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (run / "state.json").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    lines = [line for line in err.strip().splitlines() if line.startswith("lstmcor")]
    assert lines == [f"lstmcor train: terminated (SIGTERM); the last finished epoch is saved: resume with "
                     f"`lstmcor train --out {run} --resume`"], err
    assert "Traceback" not in err
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    assert 1 <= done < 50
    assert main(["train", "--out", str(run), "--resume", "--epochs", str(done + 1)]) == 0, capsys.readouterr().err
    assert json.loads((run / "state.json").read_text())["epochs_done"] == done + 1
    assert read_log(run)["val_loss"].shape == (done + 1,)
