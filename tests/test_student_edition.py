"""The student edition: chapters hold no solutions; the runner puts them back for the book and CI.

A student opens ``course/NN_*.py`` in JupyterLab: "Run All" must not solve the exercises for
them. The solutions live in ``course/solutions/exN_k.py``; ``tools/run_course.py`` injects each
one right after its exercise (and runs with ``LSTMCOR_SOLUTIONS=1``), ``--student`` runs without.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from lstmcor.exercises import SOLUTIONS_ENV, check

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course_notebook  # noqa: E402
import course_solutions  # noqa: E402
import run_course  # noqa: E402
import split_solutions  # noqa: E402

COURSE = ROOT / "course"
SOLUTIONS = COURSE / "solutions"
CHAPTERS = sorted(COURSE.glob("[0-9][0-9]_*.py"))
ADMONITION = re.compile(r"\{admonition\}\s*Exercise\s+(\d+)\.(\d+)")


def _starters(path):
    """(cell index, cell, exercise number of the nearest admonition before it) per solution id."""
    found, number = [], None
    for k, cell in enumerate(jupytext.read(path).cells):
        hits = ADMONITION.findall(cell.source) if cell.cell_type == "markdown" else []
        if hits:
            number = "{}.{}".format(*hits[-1])
        if cell.metadata.get("solution"):
            found.append((k, cell, number))
    return found


def test_no_chapter_holds_a_solution_cell():
    for path in CHAPTERS:
        cells = jupytext.read(path).cells
        tagged = [k for k, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
        assert not tagged, f"{path.stem}: cells {tagged} are tagged 'solution'; run tools/split_solutions.py"


def test_every_solution_id_has_its_file_and_every_file_its_exercise():
    ids = []
    for path in CHAPTERS:
        for _, cell, number in _starters(path):
            sid = cell.metadata["solution"]
            assert "exercise" in cell.metadata.get("tags", []), f"{path.stem}: {sid} is not on an exercise cell"
            assert number is not None and sid == course_solutions.solution_id(number), (path.stem, sid, number)
            assert sid.startswith(f"ex{int(path.stem[:2])}_"), f"{path.stem} names another chapter's {sid}"
            assert course_solutions.load_comment(sid) in cell.source, f"{path.stem}: {sid} lacks the %load line"
            first = (SOLUTIONS / f"{sid}.py").read_text().splitlines()[0]
            assert first.startswith(f"# Exercise {number}: ")
            assert first.endswith(" - solution (loaded by tools/run_course.py for the book and CI)")
            ids.append(sid)
    assert len(ids) == len(set(ids)), "an id is used twice"
    assert sorted(ids) == sorted(p.stem for p in SOLUTIONS.glob("*.py"))
    # the runner's chapter list is not fooled by the solutions folder
    assert run_course.find_chapters(COURSE) == CHAPTERS


def test_injection_puts_each_solution_right_after_its_exercise():
    path = COURSE / "01_squeeze_excitation.py"
    nb = jupytext.read(path)
    before = [c.source for c in nb.cells]
    ids = course_solutions.inject_solutions(nb, SOLUTIONS, path.stem)
    assert ids == [cell.metadata["solution"] for _, cell, _ in _starters(path)] and ids
    assert len(nb.cells) == len(before) + len(ids)
    assert [c.source for c in nb.cells if "solution" not in c.metadata.get("tags", [])] == before
    for k, cell in enumerate(nb.cells):
        if cell.metadata.get("solution"):
            nxt = nb.cells[k + 1]
            assert nxt.cell_type == "code" and nxt.metadata["tags"][0] == "solution"
            assert nxt.source == (SOLUTIONS / f"{cell.metadata['solution']}.py").read_text().rstrip("\n")
    # the book folds them
    course_notebook.apply_book_tags(nb)
    assert all("hide-cell" in c.metadata["tags"] for c in nb.cells if "solution" in c.metadata.get("tags", []))


def _chapter(tmp_path, body):
    path = tmp_path / "01_demo.py"
    path.write_text("# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n"
                    "#     name: python3\n# ---\n\n" + body)
    return path


OLD_FORM = '''# %% [markdown]
# :::{admonition} Exercise 1.1: add
# :class: exercise
# Write `add`.
# :::

# %% tags=["exercise"]
def add(a, b):
    ...


# %% tags=["solution"]
def add(a, b):
    return a + b


# %%
print(add(1, 2))

# %% [markdown]
# :::{admonition} Exercise 1.2: a number
# :class: exercise
# :::

# %% tags=["solution", "hide-input"]
answer = 3
print(answer)
'''


def test_split_solutions_converts_once_and_injection_restores(tmp_path):
    path, solutions = _chapter(tmp_path, OLD_FORM), tmp_path / "solutions"
    assert split_solutions.split_file(path, solutions) == ["ex1_1", "ex1_2"]
    text = path.read_text()
    assert text.startswith("# ---\n# jupyter:\n#   kernelspec:") and "jupytext_version" not in text
    cells = jupytext.read(path).cells
    assert not any("solution" in c.metadata.get("tags", []) for c in cells)
    assert "return a + b" not in text and "answer = 3" not in text
    starters = {c.metadata["solution"]: c for c in cells if c.metadata.get("solution")}
    assert starters["ex1_1"].source.startswith("def add(a, b):\n    ...")
    assert starters["ex1_2"].source.startswith("...") and starters["ex1_2"].metadata["tags"] == ["exercise"]
    assert starters["ex1_2"].metadata["solution_tags"] == ["hide-input"]
    assert (solutions / "ex1_1.py").read_text() == (
        "# Exercise 1.1: add - solution (loaded by tools/run_course.py for the book and CI)\n"
        "def add(a, b):\n    return a + b\n")
    # rerun: nothing to do, nothing changed
    assert split_solutions.split_file(path, solutions) == [] and path.read_text() == text
    # the runner puts the code back where it was, with its tags
    nb = jupytext.read(path)
    assert course_solutions.inject_solutions(nb, solutions, "01_demo") == ["ex1_1", "ex1_2"]
    srcs = [c.source for c in nb.cells]
    k = srcs.index(starters["ex1_1"].source)
    assert "return a + b" in srcs[k + 1] and nb.cells[k + 1].metadata["tags"] == ["solution"]
    assert srcs[k + 2] == "print(add(1, 2))"
    assert nb.cells[-1].source.endswith("answer = 3\nprint(answer)")
    assert nb.cells[-1].metadata["tags"] == ["solution", "hide-input"]


def test_split_solutions_refuses_to_overwrite_another_solution(tmp_path):
    path, solutions = _chapter(tmp_path, OLD_FORM), tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "ex1_1.py").write_text("# something else\n")
    with pytest.raises(split_solutions.SplitError, match=r"01_demo.*ex1_1"):
        split_solutions.split_file(path, solutions)
    assert "return a + b" in path.read_text()


@pytest.mark.parametrize("cell, files, message", [
    ('# %% tags=["exercise"] solution="ex1_9"\nx = ...\n', {}, r"01_demo: no solution file for 'ex1_9'"),
    ('# %% tags=["exercise"] solution="one"\nx = ...\n', {}, r"01_demo: .*solution='one'"),
    ('# %% solution="ex1_1"\nx = ...\n\n# %% solution="ex1_1"\ny = ...\n', {"ex1_1": "x = 1\n"},
     r"01_demo: solution id 'ex1_1' is used twice"),
    ('# %% tags=["solution"]\nx = 1\n', {}, r"01_demo: cell 1 is tagged 'solution'"),
])
def test_injection_errors_name_the_chapter_and_the_id(tmp_path, cell, files, message):
    for sid, text in files.items():
        (tmp_path / f"{sid}.py").write_text(text)
    nb = jupytext.reads(cell, fmt="py:percent")
    with pytest.raises(course_solutions.SolutionError, match=message):
        course_solutions.inject_solutions(nb, tmp_path, "01_demo")


def _check_double(fn):
    if fn(2) != 4:  # not `assert`: pytest would rewrite its message
        raise AssertionError("double(2) should be 4.")
    print("Correct: double doubles.")


def test_check_prints_the_hint_while_open(capsys, monkeypatch):
    monkeypatch.delenv(SOLUTIONS_ENV, raising=False)
    assert check(_check_double, lambda x: None, exercise="3.1") is False
    assert capsys.readouterr().out == "Not yet (Exercise 3.1): double(2) should be 4.\n"
    assert check(_check_double, lambda x: ..., exercise="3.1") is False  # the starter's `...`
    assert check(_check_double, lambda: 0, exercise="3.1") is False  # an answer that crashes
    out = capsys.readouterr().out
    assert out.count("Not yet (Exercise 3.1): ") == 2 and "TypeError" in out and "Correct" not in out


def test_check_passes_the_correct_line_through(capsys, monkeypatch):
    monkeypatch.setenv(SOLUTIONS_ENV, "1")
    assert check(_check_double, lambda x: 2 * x, exercise="3.1") is True
    assert capsys.readouterr().out == "Correct: double doubles.\n"


def test_check_raises_where_solutions_are_filled_in(monkeypatch):
    monkeypatch.delenv(SOLUTIONS_ENV, raising=False)
    with pytest.raises(AssertionError, match="should be 4"):
        check(_check_double, lambda x: x, exercise="3.1", strict=True)
    monkeypatch.setenv(SOLUTIONS_ENV, "1")
    with pytest.raises(AssertionError, match="should be 4"):
        check(_check_double, lambda x: x, exercise="3.1")
    with pytest.raises(TypeError):
        check(_check_double, lambda: 0, exercise="3.1")
    assert check(_check_double, lambda x: x, exercise="3.1", strict=False) is False


def _outputs(cell):
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
def test_a_chapter_run_as_a_student_opens_it_leaves_its_first_exercise_open(tmp_path):
    chapter = "00_registration_problem"  # the cheapest chapter (about 25 s at ci)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_course.py"), "--student", "--preset", "ci",
         "--only", chapter[:2], "--out", str(tmp_path), "--runs", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, SOLUTIONS_ENV: "1"},  # --student must drop it
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = json.loads((tmp_path / f"{chapter}.ipynb").read_text())
    cells = nb["cells"]
    assert not any("solution" in c["metadata"].get("tags", []) for c in cells)
    calls = [c for c in cells if c["cell_type"] == "code" and '_ = check(check_ex01' in "".join(c["source"])]
    assert len(calls) == 1
    printed = _outputs(calls[0])
    assert printed.startswith("Not yet (Exercise 0.1): ")
    assert not re.search(r"^Correct", printed, re.M)
    # ran to the end: every code cell executed, none failed
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code)
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
    assert not (tmp_path / f"{chapter}.failed.ipynb").exists()
