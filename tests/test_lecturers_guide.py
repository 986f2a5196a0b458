"""The generated parts of the lecturer's guide (book/_ext/lecturers_guide.py): run times come from
the timings files, reading times and goals from the chapters' sources."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import lecturers_guide as lg  # noqa: E402

CHAPTER = '''# %% [markdown]
# # {n}. A chapter about {topic}
#
# Some prose here, with $x$ inline.
#
# **Learning goals.** After this chapter you can
#
# 1. do the first thing;
# 2. do the second thing,
#    which takes two lines;
#
# (eq-paper-1)=
# $$
# a = b + c \\tag{{1}}
# $$

# %% tags=["parameters"]
PRESET = "quick"

# %% [markdown]
# :::{{admonition}} Exercise {n}.1: count the words
# :class: exercise
# Count them.
# :::
'''


def make_root(tmp_path: Path, timings: dict | None, quick: dict | None = None) -> Path:
    root = tmp_path / "repo"
    (root / "course").mkdir(parents=True)
    (root / "book" / "course").mkdir(parents=True)
    (root / "book" / "timings").mkdir(parents=True)
    for n, topic in [(0, "alpha"), (1, "beta"), (2, "gamma")]:
        (root / "course" / f"0{n}_{topic}.py").write_text(CHAPTER.format(n=n, topic=topic))
    (root / "course" / "notes.py").write_text("x = 1\n")  # not a chapter
    if timings is not None:
        (root / "book" / "course" / "timings.json").write_text(json.dumps(timings))
    if quick is not None:
        (root / "book" / "timings" / "quick.json").write_text(json.dumps(quick))
    return root


def table_rows(text: str) -> dict[str, list[str]]:
    """Chapter stem -> the cells of its row of the rendered table."""
    rows = {}
    for line in text.splitlines():
        stem = re.search(r"<course/(\d\d_\w+)>", line)
        if line.startswith("|") and stem:
            rows[stem.group(1)] = [c.strip() for c in line.strip("|").split("|")]
    return rows


def test_table_holds_the_measured_seconds_and_not_measured_for_missing(tmp_path):
    seconds = {"00_alpha": 12.3, "01_beta": 75.0}
    timings = {"preset": "ci", "cpus": 2,
               "chapters": {s: {"preset": "ci", "seconds": v, "status": "ok"} for s, v in seconds.items()}}
    root = make_root(tmp_path, timings)
    page = lg.expand_page("# Guide\n\n<!-- lstmcor:timings -->\n", root)
    rows = table_rows(page)
    assert set(rows) == {"00_alpha", "01_beta", "02_gamma"}
    assert rows["00_alpha"][1] == "12 s"
    assert rows["01_beta"][1] == "1 min 15 s"
    assert rows["02_gamma"][1] == lg.NOT_MEASURED
    assert "`ci`, this build, 2-core CPU" in page
    assert "<!--" not in page


def test_failed_chapter_and_committed_quick_column(tmp_path):
    timings = {"preset": "ci", "chapters": {
        "00_alpha": {"seconds": 3.0, "status": "ok"},
        "01_beta": {"seconds": 9.0, "status": "failed", "error": "boom"}}}
    quick = {"preset": "quick", "label": "`quick`, 2-core CPU", "chapters": {"02_gamma": {"seconds": 600.4}}}
    page = lg.expand_page("<!-- lstmcor:timings -->", make_root(tmp_path, timings, quick))
    rows = table_rows(page)
    assert rows["01_beta"][1] == "failed"
    assert rows["00_alpha"][2] == lg.NOT_MEASURED
    assert rows["02_gamma"][2] == "10 min 00 s"
    assert "run time, `quick`, 2-core CPU" in page


def test_no_build_timings_says_so(tmp_path):
    page = lg.expand_page("<!-- lstmcor:timings -->", make_root(tmp_path, None))
    assert "No run time has been measured" in page
    assert all(len(cells) == 2 for cells in table_rows(page).values())  # chapter, reading time


def test_total_is_the_sum_of_the_rows(tmp_path):
    values = [4.0, 50.0, 70.0]
    timings = {"preset": "ci", "chapters": {f"0{n}_{t}": {"seconds": v, "status": "ok"}
                                            for (n, t), v in zip([(0, "alpha"), (1, "beta"), (2, "gamma")], values)}}
    page = lg.expand_page("<!-- lstmcor:timings -->", make_root(tmp_path, timings))
    total = next(line for line in page.splitlines() if "whole course" in line)
    assert lg.format_seconds(sum(values)) == "2 min 04 s" and "2 min 04 s" in total


def test_reading_time_goals_and_exercises_come_from_the_source(tmp_path):
    root = make_root(tmp_path, None)
    chapter = lg.read_chapter(root / "course" / "01_beta.py")
    assert chapter.title == "1. A chapter about beta"
    assert chapter.goals == ["do the first thing;", "do the second thing, which takes two lines;"]
    assert chapter.exercises == [("1.1", "count the words")]
    # the prose words counted by hand: the equation, the target and the directive lines are left out
    prose = ("1. A chapter about beta Some prose here, with x inline. Learning goals. After this chapter you can "
             "1. do the first thing; 2. do the second thing, which takes two lines; Count them.")
    assert chapter.words == len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", prose))
    page = lg.expand_page("<!-- lstmcor:goals 1 -->\n\n<!-- lstmcor:exercises 01 -->", root)
    assert "- do the second thing, which takes two lines;" in page
    assert "1.1 count the words" in page
    with pytest.raises(ValueError, match="no chapter numbered '7'"):
        lg.expand_page("<!-- lstmcor:goals 7 -->", root)


def test_reading_minutes_round_up():
    assert lg.Chapter("00_x", "x", 201).reading_minutes == 2
    assert lg.Chapter("00_x", "x", 200).reading_minutes == 1


def test_the_book_page_has_a_section_for_every_chapter():
    page = (ROOT / "book" / "lecturers_guide.md").read_text()
    numbers = {p.name[:2] for p in (ROOT / "course").glob("[0-9][0-9]_*.py")}
    assert numbers == set(re.findall(r"lstmcor:goals (\d\d)", page))
    assert "lecturers_guide" in (ROOT / "book" / "_toc.yml").read_text()


@pytest.mark.parametrize("jobs, says", [(None, "`ci`, this build, 2-core CPU |"), (1, "`ci`, this build, 2-core CPU |"),
                                        (2, "`ci`, this build, 2-core CPU, 2 chapters at a time |")])
def test_chapters_run_side_by_side_say_so(tmp_path, jobs, says):
    timings = {"preset": "ci", "cpus": 2, "chapters": {"00_alpha": {"seconds": 3.0, "status": "ok"}}}
    if jobs is not None:
        timings["jobs"] = jobs
    page = lg.expand_page("<!-- lstmcor:timings -->", make_root(tmp_path, timings))
    assert says in page.replace("run time, ", "")
