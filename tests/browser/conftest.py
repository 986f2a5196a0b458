"""Fixtures for the book's browser check: the built site and an offline headless Chromium.

Chromium and its driver come from Debian (``tools/install_chromium.sh``); Selenium is pointed at
``/usr/bin/chromedriver`` so that Selenium Manager never downloads anything.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
HTML = Path(os.environ.get("LSTMCOR_BOOK_HTML", BOOK / "_build" / "html"))
SCREENSHOTS = HTML.parent / "screenshots"

CHROMIUM = os.environ.get("LSTMCOR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LSTMCOR_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="session")
def built_book() -> Path:
    index = HTML / "index.html"
    if not index.exists():
        pytest.fail(f"the book is not built ({index} is missing): run `make book` first", pytrace=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return HTML


@pytest.fixture(scope="session")
def screenshots(built_book) -> Path:
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser(built_book):
    """Headless Chromium with the network switched off."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `bash tools/install_chromium.sh` "
                    "(Debian's chromium + chromium-driver)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-quic",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1280,1600",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    # and no network at all, whatever the page asks for
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    yield driver
    driver.quit()
