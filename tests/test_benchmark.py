"""benchmarks/inference.py: its multiply-add count against a hand count, and one tiny run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lstmcor.models import build_lstmcor, build_voxelmorph

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("inference_benchmark", ROOT / "benchmarks" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def conv_macs(height, width, cin, cout, k=3):
    return height * width * k * k * cin * cout


def test_multiply_adds_of_voxelmorph_match_a_hand_count(bench):
    # book/readings.md: encoder [16, 32, 32, 32], decoder [32, 32, 32, 32, 32, 16, 16], flow conv to 2.
    s = 32
    expected = (
        conv_macs(s, s, 2, 16)
        + conv_macs(s // 2, s // 2, 16, 32)
        + conv_macs(s // 4, s // 4, 32, 32)
        + conv_macs(s // 8, s // 8, 32, 32)
        + conv_macs(s // 16, s // 16, 32, 32)  # bottleneck
        + conv_macs(s // 8, s // 8, 64, 32)  # each decoder conv sees upsampled + skip
        + conv_macs(s // 4, s // 4, 64, 32)
        + conv_macs(s // 2, s // 2, 64, 32)
        + conv_macs(s, s, 32 + 16, 32)
        + conv_macs(s, s, 32, 16)
        + conv_macs(s, s, 16, 16)
        + conv_macs(s, s, 16, 2)
    )
    assert bench.multiply_adds(build_voxelmorph((s, s))) == expected


def test_multiply_adds_count_the_convlstm_steps(bench):
    s, steps, filters = 32, 16, 4
    with_lstm = bench.multiply_adds(build_lstmcor((s, s)))
    with_conv = bench.multiply_adds(build_lstmcor((s, s), recurrence="conv"))
    # Step 1 has no recurrent term (H_0 = 0); steps 2..16 add the 4 -> 16 recurrent convolution.
    lstm = steps * conv_macs(s, s, 1, 4 * filters) + (steps - 1) * conv_macs(s, s, filters, 4 * filters)
    plain = conv_macs(s, s, steps, steps * filters)
    assert with_lstm - with_conv == lstm - plain


def test_a_tiny_run_writes_figures_and_ratios(bench, tmp_path):
    out = tmp_path / "figures.json"
    argv = ["--size", "32", "32", "--pairs", "2", "--train-steps", "1", "--batch", "2", "--warmup", "1"]
    argv += ["--models", "voxelmorph", "lstmcor-floor", "--json", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["inference"]) == {"voxelmorph", "lstmcor-floor"}
    assert result["ratio_inference"]["voxelmorph"] == pytest.approx(1.0)
    assert result["ratio_multiply_adds"]["lstmcor-floor"] == pytest.approx(
        result["multiply_adds"]["lstmcor-floor"] / result["multiply_adds"]["voxelmorph"]
    )
    assert result["multiply_adds"]["lstmcor-floor"] > result["multiply_adds"]["voxelmorph"]
    assert all(v["median_ms"] > 0 for v in result["inference"].values())
