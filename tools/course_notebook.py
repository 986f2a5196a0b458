"""Execute one course chapter with papermill: the part of ``tools/run_course.py`` that runs a kernel.

``prepare`` reads a ``course/NN_*.py`` chapter (jupytext py:percent) into a notebook, checks its
parameters cell and puts the exercises' solutions back (unless the run is a student's);
``run_chapter`` executes that notebook in a fresh kernel with the run's parameters, applies the
book's tag conventions (book/AUTHORING.md) and writes ``<out>/NN_*.ipynb``, or
``<out>/NN_*.failed.ipynb`` with the first error named. Plain Python; the kernel, not this module,
imports the backend.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from course_solutions import SolutionError, inject_solutions

HIDE_OR_REMOVE = ("hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell")
KERNEL_NAME = "python3"


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


def prepare(py: Path, solutions: Path | None, seen: dict[str, str] | None = None):
    """Chapter ``py`` as the notebook to execute: read, its parameters cell checked, solutions put back.

    ``solutions`` None is a student's run (nothing put back); ``seen`` (``{id: chapter}``) is shared
    across the chapters of a run, so that an id used twice stops it. A problem raises SystemExit
    with the chapter named, before any kernel starts.
    """
    import jupytext

    nb = jupytext.read(py)
    if not parameters_ok(nb):
        raise SystemExit(f"run_course: {py}: no cell tagged 'parameters' (see book/AUTHORING.md)")
    if solutions is not None:
        try:
            inject_solutions(nb, solutions, py.stem, seen)
        except SolutionError as exc:
            raise SystemExit(f"run_course: {exc}") from None
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def run_chapter(nb, stem: str, out_dir: Path, args, log=None) -> dict:
    """Execute the prepared notebook ``nb`` of chapter ``stem`` into ``out_dir``.

    Returns ``{"status": "ok"|"failed", "seconds", ["error"]}``. ``args`` are
    ``tools/run_course.py``'s (preset, data, seed, runs, cwd, timeout, verbose); ``log`` (if given)
    is called with the one-line result.
    """
    log = log or (lambda line: None)
    import jupytext
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

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
            start_timeout=300,  # papermill's 60 s is too short for two kernels starting on a busy 2-core CPU
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
