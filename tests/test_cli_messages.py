"""The command line speaks its own language: flags in messages, results under runs/, no backend chatter."""
import inspect
import json
import os
import platform
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import PYTHON_NAMES, fails

from lstmcor import cli
from lstmcor.cli import cli_words, main
from lstmcor.data import RegistrationSet, load_dataset
from lstmcor.evaluation import evaluate
from lstmcor.models import build_voxelmorph

ROOT = Path(__file__).parents[1]
# absl / TensorFlow C++ log lines
CHATTER = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cpu_feature_guard|oneDNN|rebuild TensorFlow", re.M)


def _image(rng, size=32):
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2 + rng.normal(0, 3, 2)
    blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (size * 2.0))
    return (blob + 0.1 * rng.random((size, size))).astype(np.float32)


def _folder(path: Path, n: int, rng=None) -> Path:
    rng = rng or np.random.default_rng(0)
    path.mkdir(parents=True)
    for k in range(n):
        np.save(path / f"s{k:02d}.npy", _image(rng))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny weights (VoxelMorph on 32 x 32), a folder of 12 images (test split: 2 subjects), the same plus a
    corrupt file, and 2D and 3D inputs for register."""
    root = tmp_path_factory.mktemp("cli")
    weights = root / "w" / "model.keras"
    weights.parent.mkdir()
    build_voxelmorph((32, 32)).save(weights)
    good = _folder(root / "good", 12)
    bad = _folder(root / "bad", 12)
    (bad / "zz_corrupt.npy").write_bytes(b"not a NumPy file")
    rng = np.random.default_rng(1)
    np.save(root / "a.npy", _image(rng))
    np.save(root / "b.npy", _image(rng))
    np.save(root / "vol.npy", np.stack([_image(rng) for _ in range(5)], axis=-1))
    return {"root": root, "weights": str(weights), "good": str(good), "bad": str(bad)}


# 1. flags, not Python arguments -----------------------------------------------------------------------

def test_a_bad_file_points_at_skip_bad(files, tmp_path, capsys):
    for argv in (["evaluate", "--weights", files["weights"], "--out", str(tmp_path / "ev")],
                 ["train", "--model", "voxelmorph", "--preset", "ci", "--out", str(tmp_path / "run")]):
        fails(argv + ["--data", files["bad"]], capsys, "zz_corrupt.npy", "or pass --skip-bad to leave it out",
               "not a plain NumPy array file")


def test_skip_bad_evaluates(files, tmp_path, capsys):
    out = tmp_path / "ev"
    code = main(["evaluate", "--weights", files["weights"], "--data", files["bad"], "--skip-bad", "--pairs", "2",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1, captured.err
    assert warning[0].startswith("lstmcor evaluate: warning: skipped 1 bad file(s)") and "(--skip-bad)" in warning[0]
    assert not PYTHON_NAMES.search(captured.err), captured.err
    assert json.loads((out / "summary.json").read_text())["summary"]["w"]["pairs"] == 2


def test_skip_bad_trains(files, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--model", "voxelmorph", "--preset", "ci", "--data", files["bad"], "--skip-bad",
                 "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--out", str(run)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "lstmcor train: warning: skipped 1 bad file(s)" in captured.err
    assert (run / "model.keras").exists()


def test_register_names_slice_and_axis(files, tmp_path, capsys):
    root, weights, out = files["root"], files["weights"], str(tmp_path / "o.nii.gz")
    vol, two_d, fixed = str(root / "vol.npy"), str(root / "a.npy"), str(root / "b.npy")
    base = ["--weights", weights, "-o", out]
    fails(["register", vol, vol] + base, capsys, "3D volume", "pass --slice <int> and --axis <0, 1 or 2>")
    fails(["register", vol, vol, "--slice", "9"] + base, capsys, "--slice 9 is outside", "in 0..4")
    fails(["register", vol, vol, "--slice", "1", "--axis", "5"] + base, capsys, "--axis 5 is not an axis")
    fails(["register", two_d, fixed, "--slice", "3"] + base, capsys, "--slice 3 was given",
           "leave out --slice for 2D files")


def test_train_and_evaluate_on_volumes_ask_for_2d_files(files, tmp_path, capsys):
    folder = tmp_path / "vols"
    folder.mkdir()
    for k in range(4):
        np.save(folder / f"v{k}.npy", np.random.default_rng(k).random((32, 32, 3)).astype(np.float32))
    fails(["evaluate", "--weights", files["weights"], "--data", str(folder), "--out", str(tmp_path / "ev")], capsys,
           "3D volume", "save one 2D slice per file")
    fails(["train", "--preset", "ci", "--data", str(folder), "--out", str(tmp_path / "r")], capsys,
           "save one 2D slice per file")


def test_too_few_subjects_name_the_fixed_split(files, tmp_path, capsys):
    small = _folder(tmp_path / "small", 3)
    err = fails(["evaluate", "--weights", files["weights"], "--data", str(small), "--out", str(tmp_path / "ev")],
                 capsys, "fewer than two subjects", "the command line splits the subjects 70/15/15")
    assert "split_fractions" not in err
    # the fractions quoted are load_dataset's own
    default = inspect.signature(load_dataset).parameters["split_fractions"].default
    assert cli._FRACTIONS == "/".join(f"{round(100 * f)}" for f in default)


def test_mixed_folder_and_numbers(files, tmp_path, capsys):
    from PIL import Image

    mixed = _folder(tmp_path / "mixed", 4)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(mixed / "x.png")
    fails(["evaluate", "--weights", files["weights"], "--data", str(mixed), "--out", str(tmp_path / "ev")], capsys,
           "mixes file types", "keep one type per folder")
    fails(["evaluate", "--weights", files["weights"], "--data", files["good"], "--pairs", "-3",
            "--out", str(tmp_path / "ev")], capsys, "--pairs must be >= 0")
    for flag in ("--epochs", "--steps-per-epoch", "--batch-size"):
        fails(["train", "--preset", "ci", flag, "0", "--out", str(tmp_path / "r")], capsys, f"{flag} must be >= 1")


def test_cli_words():
    assert cli_words("or pass skip_bad=True to leave it out") == "or pass --skip-bad to leave it out"
    assert cli_words("skipped 1 file(s) in 'x' (skip_bad=True): a") == "skipped 1 file(s) in 'x' (--skip-bad): a"
    assert cli_words("axis=4 is not an axis") == "--axis 4 is not an axis"
    assert cli_words("n_pairs=50 asks for more") == "--pairs 50 asks for more"
    assert cli_words("the 3 slices along axis 2") == "the 3 slices along axis 2"  # prose stays
    assert "slice_index" not in cli_words("pass slice_index=<int> and axis=<0, 1 or 2> to take one slice of each "
                                          "volume", "train")


# 2. where evaluate writes, and more pairs than there are ---------------------------------------------

def test_evaluate_writes_under_runs_by_default(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(Path(files["weights"]).parent))
    assert main(["evaluate", "--weights", files["weights"], "--data", files["good"], "--pairs", "2"]) == 0
    out = capsys.readouterr().out
    folders = list((tmp_path / "runs").glob("evaluation-*"))
    assert len(folders) == 1 and re.fullmatch(r"evaluation-\d{8}-\d{6}", folders[0].name)
    assert {p.name for p in folders[0].iterdir()} == {"pairs.csv", "summary.json", "table.md"}
    assert f"results written to {Path('runs') / folders[0].name}" in out
    assert sorted(os.listdir(Path(files["weights"]).parent)) == before  # nothing beside the weights


def test_default_evaluation_folder_is_new(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.time, "strftime", lambda fmt: "20260102-030405")
    assert cli._default_evaluation_folder() == Path("runs/evaluation-20260102-030405")
    Path("runs/evaluation-20260102-030405").mkdir(parents=True)  # a second run in the same second
    assert cli._default_evaluation_folder() == Path("runs/evaluation-20260102-030405-2")


def test_evaluate_pairs_beyond_the_split(files, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "--weights", files["weights"], "--data", files["good"], "--pairs", "5000",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "warning" in line]
    assert notes == ["lstmcor evaluate: warning: --pairs 5000 asks for more than the 2 distinct pairs of split "
                     "'test'; scoring each once"], err
    rows = (out / "pairs.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 2  # header, then 2 pairs for identity and the model


def test_evaluate_api_caps_n_pairs():
    rng = np.random.default_rng(0)
    data = RegistrationSet(images=rng.random((4, 32, 32), dtype=np.float32), labels=None,
                           subjects=["a", "b", "c", "d"], splits={"test": np.arange(4)}, label_names=[], name="four")
    with pytest.warns(UserWarning, match=r"n_pairs=50 asks for more than the 12 distinct pairs of split 'test'"):
        result = evaluate({}, data, n_pairs=50, timing_runs=1, progress=False)
    assert len(result.pairs) == len(set(result.pairs)) == 12


# 3. no backend chatter -------------------------------------------------------------------------------

def _run(args, tmp_path, **env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "LSTMCOR_VERBOSE")}
    # oneDNN's start-up notice is a line TF_CPP_MIN_LOG_LEVEL does not stop (where TensorFlow has oneDNN)
    env.update({"PYTHONPATH": str(ROOT), "TF_ENABLE_ONEDNN_OPTS": "1", **env_extra})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=env)


def test_register_and_evaluate_print_no_backend_chatter(files, tmp_path):
    # one fresh process (one backend start, where the start-up chatter comes): register, then evaluate
    root = files["root"]
    register = ["register", str(root / "a.npy"), str(root / "b.npy"), "--weights", files["weights"], "-o",
                str(tmp_path / "moved.nii.gz")]
    evaluate = ["evaluate", "--weights", files["weights"], "--data", files["good"], "--pairs", "2", "--out",
                str(tmp_path / "ev")]
    code = (f"import sys\nfrom lstmcor.cli import main\nfor argv in ({register!r}, {evaluate!r}):\n"
            "    code = main(argv)\n    print(argv[0], 'exit', code, flush=True)\n    sys.stderr.flush()\n")
    both = _run(["-c", code], tmp_path)
    assert both.returncode == 0, both.stderr
    assert "moved image:" in both.stdout and "register exit 0" in both.stdout, both.stdout + both.stderr
    assert "evaluate exit 0" in both.stdout, both.stdout + both.stderr
    assert (tmp_path / "ev" / "summary.json").is_file()
    assert not CHATTER.search(both.stderr), both.stderr


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN's notice: x86 TensorFlow builds")
def test_verbose_shows_the_chatter(files, tmp_path):
    root = files["root"]
    reg = _run(["-m", "lstmcor", "register", str(root / "a.npy"), str(root / "b.npy"), "--weights",
                files["weights"], "-o", str(tmp_path / "moved.nii.gz"), "--verbose"], tmp_path)
    assert reg.returncode == 0, reg.stderr
    assert CHATTER.search(reg.stderr), reg.stderr


def test_verbose_and_the_users_level(monkeypatch):
    import lstmcor

    monkeypatch.setattr(lstmcor, "_TF_LOG_LEVEL_FROM_USER", None)
    monkeypatch.delenv("LSTMCOR_VERBOSE", raising=False)
    assert cli._backend_log_level(False) == "3"
    assert cli._backend_log_level(True) == "0"
    monkeypatch.setenv("LSTMCOR_VERBOSE", "1")
    assert cli._backend_log_level(False) == "0"
    monkeypatch.setattr(lstmcor, "_TF_LOG_LEVEL_FROM_USER", "1")  # the user's own level wins
    assert cli._backend_log_level(False) == cli._backend_log_level(True) == "1"


def _fake_keras(tmp_path, fail: bool) -> Path:
    """A stand-in ``keras`` that writes two C++-style chatter lines and one real line straight to fd 2."""
    folder = tmp_path / ("broken" if fail else "fake") / "keras"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(f"""
        import os
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, b"I0000 00:00:1796127834.811484   11956 port.cc:153] oneDNN custom operations are on.\\n")
        os.write(2, b"a line that matters\\n")
        if {fail}:
            raise ImportError("the backend is broken")
    """))
    return folder.parent


@pytest.mark.parametrize("fail", [False, True])
def test_the_import_filter_drops_only_chatter(tmp_path, fail):
    code = "import lstmcor.cli as c; c._quiet_backend(False); print('imported')"
    out = _run(["-c", code], tmp_path, PYTHONPATH=f"{_fake_keras(tmp_path, fail)}{os.pathsep}{ROOT}")
    assert "a line that matters" in out.stderr
    if fail:  # a failed import shows everything it wrote, then the error
        assert out.returncode != 0 and "oneDNN custom operations" in out.stderr
        assert "the backend is broken" in out.stderr
    else:
        assert out.returncode == 0 and out.stdout.strip() == "imported", out.stderr
        assert not CHATTER.search(out.stderr), out.stderr


def test_help_starts_no_backend(tmp_path):
    code = ("import sys\nfrom lstmcor.cli import main\n"
            "for argv in (['--help'], ['evaluate', '--help'], ['train', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('keras imported:', 'keras' in sys.modules)")
    out = _run(["-c", code], tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "keras imported: False" in out.stdout
    assert out.stdout.count("leave out the folder's unreadable") == 2 and "--verbose" in out.stdout
