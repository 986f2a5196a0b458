"""Score every model of a weights folder on the same seeded test pairs, and test the differences.

A folder of ``<variant>.keras`` (seed 0) and ``<variant>_seed<k>.keras`` files, as
``data/weights/train_weights.sh`` writes them, is scored with the package's own evaluation
(:func:`lstmcor.evaluation.evaluate`: Dice, HD95, folding %, Learn2Reg's SDlogJ, MSE, and the
median time of a batch-1 call in ms) on ``--pairs`` test pairs of the embedded data drawn with
``--seed`` (the same pairs for every model, as :func:`lstmcor.sweep.sweep` scores a sweep), or on
validation pairs with ``--split val``, to choose between candidates (lambda) without the test pairs.
Written into ``--out``, and rewritten after every model, so a run cut short keeps what it scored:

- ``runs.csv``: one row per model file (variant, seed, mean of each measure over the pairs,
  epochs trained from the ``<name>.state.json`` beside it), and an ``identity`` row;
- ``pairs.csv``: the per-pair values behind them (for re-testing without re-scoring);
- ``table.md``: mean +/- std over seeds per variant (:func:`lstmcor.sweep.seed_table`);
- ``tests.md``: each variant against ``voxelmorph`` and against ``lstmcor``, and LSTM-COR minus
  VoxelMorph in each setting (``lstmcor_X - voxelmorph_X``), each with the paired Wilcoxon test
  over the pairs of :func:`lstmcor.sweep.paired_tests`, on the seeds the two variants share.

Usage (from the repository root; any Keras backend, CPU or GPU):

    python tools/score_weights.py data/weights --out /tmp/scores
    python tools/score_weights.py /tmp/w --out /tmp/w/scores --pairs 32 --seed 0 --jobs 8
    python tools/score_weights.py /tmp/w/lambda --out /tmp/w/lambda_scores --split val
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several workers may share one GPU
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package of this checkout

from lstmcor.data.resources import split_seed  # noqa: E402
from lstmcor.settings import SWEEP_SPLITS  # noqa: E402
from lstmcor.sweep import MEASURES, paired_tests, seed_scores, seed_table  # noqa: E402

COLUMNS = (*MEASURES, "ms")
REFERENCES = ("voxelmorph", "lstmcor")
_DATA: dict = {}


def find_models(folder: Path) -> list[tuple[str, int, Path]]:
    """``(variant, seed, path)`` of every ``.keras`` file: VoxelMorph, LSTM-COR, then the rest by name."""
    found = [(*split_seed(p.stem), p) for p in folder.glob("*.keras")]
    rank = {name: k for k, name in enumerate(REFERENCES)}
    return sorted(found, key=lambda f: (rank.get(f[0], len(rank)), f[0], f[1]))


def score_one(variant: str, seed: int, path: str, data: str, n_pairs: int, pair_seed: int,
              timing_runs: int, split: str = "test") -> tuple[list[dict], list[dict]]:
    """Rows (``identity`` and the model) and per-pair rows of one model file."""
    from lstmcor.data import load_dataset
    from lstmcor.evaluation import evaluate

    if data not in _DATA:
        _DATA[data] = load_dataset(data)
    ev = evaluate({variant: path}, _DATA[data], split, n_pairs, seed=pair_seed, timing_runs=timing_runs,
                  progress=False)
    state = Path(path).with_suffix(".state.json")
    epochs = json.loads(state.read_text()).get("epochs_done", "") if state.is_file() else ""
    rows, _ = seed_scores(ev, {"identity": ("identity", 0), variant: (variant, seed)})
    pairs = []
    for row in rows:
        mine = row["variant"] == variant
        row.update(ms=1000.0 * ev.summary[row["variant"]]["seconds_median"], epochs=epochs if mine else "",
                   file=Path(path).name if mine else "")
        pairs += [{"variant": row["variant"], "seed": row["seed"], "moving": r["moving"], "fixed": r["fixed"],
                   **{m: r[m] for m in MEASURES}} for r in ev.rows if r["method"] == row["variant"]]
    return rows, pairs


def tests_markdown(per_pair: dict[tuple[str, int], list[float]], split: str = "test") -> str:
    """The three sections of ``tests.md`` from the per-pair Dice of every (variant, seed)."""
    import numpy as np

    seeds: dict[str, list[int]] = {}
    for name, seed in per_pair:
        seeds.setdefault(name, []).append(seed)

    def line(name: str, reference: str, label: str | None = None) -> str:
        """paired_tests' row of ``name`` against ``reference`` on their common seeds, named ``label``."""
        common = sorted(set(seeds[name]) & set(seeds[reference]))
        if not common:
            return f"| {label or name} | no common seed | | | | |"
        sub = {(n, s): np.asarray(per_pair[(n, s)]) for n in (reference, name) for s in common}
        row = paired_tests(sub, common).splitlines()[2]
        if label:
            row = "| " + label + " |" + row.split("|", 2)[2]
        return row + f" {' '.join(map(str, common))} |"

    out = [f"Paired tests on Dice over {len(next(iter(per_pair.values()), []))} {split} pairs "
           "(lstmcor.sweep.paired_tests), on the seeds both variants have (last column).\n"]
    for reference in REFERENCES:
        others = [n for n in seeds if n not in (reference, "identity")]
        if reference not in seeds or not others:
            continue
        header = f"| variant - {reference} | difference | seed std | exceeds seed std | Wilcoxon p | seeds |"
        out += [f"## Against {reference}\n", header, "|---|---:|---:|:---:|---:|---|"]
        out += [line(n, reference) for n in others] + [""]
    pairs = [(n, "voxelmorph" + n[len("lstmcor"):]) for n in seeds if n.startswith("lstmcor")]
    pairs = [(n, v) for n, v in pairs if v in seeds]
    if pairs:
        out += ["## LSTM-COR minus VoxelMorph, per setting\n",
                "| lstmcor - voxelmorph | difference | seed std | exceeds seed std | Wilcoxon p | seeds |",
                "|---|---:|---:|:---:|---:|---|"]
        out += [line(n, v, f"{n} - {v}") for n, v in pairs] + [""]
    return "\n".join(out)


def write(out: Path, rows: list[dict], pairs: list[dict], split: str = "test") -> None:
    """``runs.csv``, ``pairs.csv``, ``table.md`` and ``tests.md`` from what is scored so far."""
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("runs.csv", rows), ("pairs.csv", pairs)):
        with open(out / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    (out / "table.md").write_text(seed_table(rows, COLUMNS) + "\n")
    dice: dict[tuple[str, int], list[float]] = {}
    for p in pairs:
        dice.setdefault((p["variant"], p["seed"]), []).append(p["dice"])
    (out / "tests.md").write_text(tests_markdown(dice, split))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of <variant>[_seed<k>].keras files")
    parser.add_argument("--out", type=Path, required=True, help="folder for runs.csv, pairs.csv, table.md, tests.md")
    parser.add_argument("--data", default="default", help="'default' (the embedded set) or a data folder")
    parser.add_argument("--pairs", type=int, default=32, help="pairs of --split scored for every model (default 32)")
    parser.add_argument("--split", choices=SWEEP_SPLITS, default="test",
                        help="split scored (default test); val to choose between candidates")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs (default 0)")
    parser.add_argument("--timing-runs", type=int, default=20, help="batch-1 calls timed per model (median)")
    parser.add_argument("--jobs", type=int, default=1, help="models scored at once, one process each")
    args = parser.parse_args(argv)
    models = find_models(args.folder)
    if not models:
        parser.error(f"no <name>.keras files in {args.folder}")
    start = time.perf_counter()
    results: dict[tuple[str, int], tuple[list[dict], list[dict]]] = {}
    jobs = [(v, s, str(p), args.data, args.pairs, args.seed, args.timing_runs, args.split) for v, s, p in models]

    def done(key: tuple[str, int], result: tuple[list[dict], list[dict]]) -> None:
        results[key] = result
        row = result[0][1]
        print(f"{row['file']}: Dice {row['dice']:.4f}, HD95 {row['hd95']:.2f}, folding {row['folding']:.3f} %, "
              f"SDlogJ {row['sdlogj']:.3f}, {row['ms']:.1f} ms ({time.perf_counter() - start:.0f} s)", flush=True)
        scored = [results[(v, s)] for v, s, _ in models if (v, s) in results]
        write(args.out, [scored[0][0][0]] + [r[0][1] for r in scored],
              [p for p in scored[0][1] if p["variant"] == "identity"]
              + [p for r in scored for p in r[1] if p["variant"] != "identity"], args.split)

    if args.jobs <= 1:
        for job in jobs:
            try:
                done(job[:2], score_one(*job))
            except Exception as error:  # one damaged file does not stop the others
                print(f"{job[2]}: not scored ({type(error).__name__}: {error})", flush=True)
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(score_one, *job): job[:2] for job in jobs}
            for future in as_completed(futures):
                try:
                    done(futures[future], future.result())
                except Exception as error:  # one damaged file does not stop the others
                    print(f"{futures[future]}: not scored ({type(error).__name__}: {error})", flush=True)
    print(f"scored {len(results)} of {len(models)} models on {args.pairs} {args.split} pairs in "
          f"{time.perf_counter() - start:.0f} s: {args.out}")
    return 0 if len(results) == len(models) else 1


if __name__ == "__main__":
    sys.exit(main())
