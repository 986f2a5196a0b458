"""The generated parts of the lecturer's guide (``book/lecturers_guide.md``).

The page holds markers that this module replaces with Markdown when the book is built
(``lstmcor_course`` calls :func:`expand` from Sphinx's ``source-read`` event), so that every
number on the page comes from a measurement or from the chapters' sources, never typed by hand:

- ``<!-- lstmcor:timings -->``: one row per chapter with its run time under each measured
  preset, read from the timings files that ``tools/run_course.py`` writes (``book/course/
  timings.json`` for the current build; committed measurements in ``book/timings/*.json``), and
  the reading time estimated from the chapter's prose;
- ``<!-- lstmcor:goals NN -->``: the learning goals of chapter ``NN``, copied from its source;
- ``<!-- lstmcor:exercises NN -->``: its exercises (number and title), on one line.

A chapter a timings file does not list shows "not measured"; one that failed shows "failed".

Example:
    >>> chapters = [Chapter("03_convlstm", "3. The ConvLSTM", 2100, ["write one LSTM step"])]
    >>> columns = [Column("`ci`, this build", {"03_convlstm": 24.1})]
    >>> "24 s" in render_timings(chapters, columns)
    True
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

WORDS_PER_MINUTE = 200
NOT_MEASURED = "not measured"
CHAPTER_RE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.py$")
MARKER_RE = re.compile(r"<!--\s*lstmcor:(timings|goals|exercises)(?:\s+(\d+))?\s*-->")
EXERCISE_RE = re.compile(r"^:::\{admonition\}\s*Exercise\s+(\d+\.\d+)\s*:\s*(.+?)\s*$")
WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")


@dataclass
class Chapter:
    """One chapter's source facts: ``stem`` (``03_convlstm_channels``), its ``#`` title, the number
    of words of prose (Markdown cells, equations and fences left out), its learning goals and
    its exercises as ``(number, title)``."""

    stem: str
    title: str
    words: int
    goals: list[str] = field(default_factory=list)
    exercises: list[tuple[str, str]] = field(default_factory=list)

    @property
    def number(self) -> str:
        return self.stem[:2]

    @property
    def reading_minutes(self) -> int:
        """Minutes to read the prose at :data:`WORDS_PER_MINUTE` (rounded up)."""
        return max(1, math.ceil(self.words / WORDS_PER_MINUTE))


@dataclass
class Column:
    """A column of run times: its heading and ``{chapter stem: seconds, or None if it failed}``."""

    label: str
    seconds: dict[str, float | None]


def markdown_cells(source: str) -> list[str]:
    """The Markdown cells of a jupytext py:percent file, with the leading ``# `` removed."""
    cells, current = [], None
    for line in source.splitlines():
        if line.startswith("# %%"):
            if current is not None:
                cells.append("\n".join(current))
            current = [] if "[markdown]" in line else None
        elif current is not None:
            if line.startswith("#"):
                current.append(line[2:] if line.startswith("# ") else line[1:])
            elif line.strip():  # code after a Markdown cell without a new marker: the cell ended
                cells.append("\n".join(current))
                current = None
    if current is not None:
        cells.append("\n".join(current))
    return cells


def prose_words(cells: list[str]) -> int:
    """Words of prose in Markdown cells: display equations, ``:::``/```` ``` ```` fence lines and
    MyST targets (``(name)=``) are left out."""
    count, in_math = 0, False
    for cell in cells:
        for line in cell.splitlines():
            stripped = line.strip()
            if stripped == "$$" or (stripped.startswith("$$") and not stripped.endswith("$$")):
                in_math = not in_math
                continue
            if in_math and stripped.endswith("$$"):
                in_math = False
                continue
            if stripped.startswith("$$"):  # a one-line display equation
                continue
            if in_math or stripped.startswith((":::", "```", ":class:", ":name:", ":width:")) \
                    or re.fullmatch(r"\([\w-]+\)=", stripped):
                continue
            count += len(WORD_RE.findall(stripped))
    return count


def learning_goals(first_cell: str) -> list[str]:
    """The items of the list that follows ``**Learning goals.**`` in a chapter's first cell."""
    lines = first_cell.splitlines()
    start = next((i for i, ln in enumerate(lines) if "Learning goals" in ln), None)
    if start is None:
        return []
    goals: list[str] = []
    for line in lines[start + 1:]:
        item = re.match(r"^\s*(?:\d+\.|[-*])\s+(.*)$", line)
        if item:
            goals.append(item.group(1).strip())
        elif line.strip() and goals and line.startswith(" "):
            goals[-1] += " " + line.strip()
        elif not line.strip() and goals:
            break
    return goals


def read_chapter(path: Path) -> Chapter:
    """Title, prose word count and learning goals of one ``course/NN_*.py`` chapter."""
    cells = markdown_cells(Path(path).read_text(encoding="utf-8"))
    if not cells:
        raise ValueError(f"{path}: no Markdown cell (expected a jupytext py:percent chapter)")
    title = next((ln[2:].strip() for ln in cells[0].splitlines() if ln.startswith("# ")), Path(path).stem)
    exercises = [m.groups() for cell in cells for ln in cell.splitlines() if (m := EXERCISE_RE.match(ln.strip()))]
    return Chapter(Path(path).stem, title, prose_words(cells), learning_goals(cells[0]), exercises)


def read_chapters(course_dir: Path) -> list[Chapter]:
    """Every chapter of ``course_dir``, in order."""
    return [read_chapter(p) for p in sorted(Path(course_dir).glob("*.py")) if CHAPTER_RE.match(p.name)]


def load_timings(path: Path) -> dict | None:
    """A timings file of ``tools/run_course.py`` (or a committed one of the same layout), or None."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("chapters", {}), dict):
        raise ValueError(f"{path}: expected an object with a 'chapters' object, got {type(data).__name__}")
    return data


def column(timings: dict, label: str | None = None, this_build: bool = False) -> Column:
    """A :class:`Column` from one timings record: ok chapters give seconds, failed ones None."""
    seconds: dict[str, float | None] = {}
    for stem, entry in timings.get("chapters", {}).items():
        if entry.get("seconds") is None:
            continue
        seconds[stem] = float(entry["seconds"]) if entry.get("status", "ok") == "ok" else None
    if label is None:
        preset = timings.get("preset", "?")
        where = timings.get("device") or (f"{timings['cpus']}-core CPU" if timings.get("cpus") else "")
        jobs = int(timings.get("jobs", 1) or 1)
        label = (f"`{preset}`" + (", this build" if this_build else "") + (f", {where}" if where else "")
                 + (f", {jobs} chapters at a time" if jobs > 1 else ""))
    return Column(label, seconds)


def columns_from(build_timings: Path, measured_dir: Path) -> list[Column]:
    """The build's column (if it has run times), then one per committed ``measured_dir/*.json``."""
    cols = []
    build = load_timings(build_timings)
    if build is not None:
        cols.append(column(build, this_build=True))
    for path in sorted(Path(measured_dir).glob("*.json")):
        data = load_timings(path)
        if data is not None:
            cols.append(column(data, data.get("label")))
    return cols


def format_seconds(seconds: float | None) -> str:
    """``52 s``, ``1 min 56 s``; None (a failed run) is ``failed``."""
    if seconds is None:
        return "failed"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def render_timings(chapters: list[Chapter], columns: list[Column]) -> str:
    """The Markdown table: chapter, one run-time column per measurement, reading time."""
    heads = ["chapter"] + [f"run time, {c.label}" for c in columns] + ["reading time (prose)"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for ch in chapters:
        cells = [f"{{doc}}`{ch.title} <course/{ch.stem}>`"]
        cells += [format_seconds(c.seconds[ch.stem]) if ch.stem in c.seconds else NOT_MEASURED for c in columns]
        cells.append(f"about {ch.reading_minutes} min ({ch.words:,} words)")
        lines.append("| " + " | ".join(cells) + " |")
    totals = ["**whole course**"]
    for c in columns:
        known = [c.seconds.get(ch.stem) for ch in chapters]
        if all(s is not None for s in known) and known:
            totals.append(f"**{format_seconds(sum(known))}**")
        else:
            done = sum(s for s in known if s is not None)
            missing = sum(1 for s in known if s is None)
            totals.append(f"{format_seconds(done)} + {missing} {NOT_MEASURED}/failed" if done else NOT_MEASURED)
    totals.append(f"**about {sum(ch.reading_minutes for ch in chapters)} min**")
    lines.append("| " + " | ".join(totals) + " |")
    if not columns:
        lines.append("\nNo run time has been measured for this build (no `book/course/timings.json`).")
    return "\n".join(lines)


def render_goals(chapter: Chapter) -> str:
    """The chapter's learning goals as a Markdown list (or a note that it states none)."""
    if not chapter.goals:
        return "(The chapter states no learning goals.)"
    return "\n".join(f"- {goal}" for goal in chapter.goals)


def render_exercises(chapter: Chapter) -> str:
    """The chapter's exercises on one line: ``5.1 one point by hand; 5.2 ...`` (or ``none``)."""
    return "; ".join(f"{number} {title}".replace("|", "\\|") for number, title in chapter.exercises) or "none"


def expand(text: str, chapters: list[Chapter], columns: list[Column]) -> str:
    """Replace the page's markers with the generated Markdown."""
    by_number = {ch.number: ch for ch in chapters}

    def replace(match: re.Match) -> str:
        kind, number = match.group(1), match.group(2)
        if kind == "timings":
            return render_timings(chapters, columns)
        chapter = by_number.get(f"{int(number):02d}" if number else "")
        if chapter is None:
            raise ValueError(f"lecturers_guide: no chapter numbered {number!r} for marker {match.group(0)!r}")
        return render_goals(chapter) if kind == "goals" else render_exercises(chapter)

    return MARKER_RE.sub(replace, text)


def expand_page(text: str, root: Path) -> str:
    """:func:`expand` with the chapters of ``root/course`` and the timings files of ``root/book``."""
    book = Path(root) / "book"
    return expand(text, read_chapters(Path(root) / "course"),
                  columns_from(book / "course" / "timings.json", book / "timings"))
