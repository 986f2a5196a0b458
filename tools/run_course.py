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
from course_solutions import SolutionError, inject_solutions  # noqa: E402

CHAPTER_RE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.py$")
HIDE_OR_REMOVE = ("hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell")
KERNEL_NAME = "python3"


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


def private_kernelspec(tmp: Path) -> None:
    """Make kernel ``python3`` this interpreter, whatever other kernelspecs are installed.

    A ``python3`` kernelspec under JUPYTER_PATH takes precedence over user-level and
    system-level ones, so the chapters run in the same environment (venv) as this script.
    """
    spec_dir = tmp / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.log_level=CRITICAL"],  # no TCP/shutdown chatter
        "display_name": f"Python 3 ({Path(sys.prefix).name})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(tmp)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    )


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


def apply_book_tags(nb) -> None:
    """The tag conventions of book/AUTHORING.md, applied to an executed notebook."""
    for cell in nb.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        has_visibility = any(t in HIDE_OR_REMOVE for t in tags)
        new = []
        if "solution" in tags and not has_visibility:
            new.append("hide-cell")
        if "widget" in tags and "remove-output" not in tags and "remove-cell" not in tags:
            new.append("remove-output")
        if "injected-parameters" in tags and not has_visibility:
            new.append("hide-cell")
        if new:
            cell.setdefault("metadata", {})["tags"] = tags + new


def parameters_ok(nb) -> bool:
    return any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


def first_error(nb) -> tuple[int | None, str]:
    """Index (1-based, code cells) and a one-line summary of the first error output."""
    n = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        n += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return n, f"{out.get('ename')}: {out.get('evalue')}"
    return None, ""


def run_chapter(py: Path, out_dir: Path, args, log) -> dict:
    import jupytext
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    stem = py.stem
    nb = jupytext.read(py)
    if not parameters_ok(nb):
        raise SystemExit(f"run_course: {py}: no cell tagged 'parameters' (see book/AUTHORING.md)")
    if not args.student:
        try:
            inject_solutions(nb, args.solutions, stem, args.seen_solutions)
        except SolutionError as exc:
            raise SystemExit(f"run_course: {exc}") from None
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})

    output_dir = f"{args.runs}/{stem}"
    params = {"PRESET": args.preset, "DATA": args.data, "SEED": args.seed, "OUTPUT_DIR": output_dir}
    (args.cwd / output_dir).mkdir(parents=True, exist_ok=True)

    final = out_dir / f"{stem}.ipynb"
    partial = out_dir / f".{stem}.partial.ipynb"
    failed = out_dir / f"{stem}.failed.ipynb"
    failed.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".ipynb", delete=False, dir=out_dir) as fh:
        src = Path(fh.name)
    jupytext.write(nb, src, fmt="ipynb")

    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(
            str(src),
            str(partial),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(args.cwd),
            execution_timeout=args.timeout,
            progress_bar=False,
            log_output=args.verbose,
            report_mode=False,
        )
    except PapermillExecutionError as exc:
        first = next((ln.strip() for ln in (exc.source or "").splitlines() if ln.strip()), "")
        error = (f"cell {exc.cell_index + 1} (In [{exc.exec_count}]: {first[:60]}): "
                 f"{exc.ename}: {exc.evalue}".rstrip())
    except Exception as exc:  # kernel died, timeout, ...
        error = f"{type(exc).__name__}: {exc}".strip()
    finally:
        src.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0

    if error is None:
        executed = jupytext.read(partial, fmt="ipynb")
        apply_book_tags(executed)
        jupytext.write(executed, final, fmt="ipynb")
        partial.unlink(missing_ok=True)
        log(f"ok      {seconds:7.1f} s")
        return {"status": "ok", "seconds": round(seconds, 2)}

    # keep the evidence, never a stale "good" notebook that the book would render
    final.unlink(missing_ok=True)
    if partial.exists():
        partial.replace(failed)
        where, what = first_error(jupytext.read(failed, fmt="ipynb"))
        if where is not None and not error.startswith("cell "):
            error = f"cell {where}: {what} ({error})"
    log(f"FAILED  {seconds:7.1f} s")
    return {"status": "failed", "seconds": round(seconds, 2), "error": error}


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
    p.add_argument("--keep-going", action="store_true", help="run the remaining chapters after a failure")
    p.add_argument("--list", action="store_true", help="list the chapters that would run and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the notebooks' outputs to the log")
    args = p.parse_args(argv)

    course = args.course if args.course.is_absolute() else (Path.cwd() / args.course)
    if args.out is None:
        args.out = ROOT / ("runs/course_student" if args.student else "book/course")
    args.solutions = course / "solutions"
    args.seen_solutions = {}
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

    mode = "student (no solutions)" if args.student else "with solutions"
    print(f"run_course: {len(chapters)} chapter(s), {mode}, preset={args.preset}, kernel={sys.executable}, "
          f"out={out_dir}", flush=True)
    failures = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmcor-kernel-") as tmp:
        private_kernelspec(Path(tmp))
        for i, py in enumerate(chapters, 1):
            head = f"[{i}/{len(chapters)}] {py.stem:<32}"
            print(head, end=" ", flush=True)
            res = run_chapter(py, out_dir, args, lambda s: print(s, flush=True))
            res["preset"] = args.preset
            record[py.stem] = res
            if res["status"] != "ok":
                failures.append((py.stem, res["error"]))
                print(f"run_course: chapter {py.stem} failed: {res['error']}", file=sys.stderr, flush=True)
                if not args.keep_going:
                    break
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
