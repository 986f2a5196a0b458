"""``lstmcor sweep``: its help, its one-line errors, what it hands to :func:`lstmcor.sweep.sweep`, one tiny sweep."""
from __future__ import annotations

from pathlib import Path

import pytest

import lstmcor.sweep
from lstmcor.cli import main
from lstmcor.sweep import SweepResult


def test_help_explains_and_shows_examples(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for words in ("--models", "--seeds", "--ablations", "--integration-steps", "seed-to-seed", "examples:",
                  "lstmcor sweep --models voxelmorph lstmcor --seeds 0 1 2", "tests.md", "no_funnel",
                  "--split val", "lambda.md", "--lam 0.3 1 3"):
        assert words in out, words
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "sweep" in capsys.readouterr().out


def test_an_unknown_ablation_is_one_line_naming_the_valid_ones(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", "--models", "lstmcor", "--seeds", "0", "--ablations", "no_funnel", "wings",
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lstmcor sweep: error: unknown ablation 'wings'")
    for name in ("no_se_skips", "no_funnel", "conv", "no_peepholes", "no_field_se"):
        assert name in err
    assert not out.exists()  # nothing trained, nothing written


def test_the_flags_reach_sweep(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_sweep(models, seeds, ablations=None, **kwargs):
        seen.update(models=models, seeds=seeds, ablations=ablations, **kwargs)
        return SweepResult([], "| variant | table |", "| variant - voxelmorph | tests |", Path(kwargs["out"]))

    monkeypatch.setattr(lstmcor.sweep, "sweep", fake_sweep)
    out = tmp_path / "s"
    assert main(["sweep", "--models", "voxelmorph", "lstmcor", "--seeds", "0", "1", "--ablations", "conv",
                 "--preset", "ci", "--out", str(out), "--pairs", "4", "--lr", "0.001", "--loss", "ncc",
                 "--integration-steps", "7", "--lam", "0.3", "1", "--split", "val"]) == 0
    assert seen["models"] == ["voxelmorph", "lstmcor"] and seen["seeds"] == [0, 1] and seen["ablations"] == ["conv"]
    assert seen["preset"] == "ci" and seen["n_pairs"] == 4 and Path(seen["out"]) == out
    assert seen["train_options"] == {"learning_rate": 0.001, "loss": "ncc"}  # only the flags given
    assert seen["model_options"] == {"integration_steps": 7}
    assert seen["lams"] == [0.3, 1.0] and seen["split"] == "val"
    printed = capsys.readouterr().out
    assert "| variant | table |" in printed and "| variant - voxelmorph | tests |" in printed
    assert f"results written to {out}" in printed
    assert main(["sweep", "--models", "voxelmorph", "--seeds", "0", "--integration-steps", "-1", "--out",
                 str(out)]) == 2
    assert "--integration-steps must be 0 or more" in capsys.readouterr().err
    assert main(["sweep", "--models", "voxelmorph", "--seeds", "0", "--lam", "1", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "given twice" in err, err


def test_sweep_model_options_go_to_every_variant(tmp_path, monkeypatch):
    import lstmcor.training

    calls = []

    class Stop(Exception):
        pass

    def fake_train(model, preset, data, out, **kwargs):
        calls.append((model, kwargs["model_options"]))
        raise Stop()

    monkeypatch.setattr(lstmcor.training, "train", fake_train)
    for ablations in (None, ["no_funnel"]):
        with pytest.raises(Stop):
            lstmcor.sweep.sweep(["voxelmorph"] if ablations is None else [], [0], ablations, preset="ci",
                                out=tmp_path, progress=False, model_options={"integration_steps": 7})
    assert calls == [("voxelmorph", {"integration_steps": 7}),
                     ("lstmcor", {"funnel": False, "integration_steps": 7})]


@pytest.mark.slow
def test_a_tiny_sweep_from_the_command_line(tmp_path, tiny_folder, capsys):
    # in this process, on 32 x 32 images, one seed: the sweep itself (seeds, resuming) is tests/test_sweep.py's
    out = tmp_path / "X"
    assert main(["sweep", "--models", "voxelmorph", "--seeds", "3", "--preset", "ci", "--data", str(tiny_folder),
                 "--pairs", "2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "table.md").is_file() and (out / "tests.md").is_file() and (out / "runs.csv").is_file()
    assert (out / "voxelmorph-s3" / "model.keras").is_file()
    assert (out / "table.md").read_text().count("| voxelmorph | 1 |") == 1
    assert len((out / "tests.md").read_text().strip().splitlines()) == 2  # one variant: the header alone
    printed = capsys.readouterr().out
    assert (out / "table.md").read_text().strip() in printed
    assert f"results written to {out}" in printed
