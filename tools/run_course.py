#!/usr/bin/env python
"""Execute the course chapters once, with papermill, for the book.

Each ``course/NN_*.py`` (jupytext py:percent, the source of truth) is converted to a notebook
in memory and executed from a fresh kernel with papermill, with the parameters

    PRESET=<--preset>, DATA=<--data>, SEED=<--seed>, OUTPUT_DIR="runs/course/<stem>"

injected after the cell tagged ``parameters``. The working directory is the repository root,
so ``OUTPUT_DIR`` is relative to it (``runs/`` is gitignored). The executed notebooks are
written to ``<--out>/NN_*.ipynb`` (``book/course/`` by default, gitignored), which the book
renders without executing them again, together with ``<--out>/timings.json``; static figures
in ``course/figures/`` are copied to ``<--out>/figures/``.

The exercises' code solutions live in ``course/solutions/exN_k.py``, not in the chapters (a
student who opens a chapter in JupyterLab finds none on the way; an exercise's starter cell says
``%load solutions/exN_k.py``). By default each solution is put back, as a code cell tagged
``solution`` (plus the starter's ``solution_tags``), right after the starter cell whose metadata
names it (``solution="exN_k"``), and the kernels run with ``LSTMCOR_SOLUTIONS=1``, so that
``lstmcor.exercises.check`` raises on a wrong solution and the run fails. With ``--student`` the
chapters run as a student opens them: no solutions, no ``LSTMCOR_SOLUTIONS``, every open
exercise prints ``Not yet (Exercise N.k): <hint>``. A missing solution file, an id used twice or
not of the form ``exN_k``, or a cell tagged ``solution`` left inside a chapter (run
``tools/split_solutions.py``) stops the run with the chapter and the id named.

Before writing, the book's cell-tag conventions (book/AUTHORING.md) are applied:
cells tagged ``solution`` get ``hide-cell`` (solutions are folded away in the book, one click
shows them), cells tagged ``widget`` get ``remove-output`` (the book is static: the static
figure next to the widget is what readers see) and papermill's injected-parameters cell gets
``hide-cell``. Tags the author already set (``hide-*``, ``remove-*``) are left alone.

Exit status is 0 when every chapter ran, 1 when one failed (the message names the chapter,
the cell and the error; the partial notebook is kept as ``<--out>/NN_*.failed.ipynb``), 2 on
bad arguments.

Examples::

    python tools/run_course.py --preset ci --out book/course
    python tools/run_course.py --preset quick --only 03 --only 04
    python tools/run_course.py --preset ci --jobs 2        # two kernels at a time (`make test`)
    python tools/run_course.py --preset ci --only 01 --student --out /tmp/student
    python tools/run_course.py --list
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # lstmcor.settings from the checkout, installed or not
from lstmcor.exercises import SOLUTIONS_ENV  # noqa: E402
from lstmcor.settings import PRESET_NAMES as PRESETS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_notebook import prepare, private_kernelspec, run_chapter  # noqa: E402

CHAPTER_RE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.py$")


def find_chapters(course_dir: Path) -> list[Path]:
    """The course's chapters, ``NN_name.py``, in order."""
    return sorted(p for p in course_dir.glob("*.py") if CHAPTER_RE.match(p.name))


def select(chapters: list[Path], only: list[str] | None) -> list[Path]:
    """Chapters matching any of ``only`` (a number such as ``3``/``03``, a stem or a prefix)."""
    if not only:
        return chapters
    picked = []
    for token in only:
        token = token.strip()
        if token.endswith(".py"):
            token = token[:-3]
        token = Path(token).name
        if token.isdigit():
            token = f"{int(token):02d}_"
        hits = [c for c in chapters if c.stem == token or c.stem.startswith(token)]
        if not hits:
            names = ", ".join(c.stem for c in chapters) or "(none)"
            print(f"run_course: --only {token!r} matches no chapter; chapters: {names}", file=sys.stderr)
            raise SystemExit(2)
        picked.extend(h for h in hits if h not in picked)
    return sorted(picked)


def copy_figures(course: Path, out_dir: Path) -> int:
    """Copy static figures (``course/figures/**``) beside the executed notebooks.

    Markdown cells reference them as ``figures/<name>``, relative to the chapter, which must
    also resolve from ``book/course/``.
    """
    src = course / "figures"
    if not src.is_dir():
        return 0
    n = 0
    for f in src.rglob("*"):
        if f.is_file() and not f.name.startswith("."):
            dst = out_dir / "figures" / f.relative_to(src)
            if not dst.exists() or dst.stat().st_mtime < f.stat().st_mtime:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst)
                n += 1
    return n


def prepare_all(chapters: list[Path], args) -> dict[str, object]:
    """Each chapter's notebook, prepared once (course_notebook.prepare) before any kernel starts."""
    seen: dict[str, str] = {}
    return {py.stem: prepare(py, None if args.student else args.solutions, seen) for py in chapters}


def longest_first(chapters: list[Path], measured: Path) -> list[Path]:
    """The chapters, those that took longest in a committed measurement first (the rest in order).

    With several jobs the run ends when its longest chapter does; started last, a long chapter
    runs alone at the end. Without the file (or a chapter in it) the order is the file order.
    """
    try:
        seconds = {k: float(v.get("seconds") or 0) for k, v in json.loads(measured.read_text())["chapters"].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        seconds = {}
    return sorted(chapters, key=lambda py: -seconds.get(py.stem, 0.0))  # stable: ties keep file order


def run_all(chapters: list[Path], notebooks: dict, out_dir: Path, args):
    """Yield ``(chapter, result)`` as each chapter finishes: in order, or ``args.jobs`` kernels at a time.

    Stops starting chapters after the first failure unless ``args.keep_going``. With several jobs
    the chapters' times are measured while they share the CPU (``timings.json`` records ``jobs``).
    """
    n = len(chapters)
    if args.jobs <= 1:
        for i, py in enumerate(chapters, 1):
            print(f"[{i}/{n}] {py.stem:<32}", end=" ", flush=True)
            res = run_chapter(notebooks[py.stem], py.stem, out_dir, args, lambda s: print(s, flush=True))
            yield py, res
            if res["status"] != "ok" and not args.keep_going:
                return
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pending = longest_first(chapters, ROOT / "book" / "timings" / "quick.json")
    done_count = 0
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {}
        stop = False
        while pending or running:
            while pending and len(running) < args.jobs and not stop:
                py = pending.pop(0)
                running[pool.submit(run_chapter, notebooks[py.stem], py.stem, out_dir, args)] = py
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                py = running.pop(fut)
                res = fut.result()
                done_count += 1
                word = "ok     " if res["status"] == "ok" else "FAILED "
                print(f"[{done_count}/{n}] {py.stem:<32} {word} {res['seconds']:7.1f} s", flush=True)
                yield py, res
                if res["status"] != "ok" and not args.keep_going:
                    stop = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="run_course.py",
        description=(
            "Execute the course chapters (course/NN_*.py, jupytext py:percent) once with papermill, "
            "each in a fresh kernel of this Python, and write the executed notebooks for the book. "
            "Parameters injected: PRESET, DATA, SEED and OUTPUT_DIR=<runs>/<stem>. "
            "The exercises' solutions (course/solutions/exN_k.py) are put back after their exercises "
            "and checks raise on a wrong one (LSTMCOR_SOLUTIONS=1), unless --student."
        ),
        epilog=(
            "examples:\n"
            "  python tools/run_course.py --preset ci --out book/course   # what `make book` runs\n"
            "  python tools/run_course.py --preset quick --only 03        # one chapter\n"
            "  python tools/run_course.py --only 01 --student --out /tmp/s  # as a student opens it\n"
            "  python tools/run_course.py --list                          # list chapters\n"
            "exit status: 0 all chapters ran; 1 a chapter failed (its name, cell and error are\n"
            "printed; the partial notebook is kept as <out>/NN_*.failed.ipynb); 2 bad arguments."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", choices=PRESETS, default=os.environ.get("LSTMCOR_PRESET", "ci"),
                   help="training/data size preset passed as PRESET (default: $LSTMCOR_PRESET or 'ci'; "
                        "'ci' = seconds, 'quick' = minutes on a laptop CPU, 'paper' = GPU, hours)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the executed notebooks and timings.json "
                        "(default: book/course; runs/course_student with --student)")
    p.add_argument("--course", type=Path, default=ROOT / "course",
                   help="folder holding the NN_*.py chapters (default: course)")
    p.add_argument("--only", action="append", metavar="CHAPTER",
                   help="run only this chapter: a number (3 or 03), a stem or a prefix; repeatable")
    p.add_argument("--timeout", type=int, default=900,
                   help="seconds any single cell may run before the chapter fails (default: 900; -1: none)")
    p.add_argument("--data", default="default", help="DATA parameter (default: 'default')")
    p.add_argument("--seed", type=int, default=0, help="SEED parameter (default: 0)")
    p.add_argument("--runs", default="runs/course",
                   help="parent of each chapter's OUTPUT_DIR, relative to the repository root "
                        "(default: runs/course)")
    p.add_argument("--student", action="store_true",
                   help="run the chapters as a student opens them: without the solutions of "
                        "course/solutions/ (open exercises print their hints) and without LSTMCOR_SOLUTIONS")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N chapters at a time, each in its own kernel (default: 1; `make test` uses 2). "
                        "Their times are then measured on a shared CPU")
    p.add_argument("--keep-going", action="store_true", help="run the remaining chapters after a failure")
    p.add_argument("--list", action="store_true", help="list the chapters that would run and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the notebooks' outputs to the log")
    args = p.parse_args(argv)

    course = args.course if args.course.is_absolute() else (Path.cwd() / args.course)
    if args.out is None:
        args.out = ROOT / ("runs/course_student" if args.student else "book/course")
    args.solutions = course / "solutions"
    out_dir = args.out if args.out.is_absolute() else (Path.cwd() / args.out)
    args.cwd = ROOT
    if not course.is_dir():
        p.error(f"no course folder at {course}")
    chapters = select(find_chapters(course), args.only)
    if not chapters:
        p.error(f"no chapters (NN_name.py) in {course}")
    if args.list:
        for c in chapters:
            print(c.stem)
        return 0
    if args.jobs < 1:
        p.error(f"--jobs must be 1 or more, got {args.jobs}")
    if args.timeout is not None and args.timeout < 0:
        args.timeout = None

    out_dir.mkdir(parents=True, exist_ok=True)
    copy_figures(course, out_dir)
    # headless, quiet, reproducible chapter kernels
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.student:
        os.environ.pop(SOLUTIONS_ENV, None)  # checks print their hints
    else:
        os.environ[SOLUTIONS_ENV] = "1"  # a wrong solution fails the run

    timings_path = out_dir / "timings.json"
    try:
        timings = json.loads(timings_path.read_text()) if args.only else {}
    except (OSError, ValueError):
        timings = {}
    record = timings.setdefault("chapters", {})
    timings.update({
        "preset": args.preset,
        "student": args.student,
        "python": platform.python_version(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "machine": platform.machine(),
        # the CPU cores this run could use (the lecturer's guide names them next to the times)
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    })

    # every chapter has its parameters cell and solutions, and no id is used twice, before any kernel starts
    notebooks = prepare_all(chapters, args)
    timings["jobs"] = args.jobs
    mode = "student (no solutions)" if args.student else "with solutions"
    print(f"run_course: {len(chapters)} chapter(s), {mode}, preset={args.preset}, kernel={sys.executable}, "
          f"out={out_dir}" + (f", {args.jobs} at a time" if args.jobs > 1 else ""), flush=True)
    failures = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmcor-kernel-") as tmp:
        private_kernelspec(Path(tmp))
        for i, (py, res) in enumerate(run_all(chapters, notebooks, out_dir, args), 1):
            res["preset"] = args.preset
            record[py.stem] = res
            if res["status"] != "ok":
                failures.append((py.stem, res["error"]))
                print(f"run_course: chapter {py.stem} failed: {res['error']}", file=sys.stderr, flush=True)
    total = time.perf_counter() - t_all
    timings["total_seconds"] = round(sum(r.get("seconds", 0) for r in record.values()), 2)
    timings["last_run_seconds"] = round(total, 2)
    timings_path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")

    if failures:
        for stem, err in failures:
            print(f"run_course: FAILED {stem}: {err}  (see {out_dir / (stem + '.failed.ipynb')})",
                  file=sys.stderr)
        return 1
    print(f"run_course: {len(chapters)} chapter(s) ok in {total:.1f} s -> {out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
