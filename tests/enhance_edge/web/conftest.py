"""Fixtures for the web app: an API client on the bundled model, a live `enhance-edge serve`.

The web extra and the browser are optional installs: where one is missing these tests skip
with the install line, except under CI (CI=true), which must have installed them and fails.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BROWSER_INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
# Root in a container: no sandbox, no GPU, and no traffic of Chromium's own to the outside.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1600"]
WEB_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
               "httpx2": "httpx2"}


def skip_or_fail(reason: str) -> None:
    """Skip with the reason on a developer's machine; fail in CI, where it must not happen."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def web_extra() -> None:
    missing = [package for module, package in WEB_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        skip_or_fail(f"the web tests need {', '.join(missing)}: pip install -e \".[web,test]\"")


@pytest.fixture
def make_client():
    """make_client(limits=None) -> a started TestClient on a fresh app and service."""
    from starlette.testclient import TestClient

    from enhance_edge.web.app import create_app
    from enhance_edge.web.service import UpscaleService

    clients = []

    def make(limits=None, **client_options):
        client = TestClient(create_app(UpscaleService(limits)), **client_options)
        clients.append(client.__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def read_line(stream, timeout: float) -> str:
    """One line from a subprocess pipe, or '' after ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline()


class LiveServer:
    """`enhance-edge serve --port 0` in a subprocess, as a person starts it."""

    def __init__(self, log: Path):
        self.log = log
        with open(log, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from enhance_edge.cli import main; main()", "serve", "--port", "0"],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.first_line = read_line(self.process.stdout, timeout=60)
        # "enhance-edge is serving on http://127.0.0.1:PORT/  (Ctrl-C to stop)"
        words = self.first_line.split()
        self.url = words[4] if len(words) > 4 else None

    def stop(self) -> int:
        """Ctrl-C, as in a terminal; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return self.process.returncode


@pytest.fixture
def live_server(tmp_path):
    server = LiveServer(tmp_path / "serve-stderr.log")
    try:
        assert server.url is not None and server.url.startswith("http://127.0.0.1:"), \
            (server.first_line, server.log.read_text())
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    """Debian's headless Chromium driven by Selenium through Debian's chromedriver."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    missing = [name for name, found in (("selenium", importlib.util.find_spec("selenium")), ("chromium", chromium),
                                        ("chromedriver", chromedriver)) if found is None]
    if missing:
        skip_or_fail(f"no headless browser ({', '.join(missing)} missing): {BROWSER_INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
