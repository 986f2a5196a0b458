"""The package's import contract, each case in a fresh interpreter (nothing imported before it).

- ``import keras, lstmcor`` then ``keras.saving.load_model(path, safe_mode=True)`` loads every
  shipped model, in either import order, and ``lstmcor.load_model(path)`` does it in one call;
- every name of ``lstmcor.__all__`` keeps its meaning whatever submodules have been imported
  (``lstmcor.train`` and ``lstmcor.evaluate`` stay functions after their old modules load);
- reading an image, the data package, the command line's parser and the embedded set's builder
  start no Keras backend; evaluation does not import the trainer; registration imports neither.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("keras", "tensorflow", "jax", "torch")


def _run(code: str, timeout: int = 300) -> str:
    """Run ``code`` in a fresh interpreter in the repository; return its stdout, fail with its stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _shipped() -> list[str]:
    """Every shipped model: ``data/weights`` and its budget folders (``quick/``)."""
    return sorted(str(p) for p in (ROOT / "data" / "weights").rglob("*.keras"))


def test_lstmcor_starts_no_backend_then_keras_loads_every_shipped_model_in_one_call():
    """One fresh interpreter (a Keras import is the cost here): ``import lstmcor`` alone starts no
    backend; ``import keras`` after it, ``keras.saving.load_model(path, safe_mode=True)`` loads every
    shipped model, and ``lstmcor.load_model(path)`` gives the same weights in one call. Each model
    integrates a velocity exactly when its ``.state.json`` says it was trained with
    ``integration_steps`` > 0 (chapter 09 names the shipped variants from that file)."""
    paths = _shipped()
    assert len(paths) >= 2
    out = _run(f"""
        import sys
        import lstmcor
        assert "keras" not in sys.modules  # importing lstmcor alone starts no backend
        import keras
        import numpy as np
        for path in {paths!r}:
            model = keras.saving.load_model(path, safe_mode=True)
            steps = [layer.steps for layer in model.layers if type(layer).__name__ == "IntegrateVelocity"]
            print(model.name, steps, [tuple(t.shape) for t in model.outputs][1])
        b = lstmcor.load_model(path)
        assert all(np.array_equal(x, y) for x, y in zip(model.get_weights(), b.get_weights()))
        print(type(b).__name__, len(b.get_weights()))
    """)
    lines = out.strip().splitlines()
    assert len(lines) == len(paths) + 1
    assert all(line.endswith("(None, 160, 192, 2)") for line in lines[:-1]), out
    assert lines[-1].startswith("Functional")
    for path, line in zip(paths, lines):
        state = Path(path).with_suffix(".state.json")
        if state.is_file():
            steps = json.loads(state.read_text()).get("model_options", {}).get("integration_steps", 0)
            assert ("[]" if not steps else f"[{steps}]") in line, (path, line)


def test_exports_keep_their_meaning_whatever_is_imported():
    """Also the other import order: Keras first, then lstmcor, and a shipped model loads."""
    path = str(ROOT / "data" / "weights" / "lstmcor.keras")
    out = _run("""
        import importlib, json
        import keras
        import lstmcor
        keras.saving.load_model(PATH, safe_mode=True)
        from lstmcor.evaluate import evaluate        # the old module paths, as chapters used them
        from lstmcor.train import train
        import lstmcor.train, lstmcor.evaluate, lstmcor.training, lstmcor.evaluation
        for module in ("data", "models", "registration", "saving", "cli", "plots", "classical"):
            importlib.import_module("lstmcor." + module)
        wrong = []
        for name in lstmcor.__all__:
            value = getattr(lstmcor, name)
            home = importlib.import_module("lstmcor." + lstmcor._EXPORTS[name])
            if value is not getattr(home, name) or isinstance(value, type(lstmcor)):
                wrong.append(name)
        print(json.dumps({"wrong": wrong, "train": lstmcor.train.__module__, "evaluate": lstmcor.evaluate.__module__,
                          "same": train is lstmcor.train and evaluate is lstmcor.evaluate}))
    """.replace("PATH", repr(path)))
    result = json.loads(out)
    assert result == {"wrong": [], "train": "lstmcor.training", "evaluate": "lstmcor.evaluation", "same": True}


@pytest.mark.parametrize("code", [
    "from lstmcor.data import read_image, load_dataset, pair_indices, pad_or_crop",
    "from lstmcor.cli import _parser; _parser().format_help()",
    "import lstmcor.settings, lstmcor.data.synthetic, lstmcor.data.layouts",
    "import importlib.util as u; s = u.spec_from_file_location('mk', 'data/make_dataset.py'); "
    "s.loader.exec_module(u.module_from_spec(s))",
], ids=["data", "cli-help", "settings", "make_dataset"])
def test_no_backend_starts(code, tmp_path):
    out = _run(f"""
        import sys
        {code}
        print(sorted(m for m in {BACKENDS!r} if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_reading_an_image_starts_no_backend(tmp_path):
    import numpy as np

    np.save(tmp_path / "image.npy", np.arange(12.0).reshape(3, 4))
    out = _run(f"""
        import sys
        from lstmcor.data import read_image
        image, affine = read_image({str(tmp_path / "image.npy")!r})
        print(image.shape, float(image.max()), sorted(m for m in {BACKENDS!r} if m in sys.modules))
    """)
    assert out.strip() == "(3, 4) 1.0 []"


def test_evaluation_and_registration_take_their_own_routes():
    """The command line, registration, saving and image io import neither the evaluation nor the
    trainer; evaluation, imported after them, does not import the trainer (one interpreter)."""
    out = _run("""
        import sys
        import lstmcor.cli, lstmcor.registration, lstmcor.saving, lstmcor.data.io
        print(sorted(m for m in ("lstmcor.evaluation", "lstmcor.training", "lstmcor.evaluate", "lstmcor.train")
                     if m in sys.modules))
        import lstmcor.evaluation
        print("lstmcor.training" in sys.modules)
    """)
    assert out.split("\n")[:2] == ["[]", "False"], out
