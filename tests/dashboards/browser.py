"""Headless Chromium for the dashboard tests (and docs/make_screenshot.py).

Debian's ``chromium`` and ``chromium-driver`` packages, driven by selenium. ``ensure_chromium``
installs them with apt-get when they are missing on a Debian machine where we are root (as the
Makefile's test set-up and CI do); anywhere else it says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PACKAGES = ("chromium", "chromium-driver")


def _debian() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return "debian" in text.lower()


def ensure_chromium() -> tuple[str, str]:
    """Paths of the chromium binary and its chromedriver, installing them if need be."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found  # type: ignore[return-value]
    if _debian() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *PACKAGES], check=True, env=env, capture_output=True)
        found = shutil.which("chromium"), shutil.which("chromedriver")
        if all(found):
            return found  # type: ignore[return-value]
    raise RuntimeError("the dashboard's browser tests need Chromium and its driver: on Debian "
                       f"`apt-get install {' '.join(PACKAGES)}` (make test does it as root)")


def chromium_or_skip() -> tuple[str, str]:
    """:func:`ensure_chromium` for a test fixture: a failure fails the test, unless
    ``MVIT_LAB_NO_BROWSER=1`` says to skip the browser tests."""
    import pytest

    try:
        return ensure_chromium()
    except (RuntimeError, subprocess.CalledProcessError) as err:
        if os.environ.get("MVIT_LAB_NO_BROWSER") == "1":
            pytest.skip(f"MVIT_LAB_NO_BROWSER=1: {err}")
        pytest.fail(f"{err}; set MVIT_LAB_NO_BROWSER=1 to skip the browser tests")


@contextmanager
def chrome(width: int = 1500, height: int = 1200, offline: bool = False) -> Iterator[Any]:
    """A headless Chromium session that records the browser console.

    ``offline``: every network request goes to a dead proxy, so a page that needs the network
    fails (and logs console errors).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--enable-unsafe-swiftshader",
                "--hide-scrollbars"):
        options.add_argument(arg)
    if offline:
        options.add_argument("--proxy-server=http://127.0.0.1:9")
        options.add_argument("--proxy-bypass-list=<-loopback>")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The console's errors since the last call (warnings, e.g. WebGL's, are not errors)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 60,
             what: str = "the page") -> Any:
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # a live page redraws parts of itself: an element can go stale between find and read
    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=ignored).until(condition)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text[:2000]
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; the page "
                             f"says:\n{body}\nconsole: {console_errors(driver)}") from None


def front_points(driver: Any, graph: str = "front-0") -> list[Any]:
    """The highlighted points of a Pareto view (its front trace is drawn last)."""
    return driver.find_elements("css selector",
                                f"#{graph} .scatterlayer .trace:last-child path.point")


def click(driver: Any, element: Any) -> None:
    """Click where the element is drawn (plotly listens on the plot area above the points)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).click().perform()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve a Dash app in this process on a free port of 127.0.0.1; yields its URL."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def wait_http(url: str, timeout: float = 60, proc: Any = None) -> None:
    """Wait until ``url`` answers (or ``proc``, the server, has exited)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")
