"""The course's chapters follow the rules every chapter must keep (checked on the sources).

Executing them is `make book PRESET=ci` (part of `make test`): papermill runs every chapter from
a fresh kernel, with the solutions of course/solutions/ put back after their exercises, and fails
on any error (tests/test_student_edition.py runs one chapter as a student opens it).
"""
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "course").glob("[0-9][0-9]_*.py"))


def _cells(path):
    return jupytext.read(path, fmt="py:percent").cells


def test_the_course_has_its_ten_chapters_in_the_book_in_order():
    assert [p.stem for p in CHAPTERS][:1] == ["00_registration_problem"] and len(CHAPTERS) == 10
    toc = (ROOT / "book" / "_toc.yml").read_text()
    listed = re.findall(r"file: course/(\S+)", toc)
    assert listed == [p.stem for p in CHAPTERS]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_structure(path):
    cells = _cells(path)
    number = int(path.stem[:2])
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {number}. "), "title '# N. ...'"
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "Learning goals" in markdown or "learning goals" in markdown.lower()
    assert "## Summary" in markdown and "**Next:**" in markdown

    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one papermill parameters cell"
    for name in ("PRESET", "DATA", "SEED", "OUTPUT_DIR"):
        assert re.search(rf"^{name} = ", params[0].source, re.M), f"parameters cell lacks {name}"
    assert 'PRESET = "quick"' in params[0].source

    # exercises: a statement, a starter naming its solution in course/solutions/ (none in the
    # chapter: tests/test_student_edition.py), then a check through lstmcor.exercises.check
    assert ":class: exercise" in markdown
    tags = [c.metadata.get("tags", []) for c in cells]
    assert not any("solution" in t for t in tags), "solutions live in course/solutions/, not in the chapter"
    starters = [k for k, (c, t) in enumerate(zip(cells, tags)) if "exercise" in t and c.metadata.get("solution")]
    assert starters, "an exercise needs a starter cell tagged 'exercise' with solution=\"exN_k\""
    later_code = "\n".join(c.source for c in cells[starters[0] + 1:] if c.cell_type == "code")
    assert re.search(r"check\(check_ex\w+, .*exercise=\"\d+\.\d+\"\)", later_code), "a check after the exercise"
    assert not re.search(r"^check_ex\w*\(", later_code, re.M), "call checks through lstmcor.exercises.check"

    # every widget has a static twin right after it, for the book
    widgets = [k for k, t in enumerate(tags) if "widget" in t]
    assert widgets, "an ipywidgets control"
    for k in widgets:
        twin = cells[k + 1]
        assert twin.cell_type == "code" and "widget" not in twin.metadata.get("tags", [])

    # nothing from the internet, and files go to OUTPUT_DIR
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert not re.search(r"urlopen|requests\.get|urlretrieve|https?://\S+\.(nii|npz|png|keras)", code)
    assert "OUTPUT_DIR" in code.replace(params[0].source, "")


def test_all_23_equations_of_the_paper_appear_once():
    targets = {}
    for path in CHAPTERS:
        for n in re.findall(r"^# \(eq-paper-(\d+)\)=", path.read_text(), re.M):
            targets.setdefault(int(n), []).append(path.stem)
    assert sorted(targets) == list(range(1, 24))
    assert all(len(places) == 1 for places in targets.values()), targets
    # each target sits on the block that carries the paper's own number
    tagged = []
    for path in CHAPTERS:
        tagged += re.findall(r"\(eq-paper-(\d+)\)=\n# \$\$[^$]*?\\tag\{(\d+)\}", path.read_text())
    assert len(tagged) == 23 and all(target == tag for target, tag in tagged), tagged
