"""A course chapter's cells as the book and CI run it: its solutions put back after their exercises.

Shared by the tests that take checks and solutions from the chapters' sources, so that they read
the very cells ``tools/run_course.py`` executes (its ``course_solutions.inject_solutions``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "course"
sys.path.insert(0, str(ROOT / "tools"))
import course_solutions  # noqa: E402


def cells_with_solutions(stem: str) -> list:
    """The cells of ``course/<stem>.py`` with each exercise's solution cell after it."""
    nb = jupytext.read(COURSE / f"{stem}.py", fmt="py:percent")
    course_solutions.inject_solutions(nb, COURSE / "solutions", stem)
    return nb.cells
