"""Seed sweeps: the tables' numbers against hand computations, and one tiny sweep end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import wilcoxon

from lstmcor.sweep import MEASURES, choose_lambda, lambda_variants, paired_tests, seed_table, sweep, variants


def test_variants_table():
    assert variants(["voxelmorph"]) == {"voxelmorph": ("voxelmorph", {})}
    assert variants(["lstmcor"], ["no_funnel", "conv"]) == {
        "lstmcor": ("lstmcor", {}), "lstmcor_no_funnel": ("lstmcor", {"funnel": False}),
        "lstmcor_conv": ("lstmcor", {"recurrence": "conv"})}
    with pytest.raises(ValueError, match="unknown ablation 'wings'"):
        variants(["lstmcor"], ["wings"])
    with pytest.raises(ValueError, match="unknown model"):
        variants(["unet"])


@pytest.mark.parametrize("lams, expected", [
    (None, {"voxelmorph": ("voxelmorph", None)}),
    ([0.02], {"voxelmorph": ("voxelmorph", 0.02)}),          # one weight: the name stays
    ([0.3, 1.0, 3.0], {"voxelmorph_lam0.3": ("voxelmorph", 0.3), "voxelmorph_lam1": ("voxelmorph", 1.0),
                       "voxelmorph_lam3": ("voxelmorph", 3.0)}),
])
def test_lambda_variants_table(lams, expected):
    assert lambda_variants(["voxelmorph"], lams) == expected


@pytest.mark.parametrize("lams, words", [([0.1, 0.1], "given twice"), ([-1.0, 1.0], ">= 0"),
                                         ([float("nan"), 1.0], "finite")])
def test_lambda_variants_refuses(lams, words):
    with pytest.raises(ValueError, match=words):
        lambda_variants(["voxelmorph"], lams)


def test_choose_lambda_is_the_highest_mean_dice_over_seeds():
    runs = lambda_variants(["voxelmorph"], [0.3, 1.0, 3.0])
    dice = {"voxelmorph_lam0.3": [0.70, 0.74], "voxelmorph_lam1": [0.73, 0.73], "voxelmorph_lam3": [0.71, 0.72]}
    rows = [{"variant": n, "seed": s, "dice": d, "folding": 0.5 * s}
            for n, ds in dice.items() for s, d in enumerate(ds)]
    # means: 0.72, 0.73, 0.715 -> lambda 1, whose folding is the mean of 0 and 0.5
    line = choose_lambda(rows, runs, "val")
    assert line == ("- voxelmorph: lambda 1 has the highest mean Dice on the val split, 0.7300 (folding 0.250 %); "
                    "the others 0.3: 0.7200, 3: 0.7150.")
    assert choose_lambda(rows[:2], lambda_variants(["voxelmorph"], [0.3]), "val") == ""  # one weight: no choice


def test_seed_table_is_mean_and_sample_std():
    rows = [{"variant": "a", "seed": s, **{m: v for m in MEASURES}} for s, v in enumerate([0.5, 0.7, 0.9])]
    table = seed_table(rows)
    # mean 0.7, sample std sqrt(((0.2)^2 + 0 + 0.2^2) / 2) = 0.2
    assert "| a | 3 | 0.7000 +/- 0.2000 |" in table


def test_paired_tests_by_hand():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.7, 20)
    per_pair = {("ref", 0): base, ("ref", 1): base + 0.01,
                ("better", 0): base + 0.05, ("better", 1): base + 0.07}
    line = [row for row in paired_tests(per_pair, [0, 1]).splitlines() if row.startswith("| better")][0]
    cells = [c.strip() for c in line.strip("|").split("|")]
    # differences per seed: 0.05 and 0.06 -> mean 0.055, sample std 0.00707
    assert cells[1] == "+0.0550" and cells[2] == "0.0071" and cells[3] == "yes"
    expected_p = wilcoxon(base + 0.06, base + 0.005).pvalue
    assert float(cells[4]) == pytest.approx(expected_p, rel=1e-2)


def test_paired_tests_with_one_seed_cannot_say():
    base = np.linspace(0.5, 0.7, 12)
    per_pair = {("ref", 0): base, ("better", 0): base + 0.05}
    line = [row for row in paired_tests(per_pair, [0]).splitlines() if row.startswith("| better")][0]
    cells = [c.strip() for c in line.strip("|").split("|")]
    # one seed: no seed-to-seed spread, so the table cannot say the gap exceeds it (nor that it does not)
    assert cells[1] == "+0.0500" and cells[2] == "nan" and cells[3] == "n/a (one seed)"


@pytest.mark.slow
def test_a_tiny_sweep_end_to_end_and_resumes(tmp_path, tiny):
    result = sweep(["voxelmorph"], [0, 1], preset="ci", data=tiny, out=tmp_path, n_pairs=4, progress=False)
    assert [(r["variant"], r["seed"]) for r in result.runs] == [("voxelmorph", 0), ("voxelmorph", 1)]
    assert (tmp_path / "table.md").read_text().startswith("| variant |")
    assert all(0.0 < r["dice"] <= 1.0 for r in result.runs)
    stamp = (tmp_path / "voxelmorph-s0" / "model.keras").stat().st_mtime_ns
    again = sweep(["voxelmorph"], [0, 1], preset="ci", data=tiny, out=tmp_path, n_pairs=4, progress=False)
    assert (tmp_path / "voxelmorph-s0" / "model.keras").stat().st_mtime_ns == stamp  # complete runs are kept
    assert [r["dice"] for r in again.runs] == [r["dice"] for r in result.runs]


@pytest.mark.slow
def test_a_tiny_lambda_sweep_on_the_validation_split(tmp_path, tiny):
    result = sweep(["voxelmorph"], [0], preset="ci", data=tiny, out=tmp_path, n_pairs=3, progress=False,
                   lams=[0.0, 10.0], split="val")
    assert [r["variant"] for r in result.runs] == ["voxelmorph_lam0", "voxelmorph_lam10"]
    for run, lam in (("voxelmorph_lam0-s0", 0.0), ("voxelmorph_lam10-s0", 10.0)):
        assert json.loads((tmp_path / run / "state.json").read_text())["lambda"] == lam
    best = max(result.runs, key=lambda r: r["dice"])["variant"].removeprefix("voxelmorph_lam")
    assert (tmp_path / "lambda.md").read_text().startswith(f"- voxelmorph: lambda {best} has the highest mean "
                                                           "Dice on the val split")
    with pytest.raises(ValueError, match="split must be 'test' or 'val'"):
        sweep(["voxelmorph"], [0], data=tiny, out=tmp_path / "x", split="train")
    with pytest.raises(ValueError, match="give lambda once"):
        sweep(["voxelmorph"], [0], data=tiny, out=tmp_path / "x", lams=[1.0], train_options={"lam": 1.0})
    assert not (tmp_path / "x").exists()


def test_shipped_seeds_reads_the_names_train_weights_sh_writes(tmp_path, monkeypatch):
    from lstmcor.saving import shipped_seeds

    for name in ("voxelmorph", "voxelmorph_seed2", "voxelmorph_seed10", "voxelmorph_seedx", "voxelmorph_ncc",
                 "lstmcor_seed1"):
        (tmp_path / f"{name}.keras").write_bytes(b"")
    monkeypatch.setenv("LSTMCOR_WEIGHTS_DIR", str(tmp_path))
    assert shipped_seeds("voxelmorph") == {0: tmp_path / "voxelmorph.keras", 2: tmp_path / "voxelmorph_seed2.keras",
                                           10: tmp_path / "voxelmorph_seed10.keras"}
    assert shipped_seeds("lstmcor") == {1: tmp_path / "lstmcor_seed1.keras"}  # no seed 0 shipped
    assert shipped_seeds("voxelmorph_diffeo") == {}


@pytest.mark.slow
def test_compare_shipped_seeds_pairs_each_seed_with_its_own(tmp_path, monkeypatch, tiny):
    """Two seeds of each network (32 x 32, random flow heads): the per-seed gaps are those of the
    models' own mean Dice, scored apart; with one seed in common nothing is scored and the sentence
    says so. The files are found by name only, so small VoxelMorphs stand in for both (fast)."""
    import keras

    from lstmcor.evaluation import evaluate
    from lstmcor.models import build_model
    from lstmcor.sweep import compare_shipped_seeds

    files = {"voxelmorph": "a", "voxelmorph_seed1": "b", "lstmcor": "c", "lstmcor_seed1": "d"}
    for k, (stem, tag) in enumerate(files.items()):
        keras.utils.set_random_seed(k)
        model = build_model("voxelmorph", input_shape=(32, 32))
        flow = model.get_layer("flow_conv")   # a field that moves pixels, different for each file
        kernel, bias = flow.get_weights()
        flow.set_weights([np.random.default_rng(k).normal(0, 0.3, kernel.shape).astype("float32"), bias])
        model.save(tmp_path / f"{stem}.keras")
    monkeypatch.setenv("LSTMCOR_WEIGHTS_DIR", str(tmp_path))
    result = compare_shipped_seeds(tiny, n_pairs=3)
    assert result.seeds == [0, 1]
    apart = evaluate({tag: tmp_path / f"{stem}.keras" for stem, tag in files.items()}, tiny, "test", 3,
                     timing_runs=1, progress=False)
    dice = {tag: apart.summary[tag]["dice_mean"] for tag in files.values()}
    np.testing.assert_allclose(result.differences, [dice["c"] - dice["a"], dice["d"] - dice["b"]], atol=1e-6)
    assert f"{result.differences.mean():+.4f}" in result.sentence
    assert result.table.count("| voxelmorph | 2 |") == 1 and "| lstmcor |" in result.tests

    (tmp_path / "lstmcor_seed1.keras").unlink()
    single = compare_shipped_seeds(tiny, n_pairs=3)
    assert single.seeds == [0] and single.table == "" and single.sentence.startswith("One shipped training each")
