"""tools/score_weights.py: three untrained models at 160 x 192 scored on 2 test pairs, the files it
writes, and its numbers against an independent computation on the same pairs."""
from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

from lstmcor.data import load_default, pair_indices
from lstmcor.metrics import mean_dice
from lstmcor.models import build_model
from lstmcor.transform import warp

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("score_weights", ROOT / "tools" / "score_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_file_names_and_order(tmp_path):
    for name in ["lstmcor_conv.keras", "lstmcor_seed2.keras", "voxelmorph_seed1.keras", "lstmcor.keras",
                 "voxelmorph.keras", "lstmcor_ncc_l03.keras", "notes.txt"]:
        (tmp_path / name).touch()
    found = [(v, s, p.name) for v, s, p in _tool().find_models(tmp_path)]
    assert found == [("voxelmorph", 0, "voxelmorph.keras"), ("voxelmorph", 1, "voxelmorph_seed1.keras"),
                     ("lstmcor", 0, "lstmcor.keras"), ("lstmcor", 2, "lstmcor_seed2.keras"),
                     ("lstmcor_conv", 0, "lstmcor_conv.keras"), ("lstmcor_ncc_l03", 0, "lstmcor_ncc_l03.keras")]


@pytest.mark.slow
def test_scores_files_and_an_independent_dice(tmp_path):
    models = {}
    # VoxelMorph's architecture under all three names: the tool goes by file name, and it is the fast one
    for name, seed in [("voxelmorph", 0), ("voxelmorph_seed1", 1), ("lstmcor", 2)]:
        keras.utils.set_random_seed(seed)
        models[name] = build_model("voxelmorph")
        models[name].save(tmp_path / f"{name}.keras")
    (tmp_path / "lstmcor.state.json").write_text('{"epochs_done": 7}')
    out = tmp_path / "scores"
    assert _tool().main([str(tmp_path), "--out", str(out), "--pairs", "2", "--timing-runs", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pairs.csv", "runs.csv", "table.md", "tests.md"]
    runs = list(csv.DictReader(open(out / "runs.csv")))
    assert [(r["variant"], r["seed"], r["epochs"]) for r in runs] == [
        ("identity", "0", ""), ("voxelmorph", "0", ""), ("voxelmorph", "1", ""), ("lstmcor", "0", "7")]

    dataset = load_default()
    pairs = pair_indices(dataset, "test", 2, 0)
    identity = np.mean([mean_dice(dataset.labels[f], dataset.labels[m]) for m, f in pairs])
    moved = []
    for m, f in pairs:
        _, flow = models["voxelmorph_seed1"].predict_on_batch([dataset.images[m][None, ..., None],
                                                               dataset.images[f][None, ..., None]])
        moved.append(mean_dice(dataset.labels[f], warp(dataset.labels[m], np.asarray(flow)[0], "nearest")))
    assert float(runs[0]["dice"]) == pytest.approx(identity, abs=1e-9)
    assert float(runs[2]["dice"]) == pytest.approx(np.mean(moved), abs=1e-6)
    assert len(list(csv.DictReader(open(out / "pairs.csv")))) == 2 * 4

    table = (out / "table.md").read_text()
    assert "| variant | seeds | dice | hd95 | folding | sdlogj | mse | ms |" in table
    dice = [float(r["dice"]) for r in runs[1:3]]
    assert f"| voxelmorph | 2 | {np.mean(dice):.4f} +/- {np.std(dice, ddof=1):.4f} |" in table
    tests = (out / "tests.md").read_text()
    assert "## Against voxelmorph" in tests and "## Against lstmcor" in tests
    # lstmcor has seed 0 only: it is paired with voxelmorph's seed 0
    difference = float(runs[3]["dice"]) - float(runs[1]["dice"])
    assert f"| lstmcor - voxelmorph | {difference:+.4f} | nan | n/a (one seed) |" in tests
    assert tests.rstrip().endswith(" | 0 |")


@pytest.mark.slow
def test_split_val_scores_validation_pairs(tmp_path):
    keras.utils.set_random_seed(0)
    build_model("voxelmorph").save(tmp_path / "voxelmorph.keras")
    out = tmp_path / "scores"
    assert _tool().main([str(tmp_path), "--out", str(out), "--pairs", "3", "--timing-runs", "1", "--split", "val"]) == 0
    dataset = load_default()
    val, test = pair_indices(dataset, "val", 3, 0), pair_indices(dataset, "test", 3, 0)
    assert set(val).isdisjoint(test)
    scored = {(int(r["moving"]), int(r["fixed"])) for r in csv.DictReader(open(out / "pairs.csv"))}
    assert scored == {(int(m), int(f)) for m, f in val}
    identity = np.mean([mean_dice(dataset.labels[f], dataset.labels[m]) for m, f in val])
    assert float(next(csv.DictReader(open(out / "runs.csv")))["dice"]) == pytest.approx(identity, abs=1e-9)
    assert "over 3 val pairs" in (out / "tests.md").read_text()
