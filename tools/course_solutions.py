"""The exercises' solutions: where they live and how the runner puts them back (book/AUTHORING.md).

A chapter's starter cell (tag ``exercise``) names its solution in its metadata,
``solution="exN_k"``; the code is ``course/solutions/exN_k.py``. :func:`inject_solutions` puts
each one back right after its starter for the book and CI (``tools/run_course.py``);
``tools/split_solutions.py`` moves solutions written in the old form (a cell tagged
``solution`` inside the chapter) out. Plain Python; nothing here imports a backend.

Example:
    >>> solution_id("1.2"), load_comment("ex1_2")[:16]
    ('ex1_2', '# Stuck? Load th')
"""
from __future__ import annotations

import re
from pathlib import Path

SOLUTION_ID_RE = re.compile(r"^ex(\d+)_(\d+)$")


class SolutionError(ValueError):
    """A chapter whose solutions cannot be put back: the message names the chapter and the id."""


def solution_id(number: str) -> str:
    """The solution file's stem for exercise ``"N.k"``: ``"ex1_2"`` for ``"1.2"``."""
    n, _, k = str(number).partition(".")
    if not (n.isdigit() and k.isdigit()):
        raise ValueError(f"an exercise number is 'N.k', got {number!r}")
    return f"ex{int(n)}_{int(k)}"


def load_comment(sid: str) -> str:
    """The last line of a starter cell: how a stuck student loads the solution (cwd ``course/``)."""
    return f"# Stuck? Load the solution into a new cell with:  %load solutions/{sid}.py"


def inject_solutions(nb, solutions_dir: Path, chapter: str, seen: dict[str, str] | None = None) -> list[str]:
    r"""Put each exercise's solution back right after its starter cell, in place.

    A code cell whose metadata has ``solution="exN_k"`` is followed by a new code cell holding
    ``<solutions_dir>/exN_k.py``, tagged ``solution`` plus the starter's ``solution_tags``
    (``apply_book_tags`` then folds it in the book).

    Args:
        nb: a chapter read by ``jupytext.read`` (cells are edited in place).
        solutions_dir: the folder of ``exN_k.py`` files (``course/solutions``).
        chapter: the chapter's name, for the error messages.
        seen: ``{id: chapter}`` of the ids already injected in this run (duplicates across
            chapters are errors); updated.

    Returns:
        The ids injected, in order.

    Raises:
        SolutionError: an id not of the form ``exN_k``, used twice, without a file, or a cell
            tagged ``solution`` still inside the chapter.

    Example:
        >>> import jupytext, tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "ex1_1.py").write_text("x = 1\n")
        >>> nb = jupytext.reads('# %% tags=["exercise"] solution="ex1_1"\nx = ...\n', fmt="py:percent")
        >>> inject_solutions(nb, d, "01_demo"), nb.cells[1].source, nb.cells[1].metadata["tags"]
        (['ex1_1'], 'x = 1', ['solution'])
    """
    from nbformat.v4 import new_code_cell

    seen = {} if seen is None else seen
    cells, ids = [], []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            raise SolutionError(f"{chapter}: cell {k + 1} is tagged 'solution' inside the chapter; "
                                "move it to course/solutions/ with tools/split_solutions.py")
        cells.append(cell)
        sid = cell.metadata.get("solution")
        if sid is None:
            continue
        if not isinstance(sid, str) or not SOLUTION_ID_RE.match(sid):
            raise SolutionError(f"{chapter}: cell {k + 1} has solution={sid!r}; an id is 'exN_k' (e.g. 'ex1_2')")
        if sid in seen:
            raise SolutionError(f"{chapter}: solution id {sid!r} is used twice (also in {seen[sid]})")
        path = solutions_dir / f"{sid}.py"
        if not path.is_file():
            raise SolutionError(f"{chapter}: no solution file for {sid!r} (expected {path})")
        extra = cell.metadata.get("solution_tags", [])
        if isinstance(extra, str):
            extra = [extra]
        seen[sid] = chapter
        ids.append(sid)
        cells.append(new_code_cell(path.read_text().rstrip("\n"), metadata={"tags": ["solution", *extra]}))
    nb.cells = cells
    return ids
