"""The experiment exercises' checks (chapters 02, 05-09), run with their solutions and with wrong answers.

The check and solution cells are read from the chapters with jupytext and executed in a small
namespace of synthetic data, so that a check is tested without running its chapter: with the
solution it passes (prints ``Correct``), with a typical wrong answer it raises ``AssertionError``.
"""
from __future__ import annotations

import ast
import types
from pathlib import Path

import keras
import numpy as np
import pytest
from chapters import cells_with_solutions
from keras import ops
from scipy import ndimage
from scipy.ndimage import map_coordinates

from lstmcor.losses import total_loss
from lstmcor.metrics import dice, folding_fraction, hd95, mean_dice
from lstmcor.models import build_lstmcor
from lstmcor.transform import integrate, warp

COURSE = Path(__file__).resolve().parent.parent / "course"


def _chapter(prefix: str) -> list:
    """The chapter's cells with its solutions put back, as the book and CI run it."""
    (path,) = COURSE.glob(f"{prefix}_*.py")
    return cells_with_solutions(path.stem)


def _cell(prefix: str, text: str, tag: str | None = None) -> str:
    """The source of the one code cell of chapter ``prefix`` that contains ``text`` (and has ``tag``)."""
    found = [c.source for c in _chapter(prefix) if c.cell_type == "code" and text in c.source
             and (tag is None or tag in c.metadata.get("tags", []))]
    assert len(found) == 1, f"chapter {prefix}: {len(found)} code cells contain {text!r}"
    return found[0]


def _definitions(source: str, namespace: dict) -> dict:
    """Execute only the function definitions of a cell (not its top-level calls) in ``namespace``."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    exec(compile(tree, "<chapter cell>", "exec"), namespace)
    return namespace


def _labels(shape=(40, 48)) -> np.ndarray:
    labels = np.zeros(shape, "int64")
    labels[6:34, 8:40] = 1
    labels[12:28, 14:34] = 2
    labels[18:22, 20:28] = 3
    return labels


def test_ex21_skip_gates():
    ns = _definitions(_cell("02", "def check_ex21") + "\n" + _cell("02", "def skip_gates", "solution"),
                      {"np": np, "keras": keras})
    keras.utils.set_random_seed(0)
    model = build_lstmcor(input_shape=(32, 32))
    rng = np.random.default_rng(0)
    moving, fixed = (rng.random((1, 32, 32, 1)).astype("float32") for _ in range(2))
    ns["check_ex21"](ns["skip_gates"], model, moving, fixed)

    def gates_of_the_output(model, moving, fixed):  # the gates computed on the SE block's output
        out = []
        for k in range(4):
            layer = model.get_layer(f"skip{k}_se")
            x = keras.Model(model.inputs, layer.output).predict_on_batch([moving, fixed])
            out.append(ops.convert_to_numpy(layer.gates(x))[0])
        return out

    with pytest.raises(AssertionError, match="skip0"):
        ns["check_ex21"](gates_of_the_output, model, moving, fixed)


def test_ex53_subpixel_scores():
    ns = _definitions(_cell("05", "def check_ex53") + "\n" + _cell("05", "def subpixel_scores", "solution"),
                      {"np": np, "mean_dice": mean_dice, "warp": warp, "map_coordinates": map_coordinates})
    labels = _labels()
    image = ndimage.gaussian_filter(labels.astype("float32"), 1.5) / 3
    ns["check_ex53"](ns["subpixel_scores"], image, labels)
    solution = ns["subpixel_scores"]
    assert solution(image, labels, 0.25)[0] == 1.0 and solution(image, labels, 0.25)[1] > 0

    def labels_bilinear(image, labels, t):  # labels interpolated, then rounded: wrong
        field = np.zeros((*image.shape, 2), "float32")
        field[..., 1] = t
        return (mean_dice(labels, np.rint(warp(labels.astype("float32"), field)).astype(int)),
                solution(image, labels, t)[1])

    with pytest.raises(AssertionError, match="Dice"):
        ns["check_ex53"](labels_bilinear, image, labels)


def test_ex63_descend_table():
    labels_m, labels_f = _labels(), np.roll(_labels(), 2, axis=1)
    moving = ndimage.gaussian_filter(labels_m.astype("float32"), 1.0) / 3
    fixed = ndimage.gaussian_filter(labels_f.astype("float32"), 1.0) / 3
    ns = {"np": np, "moving": moving, "fixed": fixed, "H": 40, "W": 48, "M": 0, "F": 1, "PRESET": "test",
          "ds": types.SimpleNamespace(labels=[labels_m, labels_f]), "warp": warp,
          "folding_fraction": folding_fraction, "total_loss": total_loss}
    ns["mse_numpy"] = lambda a, b: float(np.mean((a - b) ** 2))
    helper = _cell("06", "def descend").replace("STEPS_63 = 10", "STEPS_63 = 3")
    exec(helper, ns)
    exec(_cell("06", "table_63 = {}", "solution"), ns)
    _definitions(_cell("06", "def check_ex63"), ns)
    ns["check_ex63"](ns["table_63"])
    assert ns["table_63"][0.0][1] > mean_dice(labels_f, labels_m)   # three steps move the labels towards the fixed
    wrong = {lam: (m, d, fold / 100 + 0.5) for lam, (m, d, fold) in ns["table_63"].items()}
    with pytest.raises(AssertionError, match="folding"):
        ns["check_ex63"](wrong)
    with pytest.raises(AssertionError, match="lambda = 0.0 and lambda = 1.0"):
        ns["check_ex63"]({0.0: ns["table_63"][0.0]})


def test_ex71_shift_scores():
    ns = _definitions(_cell("07", "def check_ex71") + "\n" + _cell("07", "def shift_scores", "solution"),
                      {"np": np, "dice": dice, "hd95": hd95})
    labels = _labels()
    ns["check_ex71"](ns["shift_scores"], labels)
    d1, h1 = ns["shift_scores"](labels, 1)
    assert np.all(d1 < 1) and np.all(h1 <= 1)                      # analytic: a 1-px shift is at most 1 px away
    with pytest.raises(AssertionError, match="shift"):
        ns["check_ex71"](lambda lab, s: (dice(lab, np.roll(lab, s, axis=0)), hd95(lab, np.roll(lab, s, axis=0))),
                         labels)                                    # shifted along the rows: wrong axis


def test_ex81_switch_effect():
    shape = (32, 32)
    full = build_lstmcor(input_shape=shape)
    params = {"LSTM-COR": full.count_params(),
              "no field SE": build_lstmcor(input_shape=shape, field_se=False).count_params()}
    rng = np.random.default_rng(1)
    ns = {"np": np, "keras": keras, "build_lstmcor": build_lstmcor, "params": params, "FULL": "LSTM-COR",
          "models": {"LSTM-COR": full},
          "ds": types.SimpleNamespace(shape=shape),
          "pair_81": [rng.random((1, *shape, 1)).astype("float32") for _ in range(2)]}
    _definitions(_cell("08", "def check_ex81") + "\n" + _cell("08", "def switch_effect", "solution"), ns)
    effect = ns["switch_effect"]({"field_se": False})
    ns["check_ex81"](effect)
    keras.utils.set_random_seed(5)
    unshared = build_lstmcor(input_shape=shape, field_se=False)     # other weights: the field is not s * D
    wrong = dict(effect, flow_variant=np.asarray(unshared.predict_on_batch(ns["pair_81"])[1])[0])
    with pytest.raises(AssertionError, match="gates"):
        ns["check_ex81"](wrong)
    with pytest.raises(AssertionError, match="weights removed"):
        ns["check_ex81"](dict(effect, removed=effect["removed"] + 1))


def test_ex92_squaring_experiment():
    ns = {"np": np, "ndimage": ndimage, "ops": ops, "integrate": integrate, "warp": warp,
          "folding_fraction": folding_fraction, "SEED": 0, "ds": types.SimpleNamespace(shape=(48, 64))}
    _definitions(_cell("09", "def smooth_velocity"), ns)
    _definitions(_cell("09", "def check_ex92") + "\n" + _cell("09", "def squaring_experiment", "solution"), ns)
    ns["check_ex92"](ns["squaring_experiment"])
    velocity = ns["smooth_velocity"](6.0, shape=(48, 64), sigma=3.0)
    errors = [ns["squaring_experiment"](velocity, n)[1] for n in (1, 7)]
    assert errors[1] < errors[0]                 # more squarings: closer to an exact inverse
    with pytest.raises(AssertionError, match="inverse error"):
        ns["check_ex92"](lambda v, n: (ns["squaring_experiment"](v, n)[0], 0.0))
    with pytest.raises(AssertionError, match="folding"):
        ns["check_ex92"](lambda v, n: (ns["squaring_experiment"](v, n)[0] + 1.0, ns["squaring_experiment"](v, n)[1]))
