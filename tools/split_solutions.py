#!/usr/bin/env python
"""Move the exercises' code solutions out of the chapters into ``course/solutions/``.

A chapter used to carry each solution as a code cell tagged ``solution`` right after its
exercise; in JupyterLab "Run All" then ran the solution over the student's attempt. This tool
turns that form into the student edition's (book/AUTHORING.md, "Exercises and solutions"):

* the solution's code goes to ``course/solutions/exN_k.py`` (``N.k`` from the nearest preceding
  ``Exercise N.k`` admonition), under a one-line comment naming the exercise;
* the solution cell leaves the chapter;
* the exercise's starter cell (tag ``exercise``; one holding ``...`` is created where there was
  none) gets the cell metadata ``solution="exN_k"``, ``solution_tags=[...]`` for any other tag the
  solution cell had (``hide-input``, ...), and a last line saying how to ``%load`` the solution.

``tools/run_course.py`` puts the solutions back, right after their exercises, when it executes
the chapters for the book and CI (``--student`` runs them without). Chapters already converted
are left untouched, so the tool can be run again after merging a branch that adds exercises in
the old form. Prose solutions (``:class: dropdown`` admonitions) are not code and stay.

Exit status 0 (the message lists what moved), 1 on a conflict (an exercise whose solution file
already holds other code, a solution cell with no ``Exercise N.k`` before it, two solutions for
one exercise), with the chapter and the exercise named.

Examples::

    python tools/split_solutions.py            # every course/NN_*.py
    python tools/split_solutions.py --check    # exit 1 if a chapter still holds a solution cell
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_solutions import load_comment, solution_id  # noqa: E402
from run_course import find_chapters  # noqa: E402

EXERCISE_RE = re.compile(r"\{admonition\}\s*Exercise\s+(\d+)\.(\d+)\s*:?\s*([^\n]*)")


class SplitError(ValueError):
    """A chapter that cannot be converted: names the chapter and the exercise."""


def solution_header(number: str, title: str) -> str:
    """The first line of a solution file, e.g. ``# Exercise 1.1: SE in NumPy - solution (...)``."""
    return f"# Exercise {number}: {title} - solution (loaded by tools/run_course.py for the book and CI)"


def split_notebook(nb, chapter: str) -> dict[str, str]:
    """Take the code cells tagged ``solution`` out of a jupytext notebook, in place.

    Args:
        nb: the chapter as read by ``jupytext.read``; edited in place.
        chapter: the chapter's name, for error messages.

    Returns:
        ``{"exN_k": file text}`` for each solution removed (empty for a converted chapter).

    Example:
        >>> import jupytext
        >>> nb = jupytext.reads('# %% [markdown]\\n# :::{admonition} Exercise 1.1: t\\n\\n'
        ...                     '# %% tags=["solution"]\\nx = 1\\n', fmt="py:percent")
        >>> files = split_notebook(nb, "01_x")
        >>> sorted(files), nb.cells[-1].metadata["solution"]
        (['ex1_1'], 'ex1_1')
    """
    files: dict[str, str] = {}
    current: tuple[str, str] | None = None  # ("N.k", title) of the last exercise admonition
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = EXERCISE_RE.findall(cell.source)
            if found:
                n, k, title = found[-1]
                current = (f"{int(n)}.{int(k)}", title.strip())
            cells.append(cell)
            continue
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type != "code" or "solution" not in tags:
            cells.append(cell)
            continue
        if current is None:
            raise SplitError(f"{chapter}: a cell tagged 'solution' has no 'Exercise N.k' admonition before it")
        number, title = current
        sid = solution_id(number)
        if sid in files:
            raise SplitError(f"{chapter}: two cells tagged 'solution' for Exercise {number} ({sid})")
        files[sid] = solution_header(number, title) + "\n" + cell.source.rstrip() + "\n"
        extra = [t for t in tags if t != "solution"]
        prev = cells[-1] if cells else None
        if prev is None or prev.cell_type != "code" or "exercise" not in prev.metadata.get("tags", []):
            from nbformat.v4 import new_code_cell
            prev = new_code_cell("...", metadata={"tags": ["exercise"]})
            cells.append(prev)
        prev.metadata["solution"] = sid
        if extra:
            prev.metadata["solution_tags"] = extra
        if load_comment(sid) not in prev.source:
            after_def = re.search(r"^(def|class|async def) ", prev.source, re.M)  # PEP 8: two blank lines
            prev.source = prev.source.rstrip() + ("\n\n\n" if after_def else "\n") + load_comment(sid)
    nb.cells = cells
    return files


def split_file(path: Path, solutions_dir: Path, write: bool = True) -> list[str]:
    """Convert one chapter file; return the ids moved out (none for a converted chapter)."""
    import jupytext

    text = path.read_text()
    nb = jupytext.reads(text, fmt="py:percent")
    files = split_notebook(nb, path.stem)
    if not files:
        return []
    for sid, body in files.items():
        target = solutions_dir / f"{sid}.py"
        if target.exists() and target.read_text() != body:
            raise SplitError(f"{path.stem}: {target} already holds another solution for {sid}; "
                             "renumber the exercise or remove the stale file")
    if write:
        solutions_dir.mkdir(parents=True, exist_ok=True)
        for sid, body in files.items():
            (solutions_dir / f"{sid}.py").write_text(body)
        out = jupytext.writes(nb, fmt="py:percent")
        # keep the file's own header (jupytext would add its version to it)
        head_old, _, _ = text.partition("\n# %%")
        _, _, body_new = out.partition("\n# %%")
        path.write_text(head_old + "\n# %%" + body_new)
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="split_solutions.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--course", type=Path, default=ROOT / "course", help="folder of NN_*.py chapters")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a chapter needs converting")
    args = p.parse_args(argv)
    solutions_dir = args.course / "solutions"
    pending = []
    try:
        for path in find_chapters(args.course):
            moved = split_file(path, solutions_dir, write=not args.check)
            if moved:
                pending.append(path.stem)
                verb = "would move" if args.check else "moved"
                print(f"{path.stem}: {verb} {', '.join(moved)} to {solutions_dir.name}/")
    except SplitError as exc:
        print(f"split_solutions: {exc}", file=sys.stderr)
        return 1
    if not pending:
        print("split_solutions: every chapter is already in the student form")
    return 1 if (args.check and pending) else 0


if __name__ == "__main__":
    sys.exit(main())
