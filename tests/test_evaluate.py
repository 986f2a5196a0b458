"""Evaluation: analytic cases (identical images, zero field) and the written results."""
import json

import numpy as np
import pytest

from lstmcor.data import RegistrationSet, load_default
from lstmcor.evaluation import evaluate, load_weights, markdown_table
from lstmcor.models import build_voxelmorph


def _identical_set(n=4, shape=(32, 48)):
    rng = np.random.default_rng(0)
    image = rng.random(shape, dtype=np.float32)
    labels = np.zeros(shape, np.int32)
    labels[4:20, 5:30] = 1
    labels[10:28, 20:44] = 2
    return RegistrationSet(
        images=np.repeat(image[None], n, 0), labels=np.repeat(labels[None], n, 0),
        subjects=[f"s{k}" for k in range(n)], splits={"test": np.arange(n)},
        label_names=["background", "a", "b"], name="identical",
    )


def _zero_field_model(shape):
    model = build_voxelmorph(shape)
    layer = model.get_layer("flow_conv")
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    return model


def test_identical_images_with_a_zero_field(tmp_path):
    data = _identical_set()
    result = evaluate({"zero": _zero_field_model((32, 48))}, data, n_pairs=6, timing_runs=3, out=tmp_path,
                      progress=False)
    assert list(result.summary) == ["identity", "zero"]
    for name in ("identity", "zero"):
        stats = result.summary[name]
        assert stats["dice_mean"] == 1.0
        assert stats["folding_mean"] == 0.0
        assert stats["mse_mean"] == 0.0 and stats["mae_mean"] == 0.0
        assert stats["dice_a_mean"] == 1.0 and stats["dice_b_mean"] == 1.0
    assert all(row["moving"] != row["fixed"] for row in result.rows)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["summary"]["zero"]["dice_mean"] == 1.0
    assert (tmp_path / "pairs.csv").read_text().count("\n") == 1 + 2 * 6
    assert "| identity |" in (tmp_path / "table.md").read_text()


def test_identity_row_and_ground_truth_on_default_data():
    data = load_default()
    pairs = {}

    def oracle(moving, fixed):
        """The true field of the pair being scored (zero where no truth is known)."""
        m, f = pairs[(moving.tobytes(), fixed.tobytes())]
        field = data.true_displacement(m, f)
        return np.zeros(moving.shape + (2,), np.float32) if field is None else field

    from lstmcor.data import pair_indices

    for m, f in pair_indices(data, "test", 12, seed=3):
        pairs[(data.images[m].tobytes(), data.images[f].tobytes())] = (m, f)
    result = evaluate({"truth": oracle}, data, n_pairs=12, seed=3, timing_runs=2, progress=False)
    identity, oracle_stats = result.summary["identity"], result.summary["truth"]
    assert identity["epe_mean"] > 2.0, "pairs should be a real registration problem"
    assert oracle_stats["epe_mean"] < 1e-5, "the true field has no error against itself"
    assert oracle_stats["dice_mean"] > identity["dice_mean"] + 0.1
    table = result.table()
    assert table.splitlines()[2].startswith("| identity |")


def test_markdown_table_layout():
    table = markdown_table({"m": {"mse_mean": 0.001227, "mse_std": 0.0001, "dice_mean": 0.7642, "dice_std": 0.01}})
    header, _, row = table.splitlines()
    assert header.startswith("| Approach | MSE | MAE | Dice")
    assert "0.00123 (0.00010)" in row and "0.7642 (0.0100)" in row and "n/a" in row


def test_bad_weights_and_sizes(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights"):
        load_weights(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="not a model saved by lstmcor"):
        load_weights(junk)
    with pytest.raises(ValueError, match="takes 64 x 64 images"):
        evaluate({"m": build_voxelmorph((64, 64))}, _identical_set(), n_pairs=2, progress=False)
