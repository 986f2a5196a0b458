"""The built book, opened page by page in headless Chromium with the network off.

For every page of book/_toc.yml: the page exists; MathJax (served from the site) typesets every
formula without errors; every image loads; no notebook output shows a Python error; nothing is
requested from outside the site. A screenshot of each page goes to book/_build/screenshots/.

Run: ``make book`` first, then ``make book-check`` (or ``pytest -m browser tests/browser``).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[2] / "book"


def toc_pages() -> list[str]:
    """Every page the book must have, in reading order, from book/_toc.yml (no suffix)."""
    import yaml

    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [p.rsplit(".", 1)[0] if p.endswith((".md", ".ipynb")) else p for p in pages]


pytestmark = pytest.mark.browser

PAGES = toc_pages()
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome-error:")

WAIT_FOR_PAGE = r"""
const done = arguments[arguments.length - 1];
const t0 = Date.now();
function imagesSettled() {
  return Array.from(document.images).every(img => img.complete);
}
function poll() {
  const hasMath = document.querySelector('.math') !== null;
  const mj = window.MathJax;
  if (hasMath && !(mj && mj.startup && mj.startup.promise)) {
    if (Date.now() - t0 > 30000) { done('MathJax did not start (script missing or blocked?)'); return; }
    setTimeout(poll, 50); return;
  }
  const typeset = hasMath ? mj.startup.promise : Promise.resolve();
  typeset.then(() => {
    (function waitImages() {
      if (imagesSettled() || Date.now() - t0 > 30000) { done('ok'); }
      else { setTimeout(waitImages, 50); }
    })();
  }).catch(err => done('MathJax failed: ' + err));
}
document.querySelectorAll('img[loading="lazy"]').forEach(img => { img.loading = 'eager'; });
poll();
"""

PAGE_REPORT = r"""
const math = Array.from(document.querySelectorAll('span.math, div.math'));
const unrendered = math.filter(m => !m.querySelector('mjx-container'))
                       .map(m => m.textContent.trim().slice(0, 80));
const merrors = Array.from(document.querySelectorAll('mjx-merror'))
                     .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120));
const images = Array.from(document.images).map(img => ({
  src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth}));
const outputs = Array.from(document.querySelectorAll('.cell_output, .output'));
const tracebacks = Array.from(document.querySelectorAll(
    '.output.traceback, .output.error, .cell_output .traceback, .cell_output .ansi-red-intense-fg'))
    .map(e => e.textContent.trim().slice(0, 300));
const tbText = outputs.filter(o => /Traceback \(most recent call last\)/.test(o.textContent))
                      .map(o => o.textContent.trim().slice(0, 300));
const redErrors = Array.from(document.querySelectorAll('.cell_output .ansi-red-fg'))
    .filter(e => /(Error|Exception)\b/.test(e.textContent)).map(e => e.textContent.trim().slice(0, 200));
const remote = [];
document.querySelectorAll('script[src], img[src], iframe[src], source[src], video[src], audio[src], embed[src]')
    .forEach(e => { const u = e.getAttribute('src'); if (/^(https?:)?\/\//i.test(u)) remote.push(u); });
document.querySelectorAll('link[href]').forEach(e => {
  const rel = (e.getAttribute('rel') || '').toLowerCase();
  const u = e.getAttribute('href');
  if (/stylesheet|preload|icon|modulepreload|prefetch|manifest/.test(rel) && /^(https?:)?\/\//i.test(u)) remote.push(u);
});
const resources = performance.getEntriesByType('resource').map(r => r.name);
const solutions = Array.from(document.querySelectorAll('.tag_solution')).map(
    c => { const d = c.querySelector('details'); return d ? d.open : 'no toggle'; });
return {math: math.length, mjx: document.querySelectorAll('mjx-container').length, unrendered, merrors,
        images, tracebacks: tracebacks.concat(tbText), redErrors, remote, resources, solutions,
        title: document.title};
"""


def page_id(page: str) -> str:
    return page.replace("/", "__")


@pytest.mark.parametrize("page", PAGES, ids=PAGES)
def test_page_renders_offline(page, built_book, browser, screenshots):
    html = built_book / f"{page}.html"
    assert html.exists(), f"page {page!r} of book/_toc.yml is missing from the build ({html})"

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(html.resolve().as_uri())
    status = browser.execute_async_script(WAIT_FOR_PAGE)
    report = browser.execute_script(PAGE_REPORT)
    shot = screenshots / f"{page_id(page)}.png"
    browser.save_screenshot(str(shot))
    console = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]

    problems = [] if status == "ok" else [status]
    if report["math"]:
        if not report["mjx"]:
            problems.append(f"{report['math']} formulas but no mjx-container: MathJax did not typeset")
        if report["unrendered"]:
            problems.append(f"formulas left untypeset: {report['unrendered'][:5]}")
    if report["merrors"]:
        problems.append(f"MathJax errors (mjx-merror): {report['merrors'][:5]}")
    broken = [i["src"] for i in report["images"] if not i["complete"] or i["width"] == 0]
    if broken:
        problems.append(f"images that did not load: {broken[:5]}")
    if report["tracebacks"] or report["redErrors"]:
        problems.append(f"Python errors in notebook outputs: {(report['tracebacks'] + report['redErrors'])[:3]}")
    if report["remote"]:
        problems.append(f"assets referenced from the internet: {report['remote'][:5]}")
    outside = [r for r in report["resources"] if not r.startswith(LOCAL_SCHEMES)]
    if outside:
        problems.append(f"requests that left file://: {outside[:5]}")
    failed_loads = [e["message"] for e in console if "net::ERR" in e["message"] or "Failed to load" in e["message"]]
    if failed_loads:
        problems.append(f"resources that failed to load: {failed_loads[:5]}")
    opened = [s for s in report["solutions"] if s is True]
    if opened:
        problems.append(f"{len(opened)} solution cell(s) shown unfolded (tag `solution` should fold them)")
    assert not problems, f"{page} ({shot}):\n  " + "\n  ".join(problems)
    assert shot.exists() and shot.stat().st_size > 0


def test_every_toc_page_built(built_book):
    missing = [p for p in PAGES if not (built_book / f"{p}.html").exists()]
    assert not missing, f"pages of book/_toc.yml missing from the build: {missing}"
    # the landing page redirects to the root document
    assert (built_book / "index.html").exists()


def test_static_assets_are_local(built_book):
    """No stylesheet imports or fonts from the internet, MathJax is served from the site."""
    remote_css = []
    for css in Path(built_book, "_static").rglob("*.css"):
        text = css.read_text(errors="ignore")
        for m in re.finditer(r"(@import\s+(url\()?|url\()\s*['\"]?((https?:)?//[^'\")\s]+)", text):
            remote_css.append(f"{css.relative_to(built_book)}: {m.group(3)}")
    assert not remote_css, "stylesheets that fetch from the internet:\n  " + "\n  ".join(remote_css[:10])
    mathjax = Path(built_book, "_static", "mathjax", "tex-chtml-full.js")
    assert mathjax.exists(), "vendored MathJax missing from _static/mathjax (tools/vendor_mathjax.sh)"
    fonts = list(Path(built_book, "_static", "mathjax", "output", "chtml", "fonts", "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20, "MathJax fonts missing from _static/mathjax/output/chtml/fonts/woff-v2"
