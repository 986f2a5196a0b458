"""The checks of the Keras exercises (chapters 1, 3, 4) pass their solutions and fail wrong answers.

Each check and solution is taken from the chapter's source (jupytext), so the test runs the very
code the book runs: the top-level imports and the named functions and classes, nothing else.
"""
import ast

import keras
import numpy as np
import pytest
from chapters import cells_with_solutions


def chapter_defs(stem: str, *names: str, starters: bool = False) -> dict:
    """A namespace with the chapter's imports and its last definition of each of ``names``.

    With ``starters=True`` the exercise cells' definitions are taken instead of the solutions'.
    """
    cells = cells_with_solutions(stem)  # as the book and CI run it
    imports, defs = [], {}
    skipped = "solution" if starters else "exercise"
    for cell in cells:
        if cell.cell_type != "code" or skipped in cell.metadata.get("tags", []):
            continue
        tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.startswith("%")))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(node)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                defs[node.name] = node
    missing = set(names) - set(defs)
    assert not missing, f"{stem} defines no {sorted(missing)}"
    namespace: dict = {}
    exec(compile(ast.Module(body=imports + list(defs.values()), type_ignores=[]), stem, "exec"), namespace)
    return namespace


# ---- chapter 1: SE as a Keras layer -------------------------------------------------------------

def test_ex12_passes_the_solution_and_fails_a_missing_sigmoid_or_config(capsys):
    ns = chapter_defs("01_squeeze_excitation", "check_ex12", "MySE")
    ns["check_ex12"](ns["MySE"])
    assert capsys.readouterr().out.startswith("Correct")

    class NoSigmoid(ns["MySE"]):
        def call(self, x):
            z = keras.ops.mean(x, axis=(1, 2))
            s = keras.ops.matmul(keras.ops.relu(keras.ops.matmul(z, self.w1)), self.w2)
            return x * keras.ops.reshape(s, (-1, 1, 1, x.shape[-1]))

    with pytest.raises(AssertionError, match="sigmoid"):
        ns["check_ex12"](NoSigmoid)

    class NumpyCall(ns["MySE"]):
        def call(self, x):
            z = np.mean(np.asarray(x), axis=(1, 2))
            w1, w2 = (keras.ops.convert_to_numpy(w) for w in (self.w1, self.w2))
            return x * (1 / (1 + np.exp(-np.maximum(z @ w1, 0) @ w2)))[:, None, None, :]

    with pytest.raises(AssertionError, match="keras.ops"):
        ns["check_ex12"](NumpyCall)

    class NoConfig(ns["MySE"]):
        def get_config(self):
            return super(ns["MySE"], self).get_config()

    with pytest.raises(AssertionError, match="get_config"):
        ns["check_ex12"](NoConfig)


# ---- chapter 3: a ConvLSTM step in keras.ops, and the memory experiment --------------------------

def test_ex33_passes_the_solution_and_fails_without_peepholes_or_with_the_old_cell_state(capsys):
    ns = chapter_defs("03_convlstm_channels", "check_ex33", "_run_steps", "my_convlstm_step")
    ns["check_ex33"](ns["my_convlstm_step"])
    assert capsys.readouterr().out.startswith("Correct")
    ops = keras.ops

    def no_peepholes(x_t, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
        z = ops.conv(x_t, kernel, padding="same") + ops.conv(h, recurrent_kernel, padding="same") + bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        c_new = ops.sigmoid(z_f) * c + ops.sigmoid(z_i) * ops.tanh(z_c)
        return ops.sigmoid(z_o) * ops.tanh(c_new), c_new

    with pytest.raises(AssertionError, match="ignores the peepholes"):
        ns["check_ex33"](no_peepholes)

    def old_cell_state(x_t, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
        z = ops.conv(x_t, kernel, padding="same") + ops.conv(h, recurrent_kernel, padding="same") + bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        c_new = ops.sigmoid(z_f + w_cf * c) * c + ops.sigmoid(z_i + w_ci * c) * ops.tanh(z_c)
        return ops.sigmoid(z_o + w_co * c) * ops.tanh(c_new), c_new

    with pytest.raises(AssertionError, match="differs from PeepholeConvLSTM2D"):
        ns["check_ex33"](old_cell_state)


def test_ex34_passes_the_solution_and_fails_a_shift_of_every_gate(capsys):
    ns = chapter_defs("03_convlstm_channels", "check_ex34", "memory_profile")
    ns["check_ex34"](ns["memory_profile"])
    assert capsys.readouterr().out.startswith("Correct")
    PeepholeConvLSTM2D = ns["PeepholeConvLSTM2D"]

    def every_gate(cell, sequence, forget_shift=0.0):
        copy = PeepholeConvLSTM2D.from_config(cell.get_config())
        copy.build(sequence.shape)
        weights = cell.get_weights()
        weights[2] = weights[2] + forget_shift
        copy.set_weights(weights)
        base = keras.ops.convert_to_numpy(copy(sequence))[0, -1]
        out = []
        for t in range(sequence.shape[1]):
            cut = sequence.copy()
            cut[0, t] = 0
            out.append(np.linalg.norm(keras.ops.convert_to_numpy(copy(cut))[0, -1] - base) / np.linalg.norm(base))
        return np.array(out)

    with pytest.raises(AssertionError, match="forget shift 2.0"):
        ns["check_ex34"](every_gate)


# ---- chapter 4: the head as one convolution, and LSTM-COR assembled ------------------------------

def test_ex41_passes_the_solution_and_fails_a_bias_that_skips_the_flow_kernel(capsys):
    ns = chapter_defs("04_flow_head", "check_ex41", "compose_head")
    ns["check_ex41"](ns["compose_head"])
    assert capsys.readouterr().out.startswith("Correct")

    def bias_skipped(dw_kernel, dw_bias, flow_kernel, flow_bias):
        kernel, _ = ns["compose_head"](dw_kernel, dw_bias, flow_kernel, flow_bias)
        return kernel, flow_bias

    with pytest.raises(AssertionError, match="bias is not"):
        ns["check_ex41"](bias_skipped)

    def flipped(dw_kernel, dw_bias, flow_kernel, flow_bias):
        kernel, bias = ns["compose_head"](dw_kernel, dw_bias, flow_kernel, flow_bias)
        return kernel[::-1, ::-1], bias

    with pytest.raises(AssertionError, match="Tap a"):
        ns["check_ex41"](flipped)


def test_ex43_passes_the_solution_and_fails_ablated_or_miswired_networks(capsys):
    ns = chapter_defs("04_flow_head", "check_ex43", "my_lstmcor")
    ns["check_ex43"](ns["my_lstmcor"])
    assert capsys.readouterr().out.startswith("Correct")
    from lstmcor.models import build_lstmcor

    with pytest.raises(AssertionError, match="layers with weights"):
        ns["check_ex43"](lambda size: build_lstmcor(size, field_se=False))
    with pytest.raises(AssertionError, match="PeepholeConvLSTM2D"):
        ns["check_ex43"](lambda size: build_lstmcor(size, peepholes=False))

    def swapped(size):                                    # fixed and moving exchanged in the pair
        model = build_lstmcor(size)
        moving, fixed = model.inputs
        return keras.Model([fixed, moving], model.outputs)

    with pytest.raises(AssertionError, match="wired differently"):
        ns["check_ex43"](swapped)


@pytest.mark.parametrize("stem, check_name, answer", [
    ("01_squeeze_excitation", "check_ex12", "MySE"),
    ("03_convlstm_channels", "check_ex33", "my_convlstm_step"),
    ("03_convlstm_channels", "check_ex34", "memory_profile"),
    ("04_flow_head", "check_ex41", "compose_head"),
    ("04_flow_head", "check_ex43", "my_lstmcor"),
])
def test_an_unsolved_starter_gets_a_hint_not_a_traceback(stem, check_name, answer, capsys):
    from lstmcor.exercises import check

    ns = chapter_defs(stem, check_name, answer, *(["_run_steps"] if check_name == "check_ex33" else []), starters=True)
    with pytest.raises(AssertionError):
        ns[check_name](ns[answer])
    assert check(ns[check_name], ns[answer], exercise="N.k", strict=False) is False
    assert capsys.readouterr().out.startswith("Not yet (Exercise N.k): ")
