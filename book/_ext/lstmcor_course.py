"""Sphinx extension: make ``jupyter-book build book/`` work on its own.

The book renders the executed notebooks in ``book/course/`` (``execute_notebooks: off``).
``make book`` fills that folder with ``tools/run_course.py`` first. When the book is built
directly, this extension does it: before the table of contents is read, every chapter
``course/NN_*.py`` whose executed notebook ``book/course/NN_*.ipynb`` is missing or older than
the source (or one of its solutions in ``course/solutions/``) is executed with the runner,
preset ``$LSTMCOR_PRESET`` (default ``ci``).
``LSTMCOR_SKIP_RUN=1`` turns this off (the build then renders whatever is there).

It also keeps the built site offline:

- Jupyter Book adds every ``*.js`` under ``_static/`` to every page, which would load the
  vendored MathJax (``_static/mathjax/``) twice on math pages and on every other page too;
  MathJax is loaded by ``sphinx.ext.mathjax`` (``mathjax_path``) only where there is math.
- Any script or stylesheet with a remote URL, and inline scripts naming one (sphinx-thebe's
  ``THEBE_JS_URL``; Thebe needs a Binder anyway), are dropped from the pages with a warning.
  Plain hyperlinks (``<a href="https://...">``) are kept: they are not fetched.

And it fills in the generated parts of ``lecturers_guide.md`` (run times from the timings files,
reading times and learning goals from the chapters' sources; see ``lecturers_guide.py`` beside
this file), re-reading that page on every build so that it shows the current build's times.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util import logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lecturers_guide  # noqa: E402  (beside this file)

LOG = logging.getLogger(__name__)


def stale_chapters(root: Path) -> list[str]:
    """Chapters whose executed notebook is missing or older than the chapter or its solutions."""
    course, executed = root / "course", root / "book" / "course"
    stale = []
    for py in sorted(course.glob("[0-9][0-9]_*.py")):
        nb = executed / f"{py.stem}.ipynb"
        sources = [py] + [course / "solutions" / f"{sid}.py"
                          for sid in re.findall(r'solution="(ex\d+_\d+)"', py.read_text())]
        newest = max(s.stat().st_mtime for s in sources if s.exists())
        if not nb.exists() or nb.stat().st_mtime < newest:
            stale.append(py.stem)
    return stale


def run_stale_chapters(app, config) -> None:
    if os.environ.get("LSTMCOR_SKIP_RUN", "") not in ("", "0"):
        return
    root = Path(app.srcdir).resolve().parent
    runner = root / "tools" / "run_course.py"
    if not runner.exists():
        return
    stale = stale_chapters(root)
    if not stale:
        return
    preset = os.environ.get("LSTMCOR_PRESET", "ci")
    cmd = [sys.executable, str(runner), "--preset", preset, "--out", str(root / "book" / "course")]
    for stem in stale:
        cmd += ["--only", stem]
    LOG.info(f"lstmcor: executing {len(stale)} missing/stale chapter(s) with preset {preset!r}: "
             + " ".join(stale))
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise ExtensionError(
            f"tools/run_course.py failed (exit {proc.returncode}) while preparing the book's chapters; "
            "see the message above (chapter, cell, error)."
        )


GUIDE = "lecturers_guide"


def fill_lecturers_guide(app, docname, source) -> None:
    """source-read: replace the guide's markers with tables and lists built from the measurements."""
    if docname != GUIDE:
        return
    root = Path(app.srcdir).resolve().parent
    source[0] = lecturers_guide.expand_page(source[0], root)


def reread_lecturers_guide(app, env, added, changed, removed) -> list[str]:
    """env-get-outdated: the guide depends on timings.json and the chapters, which Sphinx does not track."""
    return [GUIDE] if GUIDE in env.found_docs else []


REMOTE = ("http://", "https://", "//")
_DROPPED: set = set()


def drop_autoincluded_mathjax(app, config) -> None:
    config.html_js_files = [
        js for js in config.html_js_files
        if not str(js[0] if isinstance(js, (tuple, list)) else js).startswith("mathjax/")
    ]
    seen, css = set(), []
    for c in config.html_css_files:
        key = str(c[0] if isinstance(c, (tuple, list)) else c)
        if key not in seen:
            seen.add(key)
            css.append(c)
    config.html_css_files = css


def _is_remote(asset) -> bool:
    name = str(getattr(asset, "filename", asset) or "")
    body = str(getattr(asset, "attributes", {}).get("body", "") or "")
    return name.startswith(REMOTE) or any(r in body for r in ("https://", "http://"))


def keep_page_offline(app, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        kept, seen = [], set()
        for a in assets:
            name = str(getattr(a, "filename", a) or "")
            if _is_remote(a) or name.endswith("sphinx-thebe.js"):
                label = name or "inline script naming " + ", ".join(
                    sorted(set(re.findall(r"https?://[^/\"' ]+", str(a.attributes.get("body", ""))))))
                if label not in _DROPPED:
                    _DROPPED.add(label)
                    LOG.info(f"lstmcor: offline book, not linking {label}")
                continue
            ident = (name, str(getattr(a, "attributes", {}).get("body", "")))
            if name and ident in seen:  # the same file twice
                continue
            seen.add(ident)
            kept.append(a)
        context[key] = kept


def setup(app):
    # before sphinx_external_toc reads _toc.yml (config-inited, priority 900)
    app.connect("config-inited", run_stale_chapters, priority=100)
    app.connect("config-inited", drop_autoincluded_mathjax, priority=800)
    app.connect("source-read", fill_lecturers_guide)
    app.connect("env-get-outdated", reread_lecturers_guide)
    # after every other extension has added its assets
    app.connect("html-page-context", keep_page_offline, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
