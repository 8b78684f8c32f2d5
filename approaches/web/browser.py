"""A served page and a headless Chromium to look at it: for the end-to-end test and the docs' screenshot.

Chromium comes from Debian (`apt-get install -y chromium chromium-driver`), driven through selenium.  As
root, in a container, it needs --no-sandbox; the other flags keep it from reaching the network by itself.
"""

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from approaches.web.app import create_app
from approaches.web.jobs import JobStore

INSTALL = "apt-get install -y chromium chromium-driver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def missing() -> str | None:
    """What is missing to drive a browser (None: nothing), with the command that installs it."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return f"no chromium or chromedriver: {INSTALL}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no selenium: pip install -e '.[dev]'"
    return None


@contextmanager
def served(store: JobStore) -> Iterator[str]:
    """The page on 127.0.0.1 at a free port, on a thread; its URL."""
    server = make_server("127.0.0.1", 0, create_app(store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        store.close()


@contextmanager
def chromium(width: int = 1200, height: int = 900) -> Iterator[Any]:
    """A headless Chromium (a selenium WebDriver) with a fresh profile, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
        try:
            yield driver
        finally:
            driver.quit()
