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
