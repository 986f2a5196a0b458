"""Seed sweeps: the tables' numbers against hand computations, and one tiny sweep end to end."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import wilcoxon

from lstmcor.sweep import MEASURES, paired_tests, seed_table, sweep, variants


def test_variants_table():
    assert variants(["voxelmorph"]) == {"voxelmorph": ("voxelmorph", {})}
    assert variants(["lstmcor"], ["no_funnel", "conv"]) == {
        "lstmcor": ("lstmcor", {}), "lstmcor_no_funnel": ("lstmcor", {"funnel": False}),
        "lstmcor_conv": ("lstmcor", {"recurrence": "conv"})}
    with pytest.raises(ValueError, match="unknown ablation 'wings'"):
        variants(["lstmcor"], ["wings"])
    with pytest.raises(ValueError, match="unknown model"):
        variants(["unet"])


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
