"""tools/run_course.py: order, failures and ``--jobs`` on a course of three tiny chapters.

The chapters are plain Python (no backend), so each kernel starts in a second or two; what is
checked is the runner: which notebooks it writes, what it says about a failure, what it records.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = ("# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n"
          "#     name: python3\n# ---\n\n")
PARAMETERS = '# %% tags=["parameters"]\nPRESET = "quick"\nDATA = "default"\nSEED = 0\nOUTPUT_DIR = "runs/x"\n\n'


def _course(tmp_path: Path, bodies: dict[str, str]) -> Path:
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    for stem, body in bodies.items():
        (course / f"{stem}.py").write_text(HEADER + PARAMETERS + body)
    return course


def _run(course: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_course.py"), "--course", str(course), "--out", str(out),
         "--runs", str(out / "runs"), "--preset", "ci", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


GOOD = '# %%\nprint(f"{PRESET} {SEED} " + OUTPUT_DIR.rsplit("/", 1)[-1])\n'
BAD = "# %%\nx = 1\n\n# %%\nraise ValueError('the second cell breaks')\n"


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_failure_is_named_kept_and_the_others_still_run(tmp_path, jobs):
    course = _course(tmp_path, {"01_a": GOOD, "02_b": BAD, "03_c": GOOD})
    out = tmp_path / "out"
    proc = _run(course, out, "--jobs", jobs, "--keep-going")
    assert proc.returncode == 1
    # cell 4: the parameters, papermill's injected parameters, x = 1, then the raise
    assert "FAILED 02_b: cell 4 (In [4]: raise ValueError" in proc.stderr
    assert "ValueError: the second cell breaks" in proc.stderr
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["01_a.ipynb", "02_b.failed.ipynb", "03_c.ipynb"], \
        proc.stderr[-3000:]
    # each good chapter ran with its own parameters
    for stem in ("01_a", "03_c"):
        cells = json.loads((out / f"{stem}.ipynb").read_text())["cells"]
        printed = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                          for c in cells for o in c.get("outputs", []))
        assert f"ci 0 {stem}" in printed
    timings = json.loads((out / "timings.json").read_text())
    assert timings["jobs"] == int(jobs)
    assert {k: v["status"] for k, v in timings["chapters"].items()} == {"01_a": "ok", "02_b": "failed", "03_c": "ok"}


@pytest.mark.slow
def test_without_keep_going_a_failure_stops_the_run(tmp_path):
    course = _course(tmp_path, {"01_a": GOOD, "02_b": BAD, "03_c": GOOD})
    out = tmp_path / "out"
    proc = _run(course, out)
    assert proc.returncode == 1
    assert not (out / "03_c.ipynb").exists()
    assert (out / "02_b.failed.ipynb").exists() and (out / "01_a.ipynb").exists()


def test_a_solution_id_used_by_two_chapters_stops_before_any_kernel(tmp_path):
    starter = '# %% solution="ex1_1"\nx = ...\n'
    course = _course(tmp_path, {"01_a": starter, "02_b": starter})
    (course / "solutions" / "ex1_1.py").write_text("x = 1\n")
    out = tmp_path / "out"
    proc = _run(course, out, "--jobs", "2")
    assert proc.returncode != 0
    assert "02_b: solution id 'ex1_1' is used twice (also in 01_a)" in proc.stderr
    assert not list(out.glob("*.ipynb"))


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_is_refused(tmp_path, jobs):
    proc = _run(_course(tmp_path, {"01_a": GOOD}), tmp_path / "out", "--jobs", jobs)
    assert proc.returncode == 2 and f"--jobs must be 1 or more, got {jobs}" in proc.stderr


def test_longest_first_orders_by_the_committed_times(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import run_course

    chapters = [Path(f"{n:02d}_x.py") for n in range(4)]
    measured = tmp_path / "quick.json"
    measured.write_text(json.dumps({"chapters": {"01_x": {"seconds": 5}, "03_x": {"seconds": 90},
                                                 "02_x": {"status": "failed", "seconds": None}}}))
    assert [c.stem for c in run_course.longest_first(chapters, measured)] == ["03_x", "01_x", "00_x", "02_x"]
    assert run_course.longest_first(chapters, tmp_path / "missing.json") == chapters
    measured.write_text("not json")
    assert run_course.longest_first(chapters, measured) == chapters
    # the committed file puts chapter 06 first
    real = run_course.longest_first(run_course.find_chapters(ROOT / "course"), ROOT / "book/timings/quick.json")
    assert real[0].stem == "06_loss_and_training"
