"""The course's constants in one place: presets, model names, learning rate, lambda, ablations.

Imported by the trainer, the command line, ``tools/run_course.py`` and the benchmark, so that a
number changed here changes everywhere. Plain Python (no Keras): reading it starts no backend.
How each value was chosen is in ``book/readings.md``.
"""
from __future__ import annotations

#: Training presets: epochs, batches per epoch, pairs per batch, validation batches per epoch.
PRESETS: dict[str, dict[str, int]] = {
    # seconds: for tests and for executing the notebooks in CI
    "ci": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "validation_steps": 1},
    # minutes on a laptop CPU: the notebooks' default; 500 steps, chosen by measurement so that both
    # networks visibly register (book/readings.md, "The quick preset")
    "quick": {"epochs": 20, "steps_per_epoch": 25, "batch_size": 8, "validation_steps": 4},
    # the paper's 900 epochs of batch 8; an epoch is 188 batches, one pass over 1,500 scans
    "paper": {"epochs": 900, "steps_per_epoch": 188, "batch_size": 8, "validation_steps": 10},
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)

#: The two networks, by the name the command line and the trainer take.
MODEL_NAMES: tuple[str, ...] = ("lstmcor", "voxelmorph")

#: Adam's step size (paper 3: "10e-4", read literally as 1e-3, which measured better than
#: VoxelMorph's 1e-4 for both networks; see book/readings.md, "Learning rate").
LEARNING_RATE = 1e-3
#: Weight of the smoothness term of Eq. 23 with the paper's MSE. First VoxelMorph's advice, 0.01;
#: 0.003 had the higher validation Dice on two training seeds (book/readings.md, "Weight lambda").
LAMBDA = 0.003
#: The image similarity of the loss: the paper's MSE (Eq. 21), or local normalised cross-correlation.
LOSSES: tuple[str, ...] = ("mse", "ncc")
#: The smoothness weight each similarity gets when none is given. NCC lies in [-1, 0] and wants its
#: own: 0.3 had the highest validation Dice of 0.3, 1 and 3 (book/readings.md, "Weight lambda").
#: Both were measured at the ``quick`` budget; the ``paper`` budget has not been swept.
LAMBDAS: dict[str, float] = {"mse": LAMBDA, "ncc": 0.3}
#: The splits a sweep may score: the test pairs, or the validation pairs to choose lambda on.
SWEEP_SPLITS: tuple[str, ...] = ("test", "val")

#: LSTM-COR's ablation switches: builder argument -> (its value in the paper, command-line flag,
#: the flag's value that switches the addition off, help).
ABLATIONS: dict[str, tuple[object, str, object, str]] = {
    "se_skips": (True, "--no-se-skips", False, "no squeeze-and-excitation on the skips"),
    "funnel": (True, "--no-funnel", False, "no funnel connection"),
    "recurrence": ("convlstm", "--recurrence", "conv", "ConvLSTM over channels, or a plain conv in its place"),
    "peepholes": (True, "--no-peepholes", False, "ConvLSTM without peephole terms"),
    "field_se": (True, "--no-field-se", False, "no SE weighting of the field"),
}
#: The shipped ablation models (data/weights/<name>.keras) and the switch each turns off.
ABLATION_RUNS: dict[str, dict[str, object]] = {
    "lstmcor_no_se_skips": {"se_skips": False},
    "lstmcor_no_funnel": {"funnel": False},
    "lstmcor_conv": {"recurrence": "conv"},
    "lstmcor_no_peepholes": {"peepholes": False},
    "lstmcor_no_field_se": {"field_se": False},
}
