"""Seed sweeps: train models x seeds (x ablations), score them on the same test pairs, and say
whether each difference between variants exceeds the seed-to-seed variation.

One network trained once is one draw: another seed moves its Dice by about as much as some of
the paper's ablations. :func:`sweep` trains every variant with every seed (one after another, in
one run folder each, skipping runs that are already complete so a sweep can be resumed), scores
all of them on the same seeded test pairs, and writes

- ``runs.csv``: one row per variant and seed (the mean of each measure over the pairs);
- ``table.md``: mean +/- std over seeds per variant;
- ``tests.md``: for each variant against the reference (the first one), the difference of mean
  Dice with its seed-to-seed std, and a paired Wilcoxon signed-rank test over the test pairs of
  the per-pair Dice averaged over seeds (``scipy.stats.wilcoxon``);
- ``lambda.md``, when several smoothness weights are swept (``lams``): the weight with the highest
  mean Dice for each network, with its folding beside it (:func:`choose_lambda`).

Lambda is chosen on the validation split (``split="val"``) and reported on the test split: a weight
picked by its test score would flatter the test score.

Example:
    >>> from lstmcor.sweep import variants
    >>> sorted(variants(["voxelmorph", "lstmcor"], ["no_funnel"]))
    ['lstmcor', 'lstmcor_no_funnel', 'voxelmorph']
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from lstmcor.data import RegistrationSet, load_dataset
from lstmcor.settings import ABLATION_RUNS, MODEL_NAMES, SWEEP_SPLITS

MEASURES = ("dice", "hd95", "folding", "sdlogj", "mse")


def variants(models: list[str], ablations: list[str] | None = None) -> dict[str, tuple[str, dict]]:
    """``name -> (model, model_options)`` for the models and the LSTM-COR ablations asked for.

    Ablations are named as in :data:`lstmcor.settings.ABLATION_RUNS` without the ``lstmcor_``
    prefix (``no_funnel``, ``conv``, ...).
    """
    out: dict[str, tuple[str, dict]] = {}
    for model in models:
        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model {model!r}: choose from {', '.join(MODEL_NAMES)}.")
        out[model] = (model, {})
    for ablation in ablations or []:
        name = f"lstmcor_{ablation}"
        if name not in ABLATION_RUNS:
            known = ", ".join(k.removeprefix("lstmcor_") for k in ABLATION_RUNS)
            raise ValueError(f"unknown ablation {ablation!r}: choose from {known}.")
        out[name] = ("lstmcor", dict(ABLATION_RUNS[name]))
    return out


@dataclasses.dataclass
class SweepResult:
    """Per-run scores, the per-variant table and the tests against the reference variant."""

    runs: list[dict]
    table: str
    tests: str
    out: Path
    choice: str = ""


def lambda_variants(names: list[str], lams: list[float] | None) -> dict[str, tuple[str, float | None]]:
    """``run name -> (variant, lambda)``: with two or more weights each variant is trained once per
    weight and named ``<variant>_lam<lambda>``; with one (or none) the names stay as they are.

    Example:
        >>> lambda_variants(["voxelmorph"], [0.3, 1.0])
        {'voxelmorph_lam0.3': ('voxelmorph', 0.3), 'voxelmorph_lam1': ('voxelmorph', 1.0)}
    """
    lams = list(lams or [])
    if any(not np.isfinite(lam) or lam < 0 for lam in lams):
        raise ValueError(f"every smoothness weight lambda must be a finite number >= 0, got {lams}.")
    if len(set(lams)) != len(lams):
        raise ValueError(f"a smoothness weight is given twice in {lams}: give each once.")
    if len(lams) < 2:
        return {name: (name, lams[0] if lams else None) for name in names}
    return {f"{name}_lam{lam:g}": (name, lam) for name in names for lam in lams}


def choose_lambda(rows: list[dict], runs: dict[str, tuple[str, float | None]], split: str = "test") -> str:
    """Markdown: for each variant swept over several weights, the lambda of highest mean Dice over
    seeds, with its folding; the rows are those of :func:`seed_scores` (``variant`` is the run name),
    ``runs`` is :func:`lambda_variants`'s mapping of run name to ``(variant, lambda)``.

    Dice decides (as VoxelMorph chose its weights); folding is printed beside it because a weaker
    regulariser buys Dice with folds, which the diffeomorphic variants avoid by construction.
    """
    lines = []
    for variant in dict.fromkeys(v for v, lam in runs.values() if lam is not None):
        names = [n for n, (v, lam) in runs.items() if v == variant]
        if len(names) < 2:
            continue
        mean = {n: {m: float(np.mean([r[m] for r in rows if r["variant"] == n])) for m in ("dice", "folding")}
                for n in names}
        best = max(names, key=lambda n: mean[n]["dice"])
        others = ", ".join(f"{runs[n][1]:g}: {mean[n]['dice']:.4f}" for n in names if n != best)
        lines.append(f"- {variant}: lambda {runs[best][1]:g} has the highest mean Dice on the {split} split, "
                     f"{mean[best]['dice']:.4f} (folding {mean[best]['folding']:.3f} %); the others {others}.")
    return "\n".join(lines)


def _complete(run: Path, epochs: int) -> bool:
    state = run / "state.json"
    if not (run / "model.keras").is_file() or not state.is_file():
        return False
    try:
        return int(json.loads(state.read_text()).get("epochs_done", -1)) >= epochs
    except (ValueError, json.JSONDecodeError):
        return False


def sweep(models: list[str], seeds: list[int], ablations: list[str] | None = None, preset: str = "quick",
          data: str | os.PathLike | RegistrationSet = "default", out: str | os.PathLike = "runs/sweep",
          n_pairs: int = 32, train_options: dict | None = None, progress: bool = True,
          model_options: dict | None = None, lams: list[float] | None = None,
          split: str = "test") -> SweepResult:
    """Train every variant with every seed, score them on the same test pairs, write the tables.

    Args:
        models: network names (``"voxelmorph"``, ``"lstmcor"``); the first variant is the reference.
        seeds: training seeds (3 or more for a std).
        ablations: LSTM-COR ablations to add (``"no_funnel"``, ``"conv"``, ...).
        preset, data: as :func:`lstmcor.training.train`.
        out: the sweep folder; run ``<variant>-s<seed>`` lives in ``out/<variant>-s<seed>``.
        n_pairs: seeded test pairs scored for every run (the same pairs for all).
        train_options: more keyword arguments of :func:`lstmcor.training.train` (``learning_rate``, ...).
        progress: print one line per run.
        model_options: builder arguments given to every variant, over its own (e.g.
            ``{"integration_steps": 7}`` to compare the diffeomorphic versions of all of them).
        lams: smoothness weights; two or more train every variant once per weight
            (:func:`lambda_variants`) and write the choice to ``lambda.md`` (:func:`choose_lambda`).
        split: the split scored, ``"test"`` or ``"val"`` (to choose lambda without seeing the test pairs).
    """
    from lstmcor.evaluation import evaluate
    from lstmcor.saving import load_model
    from lstmcor.settings import PRESETS
    from lstmcor.training import train

    if not seeds:
        raise ValueError("give at least one seed (three or more for a spread).")
    if split not in SWEEP_SPLITS:
        raise ValueError(f"split must be 'test' or 'val', got {split!r}.")
    if lams and "lam" in (train_options or {}):
        raise ValueError("give lambda once: either lams or train_options['lam'], not both.")
    specs = variants(models, ablations)
    runs = lambda_variants(list(specs), lams)
    out = Path(out)
    dataset = data if isinstance(data, RegistrationSet) else load_dataset(data)
    epochs = int((train_options or {}).get("epochs") or PRESETS[preset]["epochs"])
    table_rows, per_pair = [], {}
    for name, (variant, lam) in runs.items():
        model, options = specs[variant]
        options = {**options, **(model_options or {})}
        given = {**(train_options or {}), **({"lam": lam} if lam is not None else {})}
        for seed in seeds:
            run = out / f"{name}-s{seed}"
            if not _complete(run, epochs):
                resume = (run / "state.json").is_file()
                train(model, preset, dataset, run, seed=seed, model_options=options, resume=resume, verbose=0, **given)
            scored = evaluate({name: load_model(run / "model.keras")}, dataset, split, n_pairs, seed=0,
                              timing_runs=3, progress=False)
            rows, dice = seed_scores(scored, {name: (name, seed)})
            table_rows += rows
            per_pair.update(dice)
            row = rows[0]
            if progress:
                print(f"sweep: {name} seed {seed}: Dice {row['dice']:.4f}, folding {row['folding']:.3f} %")
    result = SweepResult(table_rows, seed_table(table_rows), paired_tests(per_pair, seeds), out,
                         choose_lambda(table_rows, runs, split))
    write(result)
    return result


def seed_scores(scored, runs: dict[str, tuple[str, int]]) -> tuple[list[dict], dict[tuple[str, int], np.ndarray]]:
    """The rows of :func:`seed_table` and the per-pair Dice of :func:`paired_tests` from one evaluation.

    Args:
        scored: a :class:`lstmcor.evaluation.Evaluation` (``summary`` and ``rows``).
        runs: ``{method name in scored: (variant, seed)}``, e.g. ``{"lstmcor s1": ("lstmcor", 1)}``.

    Returns:
        ``(rows, per_pair)``: one row per run (variant, seed and the mean of each of
        :data:`MEASURES`), and ``{(variant, seed): Dice of each test pair, in the pairs' order}``.
    """
    rows, per_pair = [], {}
    for method, (variant, seed) in runs.items():
        summary = scored.summary[method]
        rows.append({"variant": variant, "seed": seed, **{m: summary.get(f"{m}_mean", float("nan")) for m in MEASURES}})
        per_pair[(variant, seed)] = np.array([r["dice"] for r in scored.rows if r["method"] == method])
    return rows, per_pair


@dataclasses.dataclass
class SeedComparison:
    """Two shipped networks over the seeds shipped for both (:func:`compare_shipped_seeds`)."""

    seeds: list[int]
    table: str                 # mean +/- std over seeds (empty with fewer than two seeds)
    tests: str                 # the second network against the first (empty likewise)
    differences: np.ndarray    # per seed: mean Dice of the second minus the first
    sentence: str              # the verdict in words, from the numbers


def compare_shipped_seeds(data: str | os.PathLike | RegistrationSet = "default", n_pairs: int | None = 32,
                          seed: int = 0, first: str = "voxelmorph", second: str = "lstmcor",
                          measures: tuple[str, ...] = ("dice", "hd95", "folding", "sdlogj")) -> SeedComparison:
    """Score every seed shipped for both networks on the same test pairs; does the gap exceed the seed spread?

    The shipped trainings are found by :func:`lstmcor.saving.shipped_seeds` (``<name>_seed<k>.keras``
    beside ``<name>.keras``). With fewer than two seeds shipped for both, nothing is scored and the
    sentence says that one training each cannot separate an effect from the draw.
    """
    from lstmcor.evaluation import evaluate
    from lstmcor.saving import shipped_seeds

    found = {name: shipped_seeds(name) for name in (first, second)}
    seeds = sorted(set(found[first]) & set(found[second]))
    if len(seeds) < 2:
        return SeedComparison(seeds, "", "", np.array([]), (
            f"One shipped training each of {first} and {second} (seeds {seeds or 'none'} in common): their "
            "difference is between two single draws, and this comparison cannot say how far another seed "
            "would move it (`lstmcor sweep` measures that)."))
    runs = {f"{name} seed {k}": (name, k) for name in (first, second) for k in seeds}
    scored = evaluate({method: found[name][k] for method, (name, k) in runs.items()}, data, "test", n_pairs,
                      seed=seed, timing_runs=1, progress=False)
    rows, per_pair = seed_scores(scored, runs)
    differences, spread, exceeds = seed_gap(per_pair, second, first, seeds)
    verdict = "exceeds" if exceeds else "does not exceed"
    ahead = {1.0: second, -1.0: first}.get(float(np.sign(differences.mean())), "neither")
    sentence = (f"Over {len(seeds)} seeds, {second} minus {first} in mean Dice is {differences.mean():+.4f} with a "
                f"seed-to-seed std of {spread:.4f}: the gap {verdict} the spread between trainings "
                f"({ahead} ahead on average; {second} ahead in {int(np.sum(differences > 0))} of {len(seeds)} seeds).")
    return SeedComparison(seeds, seed_table(rows, measures), paired_tests(per_pair, seeds), differences, sentence)


def seed_table(rows: list[dict], measures: tuple[str, ...] = MEASURES) -> str:
    """Markdown: one row per variant, mean +/- std over its seeds for every measure (of ``measures``)."""
    names = list(dict.fromkeys(r["variant"] for r in rows))
    lines = ["| variant | seeds | " + " | ".join(measures) + " |", "|---|---:|" + "---:|" * len(measures)]
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        cells = []
        for m in measures:
            values = np.array([r[m] for r in mine], dtype=float)
            std = values.std(ddof=1) if values.size > 1 else float("nan")
            cells.append(f"{values.mean():.4f} +/- {std:.4f}")
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_gap(per_pair: dict[tuple[str, int], np.ndarray], name: str, reference: str,
             seeds: list[int]) -> tuple[np.ndarray, float, bool]:
    """Per seed, the mean Dice of ``name`` minus that of ``reference``; the std of that difference
    over seeds (NaN with one seed); and whether the mean difference exceeds that std."""
    diffs = np.array([per_pair[(name, s)].mean() - per_pair[(reference, s)].mean() for s in seeds])
    std = float(diffs.std(ddof=1)) if diffs.size > 1 else float("nan")
    return diffs, std, bool(np.isfinite(std) and abs(diffs.mean()) > std)


def paired_tests(per_pair: dict[tuple[str, int], np.ndarray], seeds: list[int]) -> str:
    """Markdown: each variant against the first, on Dice.

    ``difference`` is the mean over seeds of (variant - reference) mean Dice, ``seed std`` the
    std over seeds of that difference (how much one more seed could move it), and ``p`` the
    two-sided Wilcoxon signed-rank test over test pairs of the per-pair Dice averaged over seeds.
    """
    from scipy.stats import wilcoxon

    names = list(dict.fromkeys(name for name, _ in per_pair))
    reference = names[0]
    lines = ["| variant - " + reference + " | difference | seed std | exceeds seed std | Wilcoxon p |",
             "|---|---:|---:|:---:|---:|"]
    ref = np.mean([per_pair[(reference, s)] for s in seeds], axis=0)
    for name in names[1:]:
        diffs, std, exceeds = seed_gap(per_pair, name, reference, seeds)
        mine = np.mean([per_pair[(name, s)] for s in seeds], axis=0)
        ok = np.isfinite(mine) & np.isfinite(ref)
        p = float(wilcoxon(mine[ok], ref[ok]).pvalue) if ok.sum() > 0 and np.any(mine[ok] != ref[ok]) else 1.0
        verdict = ("yes" if exceeds else "no") if np.isfinite(std) else "n/a (one seed)"
        lines.append(f"| {name} | {diffs.mean():+.4f} | {std:.4f} | {verdict} | {p:.3g} |")
    return "\n".join(lines)


def write(result: SweepResult) -> Path:
    """Write ``runs.csv``, ``table.md`` and ``tests.md`` into the sweep folder."""
    result.out.mkdir(parents=True, exist_ok=True)
    with open(result.out / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result.runs[0]))
        writer.writeheader()
        writer.writerows(result.runs)
    (result.out / "table.md").write_text(result.table + "\n")
    (result.out / "tests.md").write_text(result.tests + "\n")
    if result.choice:
        (result.out / "lambda.md").write_text(result.choice + "\n")
    return result.out
