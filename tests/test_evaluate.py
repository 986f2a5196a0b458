"""Evaluation: analytic cases (identical images, zero field) and the written results."""
import json

import numpy as np
import pytest

from lstmcor.data import RegistrationSet, load_default
from lstmcor.evaluation import GROUPS, evaluate, load_weights, markdown_table, mean_hd95
from lstmcor.metrics import hd95
from lstmcor.models import build_voxelmorph
from lstmcor.transform import warp


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


class _TwoBrains:
    """A stand-in for the embedded set's truth: images 0, 1 come from brain "A", 2, 3 from "B".

    Two images of one brain are identical here, so the true field between them is zero.
    """

    def __len__(self):
        return 4

    def base_name(self, i):
        return "A" if i < 2 else "B"

    def pair_displacement(self, moving, fixed):
        same = self.base_name(moving) == self.base_name(fixed)
        return np.zeros((32, 48, 2), np.float32) if same else None


def _two_brain_set():
    data = _identical_set()
    other = np.random.default_rng(1).random(data.images.shape[1:], dtype=np.float32)
    data.images[2:] = other
    data.truth = _TwoBrains()
    return data


def test_same_and_cross_brain_rows(tmp_path):
    data = _two_brain_set()
    result = evaluate({"zero": _zero_field_model((32, 48))}, data, n_pairs=None, timing_runs=2, out=tmp_path,
                      progress=False)
    # 4 images of 4 subjects: 12 ordered pairs; 0<->1 and 2<->3 are the 4 same-brain ones
    assert list(result.summary) == ["identity", "zero"], "summary[method] stays the all-pairs row"
    assert list(result.groups) == list(GROUPS)
    for name in ("identity", "zero"):
        same, cross, everything = (result.groups["same brain"][name], result.groups["cross brain"][name],
                                   result.summary[name])
        assert (everything["pairs"], same["pairs"], cross["pairs"]) == (12, 4, 8)
        assert same["mse_mean"] == 0.0 and same["epe_mean"] == 0.0
        expected = float(np.mean((data.images[0] - data.images[2]) ** 2))
        assert cross["mse_mean"] == pytest.approx(expected, rel=1e-6)
        assert everything["mse_mean"] == pytest.approx(8 * expected / 12, rel=1e-6)
        assert np.isnan(cross["epe_mean"]), "two brains have no known true field"
        assert "seconds_median" in everything and "seconds_median" not in same
    assert {row["group"] for row in result.rows} == set(GROUPS)
    lines = result.table().splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| identity", "| identity [same brain]", "| identity [cross brain]",
        "| zero", "| zero [same brain]", "| zero [cross brain]"]
    assert lines[3].endswith("| n/a |"), "the group rows have no time of their own"
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["groups"]["same brain"]["zero"]["pairs"] == 4
    assert "group" in (tmp_path / "pairs.csv").read_text().splitlines()[0].split(",")


def test_no_groups_without_brains():
    result = evaluate({}, _identical_set(), n_pairs=3, timing_runs=1, progress=False)
    assert result.groups == {}
    assert len(result.table().splitlines()) == 3


def test_hd95_column():
    data = _identical_set()

    def shift(moving, fixed):
        field = np.zeros(moving.shape + (2,), np.float32)
        field[..., 1] = 3.0
        return field

    result = evaluate({"shift": shift}, data, n_pairs=2, timing_runs=1, progress=False)
    assert result.summary["identity"]["hd95_mean"] == 0.0
    moved = warp(data.labels[0], shift(data.images[0], None), "nearest")
    expected = float(np.mean(hd95(data.labels[1], moved, [1, 2])))
    assert expected > 0
    assert result.summary["shift"]["hd95_mean"] == pytest.approx(expected)
    assert "| HD95 (px) |" in result.table().splitlines()[0]


def test_mean_hd95_skips_a_lost_label():
    fixed = np.zeros((20, 20), int)
    fixed[3:10, 3:10] = 1
    fixed[12:18, 12:18] = 2
    moved = np.where(fixed == 1, 1, 0)
    moved = np.roll(moved, 3, axis=1)  # label 1 moved by 3 pixels, label 2 lost
    assert list(hd95(fixed, moved, [1, 2])) == [3.0, np.inf]
    assert mean_hd95(fixed, moved) == 3.0
    assert np.isnan(mean_hd95(fixed, np.zeros_like(fixed)))
    assert np.isnan(mean_hd95(np.zeros_like(fixed), moved)), "no foreground in the fixed map"


def test_sdlogj_column_is_learn2reg_inside_the_fixed_foreground():
    from lstmcor.evaluation import score_pair
    from lstmcor.metrics import sdlogj

    data = _identical_set()
    rows, cols = np.meshgrid(np.arange(32.0), np.arange(48.0), indexing="ij")
    flow = np.stack([0.1 * np.sin(rows / 3) * np.cos(cols / 5), 0.2 * np.sin(cols / 4)], -1).astype("float32")
    row = score_pair(data, 0, 1, flow)
    assert row["sdlogj"] == pytest.approx(sdlogj(flow, data.labels[1] > 0))
    assert row["sdlogj"] != pytest.approx(sdlogj(flow))


@pytest.mark.slow
def test_syn_cc_and_ssd_rows():
    data = _identical_set(shape=(64, 96))  # DIPY's CC needs 9 pixels a side at the coarsest of 3 levels
    result = evaluate({}, data, n_pairs=2, timing_runs=1, classical=("cc", "ssd"), progress=False)
    assert list(result.summary) == ["identity", "SyN (DIPY)", "SyN SSD (DIPY)"]
    for name in ("SyN (DIPY)", "SyN SSD (DIPY)"):
        assert result.summary[name]["dice_mean"] > 0.99, "identical images stay in place"
    assert list(evaluate({}, data, n_pairs=1, timing_runs=1, classical=True,
                         progress=False).summary) == ["identity", "SyN (DIPY)"]


@pytest.mark.parametrize("classical", ["mi", ("cc", "cc"), ["ssd", "xx"]])
def test_bad_classical(classical):
    with pytest.raises(ValueError, match="classical"):
        evaluate({}, _identical_set(), n_pairs=1, classical=classical, progress=False)
